-- pgTAP: bad input, table-driven.  One row per (function, argument, bad value) for every
-- function of the extension that takes arguments: NULL, empty, the maximum and one past it
-- (bytes, also in multibyte characters), 0 / negative / integer extremes, interval extremes,
-- malformed tokens and gids, odd jsonb, odd relations, hostile identifiers, odd arrays.
-- Each row asserts the documented SQLSTATE (README, "SQLSTATEs") and that nothing changed:
-- a checksum of every extension table, the versioned user table (its rows, columns and
-- triggers), the prepared transactions and this session's locks, before and after the call.
-- A failing call runs in throws_ok's subtransaction, whose rollback undoes its own writes; the
-- checksum catches what that rollback does not undo (rows and COMMIT PREPARED of the
-- resolver's background worker, sequence values, session-level locks) and a call that
-- wrongly succeeds.  Rows whose expected SQLSTATE is NULL are boundary values that must be
-- accepted.
-- The calls run as roles granted consistency_admin (bi_admin) or consistency_user (bi_user);
-- the checksums are taken as the superuser running the file.
BEGIN;

-- Setup, as the superuser: roles, a versioned table, stock, a reservation, a completed key.
\o /dev/null
CREATE ROLE bi_admin NOLOGIN;
GRANT consistency_admin TO bi_admin;
CREATE ROLE bi_user NOLOGIN;
GRANT consistency_user TO bi_user;
CREATE TABLE public.bi_items (id int PRIMARY KEY, name text, qty int,
	twice int GENERATED ALWAYS AS (qty * 2) STORED, loose bigint, label text);
INSERT INTO public.bi_items (id, name, qty) VALUES (1, 'one', 1), (2, 'two', 2);
SELECT consistency.enable_versioning('public.bi_items');
CREATE TABLE public.bi_nokey (a int, version bigint NOT NULL DEFAULT 1);
CREATE VIEW public.bi_view AS SELECT id, name FROM public.bi_items;
CREATE SEQUENCE public.bi_seq;
ALTER TABLE public.bi_items OWNER TO bi_admin;
ALTER TABLE public.bi_nokey OWNER TO bi_admin;
ALTER VIEW public.bi_view OWNER TO bi_admin;
ALTER SEQUENCE public.bi_seq OWNER TO bi_admin;
SELECT consistency.stock_set('bi-sku', 10);
SELECT consistency.stock_set('bi-hot', 20, 4);
SELECT consistency.reserve('bi-sku', 2, 'bi-res');
SELECT * FROM consistency.idem_begin('bi-done');
SELECT consistency.idem_complete('bi-done', '{"ok": true}');
SELECT * FROM consistency.idem_begin('bi-fp', 'fp-stored');
SELECT consistency.idem_complete('bi-fp', '{"ok": true}');
SELECT * FROM consistency.idem_lease('bi-leased');
SELECT consistency.idem_complete('bi-leased', '{"ok": true}', '', 1);
SELECT * FROM consistency.idem_lease('bi-lease-live');
-- tokens and gids of this cluster and database
SELECT system_identifier AS sysid FROM pg_catalog.pg_control_system() \gset
SELECT oid AS dboid FROM pg_catalog.pg_database WHERE datname = current_database() \gset
SELECT consistency.tpc_gid('bi') AS gid \gset
SELECT pg_catalog.pg_current_xact_id()::text::bigint + 1000 AS otherxid \gset
\o

-- The state a failing call must leave unchanged.
CREATE FUNCTION pg_temp.bi_state() RETURNS text LANGUAGE sql AS $$
	SELECT pg_catalog.md5(pg_catalog.string_agg(x, E'\n' ORDER BY x)) FROM (
		SELECT 'key ' || t::text FROM consistency.idempotency_keys AS t
		UNION ALL SELECT 'stock ' || t::text FROM consistency.inventory AS t
		UNION ALL SELECT 'reservation ' || t::text FROM consistency.reservations AS t
		UNION ALL SELECT 'decision ' || t::text FROM consistency.tpc_decisions AS t
		UNION ALL SELECT 'resolution ' || t::text FROM consistency.tpc_resolution_log AS t
		UNION ALL SELECT 'item ' || t::text FROM public.bi_items AS t
		UNION ALL SELECT 'column ' || attname || ' ' || atttypid::regtype::text || ' ' || attnotnull
					FROM pg_catalog.pg_attribute
				   WHERE attrelid IN ('public.bi_items'::regclass, 'public.bi_nokey'::regclass)
					 AND attnum > 0 AND NOT attisdropped
		UNION ALL SELECT 'trigger ' || pg_catalog.pg_get_triggerdef(oid) || ' ' || tgenabled::text
					FROM pg_catalog.pg_trigger
				   WHERE tgrelid IN ('public.bi_items'::regclass, 'public.bi_nokey'::regclass)
		UNION ALL SELECT 'prepared ' || gid FROM pg_catalog.pg_prepared_xacts
		UNION ALL SELECT 'log sequence ' || last_value FROM consistency.tpc_resolution_log_id_seq
		UNION ALL SELECT 'locks ' || pg_catalog.count(*) FROM pg_catalog.pg_locks
				   WHERE pid = pg_catalog.pg_backend_pid() AND locktype = 'advisory'
	) AS s(x)
$$;

-- One row: the call as the row's role; the documented SQLSTATE; nothing changed.
CREATE FUNCTION pg_temp.bi_check(fn text, call text, role text, want text, what text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	before text := pg_temp.bi_state();
BEGIN
	EXECUTE pg_catalog.format('SET ROLE %I', role);
	IF want IS NULL THEN
		RETURN NEXT lives_ok(call, fn || ': ' || what || ' is accepted');
		EXECUTE 'RESET ROLE';
		RETURN;
	END IF;
	RETURN NEXT throws_ok(call, want, NULL, fn || ': ' || what || ' -> ' || want);
	EXECUTE 'RESET ROLE';
	RETURN NEXT is(pg_temp.bi_state(), before, fn || ': ' || what || ' changes nothing');
END
$$;

CREATE TEMP TABLE bi_rows (
	id   int GENERATED ALWAYS AS IDENTITY,
	fn   text NOT NULL,
	call text NOT NULL,
	want text,                     -- the SQLSTATE, or NULL: accepted
	what text NOT NULL,
	role text NOT NULL DEFAULT 'bi_admin');

-- Rows once found to answer with an SQLSTATE the README did not document (fixed, in the code
-- or the README, and kept here so they stay fixed): enable_versioning/disable_versioning on a
-- sequence (now 42809 before any privilege check), enable_versioning with an empty
-- version_column (22023, documented), 22001 from the 2PC functions (documented), 22008 from
-- idem_begin and idem_lease (documented).
INSERT INTO bi_rows (fn, what, want, call) VALUES
-- Idempotency keys: key 1-255 bytes, scope 0-255, fingerprint <= 1024, recovery point <= 8192,
-- ttl and lease > 0, attempt and batch_size > 0, response <= idem_max_response_size.
('idem_begin', 'key NULL', '22004', $$SELECT * FROM consistency.idem_begin(NULL)$$),
('idem_begin', 'key empty', '22023', $$SELECT * FROM consistency.idem_begin('')$$),
('idem_begin', 'key 256 bytes', '22001', $$SELECT * FROM consistency.idem_begin(repeat('k', 256))$$),
('idem_begin', 'key 256 bytes in 128 two-byte characters', '22001', $$SELECT * FROM consistency.idem_begin(repeat('é', 128))$$),
('idem_begin', 'key 255 bytes', NULL, $$SELECT * FROM consistency.idem_begin(repeat('k', 255))$$),
('idem_begin', 'fingerprint 1025 bytes', '22001', $$SELECT * FROM consistency.idem_begin('bi-1', repeat('f', 1025))$$),
('idem_begin', 'ttl NULL', '22004', $$SELECT * FROM consistency.idem_begin('bi-1', NULL, NULL)$$),
('idem_begin', 'ttl 0', '22023', $$SELECT * FROM consistency.idem_begin('bi-1', NULL, '0')$$),
('idem_begin', 'ttl negative', '22023', $$SELECT * FROM consistency.idem_begin('bi-1', NULL, '-1 second')$$),
('idem_begin', 'ttl 1 month -1 day (positive)', NULL, $$SELECT * FROM consistency.idem_begin('bi-1m', NULL, '1 month -1 day')$$),
('idem_begin', 'ttl past the timestamptz range', '22008', $$SELECT * FROM consistency.idem_begin('bi-1', NULL, '178000000 years')$$),
('idem_begin', 'scope NULL', '22004', $$SELECT * FROM consistency.idem_begin('bi-1', NULL, '1 hour', NULL)$$),
('idem_begin', 'scope 256 bytes', '22001', $$SELECT * FROM consistency.idem_begin('bi-1', NULL, '1 hour', repeat('s', 256))$$),
('idem_begin', 'wait NULL', '22004', $$SELECT * FROM consistency.idem_begin('bi-1', wait => NULL)$$),
('idem_complete', 'key NULL', '22004', $$SELECT consistency.idem_complete(NULL, '{}')$$),
('idem_complete', 'key empty', '22023', $$SELECT consistency.idem_complete('', '{}')$$),
('idem_complete', 'key 256 bytes', '22001', $$SELECT consistency.idem_complete(repeat('k', 256), '{}')$$),
('idem_complete', 'key never claimed', 'YC002', $$SELECT consistency.idem_complete('bi-unclaimed', '{}')$$),
('idem_complete', 'key already completed', 'YC004', $$SELECT consistency.idem_complete('bi-done', '{}')$$),
('idem_complete', 'leased key already completed', 'YC004', $$SELECT consistency.idem_complete('bi-leased', '{}', '', 1)$$),
('idem_complete', 'live lease with another attempt', 'YC003', $$SELECT consistency.idem_complete('bi-lease-live', '{}', '', 2)$$),
('idem_checkpoint', 'live lease with another attempt', 'YC003', $$SELECT consistency.idem_checkpoint('bi-lease-live', 'step', '', 2)$$),
('idem_release', 'live lease with another attempt', 'YC003', $$SELECT consistency.idem_release('bi-lease-live', '', 2)$$),
('idem_complete', 'response NULL', '22004', $$SELECT consistency.idem_complete('bi-done', NULL)$$),
('idem_complete', 'response over idem_max_response_size', '54000', $$SELECT consistency.idem_complete('bi-done', to_jsonb(repeat('r', 1048577)))$$),
('idem_complete', 'scope NULL', '22004', $$SELECT consistency.idem_complete('bi-done', '{}', NULL)$$),
('idem_complete', 'scope 256 bytes', '22001', $$SELECT consistency.idem_complete('bi-done', '{}', repeat('s', 256))$$),
('idem_complete', 'attempt 0', '22023', $$SELECT consistency.idem_complete('bi-done', '{}', '', 0)$$),
('idem_complete', 'attempt -1', '22023', $$SELECT consistency.idem_complete('bi-done', '{}', '', -1)$$),
('idem_complete', 'attempt int4 minimum', '22023', $$SELECT consistency.idem_complete('bi-done', '{}', '', -2147483648)$$),
('idem_claim', 'key NULL', '22004', $$SELECT consistency.idem_claim(NULL)$$),
('idem_claim', 'key empty', '22023', $$SELECT consistency.idem_claim('')$$),
('idem_claim', 'key 256 bytes', '22001', $$SELECT consistency.idem_claim(repeat('k', 256))$$),
('idem_claim', 'key 255 bytes', NULL, $$SELECT consistency.idem_claim(repeat('k', 255))$$),
('idem_claim', 'fingerprint 1025 bytes', '22001', $$SELECT consistency.idem_claim('bi-c', repeat('f', 1025))$$),
('idem_claim', 'ttl NULL', '22004', $$SELECT consistency.idem_claim('bi-c', NULL, NULL)$$),
('idem_claim', 'ttl 0', '22023', $$SELECT consistency.idem_claim('bi-c', NULL, '0')$$),
('idem_claim', 'ttl negative', '22023', $$SELECT consistency.idem_claim('bi-c', NULL, '-1 second')$$),
('idem_claim', 'ttl past the timestamptz range', '22008', $$SELECT consistency.idem_claim('bi-c', NULL, '178000000 years')$$),
('idem_claim', 'scope NULL', '22004', $$SELECT consistency.idem_claim('bi-c', scope => NULL)$$),
('idem_claim', 'scope 256 bytes', '22001', $$SELECT consistency.idem_claim('bi-c', scope => repeat('s', 256))$$),
('idem_claim', 'wait NULL', '22004', $$SELECT consistency.idem_claim('bi-c', wait => NULL)$$),
('idem_claim', 'key held by a live lease', 'YC006', $$SELECT consistency.idem_claim('bi-lease-live')$$),
('idem_claim', 'completed key with another fingerprint', 'YC001', $$SELECT consistency.idem_claim('bi-fp', 'fp-other')$$),
('idem_finish', 'key NULL', '22004', $$SELECT consistency.idem_finish(NULL, '{}')$$),
('idem_finish', 'key empty', '22023', $$SELECT consistency.idem_finish('', '{}')$$),
('idem_finish', 'key 256 bytes', '22001', $$SELECT consistency.idem_finish(repeat('k', 256), '{}')$$),
('idem_finish', 'key never claimed', 'YC002', $$SELECT consistency.idem_finish('bi-unclaimed', '{}')$$),
('idem_finish', 'key already completed', 'YC004', $$SELECT consistency.idem_finish('bi-done', '{}')$$),
('idem_finish', 'live lease with another attempt', 'YC003', $$SELECT consistency.idem_finish('bi-lease-live', '{}', '', 2)$$),
('idem_finish', 'response NULL', '22004', $$SELECT consistency.idem_finish('bi-done', NULL)$$),
('idem_finish', 'response over idem_max_response_size', '54000', $$SELECT consistency.idem_finish('bi-done', to_jsonb(repeat('r', 1048577)))$$),
('idem_finish', 'scope NULL', '22004', $$SELECT consistency.idem_finish('bi-done', '{}', NULL)$$),
('idem_finish', 'scope 256 bytes', '22001', $$SELECT consistency.idem_finish('bi-done', '{}', repeat('s', 256))$$),
('idem_finish', 'attempt 0', '22023', $$SELECT consistency.idem_finish('bi-done', '{}', '', 0)$$),
('idem_lease', 'key NULL', '22004', $$SELECT * FROM consistency.idem_lease(NULL)$$),
('idem_lease', 'key empty', '22023', $$SELECT * FROM consistency.idem_lease('')$$),
('idem_lease', 'key 256 bytes', '22001', $$SELECT * FROM consistency.idem_lease(repeat('k', 256))$$),
('idem_lease', 'fingerprint 1025 bytes', '22001', $$SELECT * FROM consistency.idem_lease('bi-l', repeat('f', 1025))$$),
('idem_lease', 'lease NULL', '22004', $$SELECT * FROM consistency.idem_lease('bi-l', NULL, NULL)$$),
('idem_lease', 'lease 0', '22023', $$SELECT * FROM consistency.idem_lease('bi-l', NULL, '0')$$),
('idem_lease', 'lease negative', '22023', $$SELECT * FROM consistency.idem_lease('bi-l', NULL, '-5 minutes')$$),
('idem_lease', 'lease past the timestamptz range', '22008', $$SELECT * FROM consistency.idem_lease('bi-l', NULL, '178000000 years')$$),
('idem_lease', 'scope NULL', '22004', $$SELECT * FROM consistency.idem_lease('bi-l', scope => NULL)$$),
('idem_lease', 'scope 256 bytes', '22001', $$SELECT * FROM consistency.idem_lease('bi-l', scope => repeat('s', 256))$$),
('idem_lease', 'ttl NULL', '22004', $$SELECT * FROM consistency.idem_lease('bi-l', ttl => NULL)$$),
('idem_lease', 'ttl 0', '22023', $$SELECT * FROM consistency.idem_lease('bi-l', ttl => '0')$$),
('idem_lease', 'ttl negative', '22023', $$SELECT * FROM consistency.idem_lease('bi-l', ttl => '-1 day')$$),
('idem_lease', 'ttl past the timestamptz range', '22008', $$SELECT * FROM consistency.idem_lease('bi-l', ttl => '178000000 years')$$),
('idem_lease', 'wait NULL', '22004', $$SELECT * FROM consistency.idem_lease('bi-l', wait => NULL)$$),
('idem_lease', 'key claimed by this transaction with idem_begin', '55000', $$SELECT * FROM consistency.idem_begin('bi-both'); SELECT * FROM consistency.idem_lease('bi-both')$$),
('idem_checkpoint', 'key NULL', '22004', $$SELECT consistency.idem_checkpoint(NULL, 'step')$$),
('idem_checkpoint', 'key empty', '22023', $$SELECT consistency.idem_checkpoint('', 'step')$$),
('idem_checkpoint', 'key 256 bytes', '22001', $$SELECT consistency.idem_checkpoint(repeat('k', 256), 'step')$$),
('idem_checkpoint', 'key never claimed', 'YC002', $$SELECT consistency.idem_checkpoint('bi-unclaimed', 'step')$$),
('idem_checkpoint', 'recovery_point NULL', '22004', $$SELECT consistency.idem_checkpoint('bi-unclaimed', NULL)$$),
('idem_checkpoint', 'recovery_point 8193 bytes', '22001', $$SELECT consistency.idem_checkpoint('bi-unclaimed', repeat('p', 8193))$$),
('idem_checkpoint', 'scope NULL', '22004', $$SELECT consistency.idem_checkpoint('bi-unclaimed', 'step', NULL)$$),
('idem_checkpoint', 'scope 256 bytes', '22001', $$SELECT consistency.idem_checkpoint('bi-unclaimed', 'step', repeat('s', 256))$$),
('idem_checkpoint', 'attempt 0', '22023', $$SELECT consistency.idem_checkpoint('bi-unclaimed', 'step', '', 0)$$),
('idem_checkpoint', 'attempt int4 minimum', '22023', $$SELECT consistency.idem_checkpoint('bi-unclaimed', 'step', '', -2147483648)$$),
('idem_checkpoint', 'key claimed by this transaction, not leased', 'YC002', $$SELECT consistency.idem_checkpoint('bi-done', 'step')$$),
('idem_checkpoint', 'leased key completed', 'YC004', $$SELECT consistency.idem_checkpoint('bi-leased', 'step')$$),
('idem_release', 'key NULL', '22004', $$SELECT consistency.idem_release(NULL)$$),
('idem_release', 'key empty', '22023', $$SELECT consistency.idem_release('')$$),
('idem_release', 'key 256 bytes', '22001', $$SELECT consistency.idem_release(repeat('k', 256))$$),
('idem_release', 'scope NULL', '22004', $$SELECT consistency.idem_release('bi-unclaimed', NULL)$$),
('idem_release', 'scope 256 bytes', '22001', $$SELECT consistency.idem_release('bi-unclaimed', repeat('s', 256))$$),
('idem_release', 'attempt 0', '22023', $$SELECT consistency.idem_release('bi-unclaimed', '', 0)$$),
('idem_release', 'attempt -1', '22023', $$SELECT consistency.idem_release('bi-unclaimed', '', -1)$$),
('idem_release', 'key completed', 'YC004', $$SELECT consistency.idem_release('bi-done')$$),
('idem_release', 'leased key completed', 'YC004', $$SELECT consistency.idem_release('bi-leased')$$),
('idem_purge', 'batch_size NULL', '22004', $$SELECT consistency.idem_purge(NULL)$$),
('idem_purge', 'batch_size 0', '22023', $$SELECT consistency.idem_purge(0)$$),
('idem_purge', 'batch_size -1', '22023', $$SELECT consistency.idem_purge(-1)$$),
('idem_purge', 'batch_size int4 minimum', '22023', $$SELECT consistency.idem_purge(-2147483648)$$),
('idem_purge', 'called by consistency_user', '42501', $$SELECT consistency.idem_purge(1)$$),

-- Optimistic versioning.
('enable_versioning', 'rel NULL', '22004', $$SELECT consistency.enable_versioning(NULL)$$),
('enable_versioning', 'rel a view', '42809', $$SELECT consistency.enable_versioning('public.bi_view')$$),
('enable_versioning', 'rel a sequence', '42809', $$SELECT consistency.enable_versioning('public.bi_seq')$$),
('enable_versioning', 'rel an index', '42809', $$SELECT consistency.enable_versioning('public.bi_items_pkey')$$),
('enable_versioning', 'rel a system catalog', '42501', $$SELECT consistency.enable_versioning('pg_catalog.pg_class')$$),
('enable_versioning', 'rel an extension table', '42501', $$SELECT consistency.enable_versioning('consistency.inventory')$$),
('enable_versioning', 'version_column NULL', '22004', $$SELECT consistency.enable_versioning('public.bi_items', NULL)$$),
('enable_versioning', 'version_column empty', '22023', $$SELECT consistency.enable_versioning('public.bi_items', '')$$),
('enable_versioning', 'version_column of type text', '42804', $$SELECT consistency.enable_versioning('public.bi_items', 'name')$$),
('enable_versioning', 'version_column nullable', '55000', $$SELECT consistency.enable_versioning('public.bi_items', 'loose')$$),
('enable_versioning', 'version_column generated', '428C9', $$SELECT consistency.enable_versioning('public.bi_items', 'twice')$$),
('enable_versioning', 'version_column a system column', '42P10', $$SELECT consistency.enable_versioning('public.bi_items', 'ctid')$$),
('enable_versioning', 'strict NULL', '22004', $$SELECT consistency.enable_versioning('public.bi_items', 'version', NULL)$$),
('enable_versioning', 'adding a column to a table the role does not own', '42501', $$SELECT consistency.enable_versioning('public.bi_items', 'v2')$$),
('disable_versioning', 'rel NULL', '22004', $$SELECT consistency.disable_versioning(NULL)$$),
('disable_versioning', 'rel a view', '42809', $$SELECT consistency.disable_versioning('public.bi_view')$$),
('disable_versioning', 'rel a sequence', '42809', $$SELECT consistency.disable_versioning('public.bi_seq')$$),
('disable_versioning', 'rel not owned', '42501', $$SELECT consistency.disable_versioning('public.bi_items')$$),
('update_versioned', 'rel NULL', '22004', $$SELECT consistency.update_versioned(NULL, '{"id": 1}', 1, '{"qty": 5}')$$),
('update_versioned', 'rel a view', '42809', $$SELECT consistency.update_versioned('public.bi_view', '{"id": 1}', 1, '{"name": "x"}')$$),
('update_versioned', 'rel a sequence', '42809', $$SELECT consistency.update_versioned('public.bi_seq', '{"id": 1}', 1, '{"name": "x"}')$$),
('update_versioned', 'rel without a primary key', '42P10', $$SELECT consistency.update_versioned('public.bi_nokey', '{"a": 1}', 1, '{"a": 2}')$$),
('update_versioned', 'key NULL', '22004', $$SELECT consistency.update_versioned('public.bi_items', NULL, 1, '{"qty": 5}')$$),
('update_versioned', 'key {}', '22023', $$SELECT consistency.update_versioned('public.bi_items', '{}', 1, '{"qty": 5}')$$),
('update_versioned', 'key an array', '22023', $$SELECT consistency.update_versioned('public.bi_items', '[1]', 1, '{"qty": 5}')$$),
('update_versioned', 'key a JSON string', '22023', $$SELECT consistency.update_versioned('public.bi_items', '"id"', 1, '{"qty": 5}')$$),
('update_versioned', 'key JSON null', '22023', $$SELECT consistency.update_versioned('public.bi_items', 'null', 1, '{"qty": 5}')$$),
('update_versioned', 'key naming a column that does not exist', '42703', $$SELECT consistency.update_versioned('public.bi_items', '{"nope": 1}', 1, '{"qty": 5}')$$),
('update_versioned', 'key naming a column outside the primary key', '42P10', $$SELECT consistency.update_versioned('public.bi_items', '{"name": "one"}', 1, '{"qty": 5}')$$),
('update_versioned', 'key with an extra column', '42P10', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1, "name": "one"}', 1, '{"qty": 5}')$$),
('update_versioned', 'key naming a system column', '42P10', $$SELECT consistency.update_versioned('public.bi_items', '{"ctid": "(0,1)"}', 1, '{"qty": 5}')$$),
('update_versioned', 'key value JSON null', '22004', $$SELECT consistency.update_versioned('public.bi_items', '{"id": null}', 1, '{"qty": 5}')$$),
('update_versioned', 'key value not an integer', '22P02', $$SELECT consistency.update_versioned('public.bi_items', '{"id": "x"}', 1, '{"qty": 5}')$$),
('update_versioned', 'key value out of the int4 range', '22003', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 2147483648}', 1, '{"qty": 5}')$$),
('update_versioned', 'key value 1e400', '22003', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1e400}', 1, '{"qty": 5}')$$),
('update_versioned', 'key of a missing row', 'P0002', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 99}', 1, '{"qty": 5}')$$),
('update_versioned', 'expected_version NULL', '22004', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', NULL, '{"qty": 5}')$$),
('update_versioned', 'expected_version 0', '40001', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 0, '{"qty": 5}')$$),
('update_versioned', 'expected_version -1', '40001', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', -1, '{"qty": 5}')$$),
('update_versioned', 'expected_version int8 minimum', '40001', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', -9223372036854775808, '{"qty": 5}')$$),
('update_versioned', 'expected_version int8 maximum', '40001', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 9223372036854775807, '{"qty": 5}')$$),
('update_versioned', 'changes NULL', '22004', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, NULL)$$),
('update_versioned', 'changes {}', '22023', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{}')$$),
('update_versioned', 'changes an array', '22023', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '[{"qty": 5}]')$$),
('update_versioned', 'changes a number', '22023', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '5')$$),
('update_versioned', 'changes setting the version column', '22023', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"version": 7}')$$),
('update_versioned', 'changes naming a column that does not exist', '42703', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"nope": 5}')$$),
('update_versioned', 'changes naming a column with quotes in its name', '42703', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty\" = 0; --": 5}')$$),
('update_versioned', 'changes naming a system column', '42P10', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"xmin": 5}')$$),
('update_versioned', 'changes naming a generated column', '428C9', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"twice": 5}')$$),
('update_versioned', 'changes value not an integer', '22P02', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": "five"}')$$),
('update_versioned', 'changes value out of the int4 range', '22003', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 9223372036854775808}')$$),
('update_versioned', 'changes value an object for an integer column', '22P02', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": {"a": 1}}')$$),
('update_versioned', 'changes setting a NOT NULL primary key to null', '23502', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"id": null}')$$),
('update_versioned', 'changes setting the primary key to another row''s', '23505', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"id": 2}')$$),
('update_versioned', 'version_column NULL', '22004', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 5}', NULL)$$),
('update_versioned', 'version_column empty', '42703', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 5}', '')$$),
('update_versioned', 'version_column that does not exist', '42703', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 5}', 'a"b')$$),
('update_versioned', 'version_column of type text', '42804', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 5}', 'name')$$),
('update_versioned', 'version_column generated', '428C9', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 5}', 'twice')$$),
('update_versioned', 'without UPDATE privilege', '42501', $$SELECT consistency.update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 5}')$$),
('try_update_versioned', 'rel NULL', '22004', $$SELECT consistency.try_update_versioned(NULL, '{"id": 1}', 1, '{"qty": 5}')$$),
('try_update_versioned', 'key NULL', '22004', $$SELECT consistency.try_update_versioned('public.bi_items', NULL, 1, '{"qty": 5}')$$),
('try_update_versioned', 'key {}', '22023', $$SELECT consistency.try_update_versioned('public.bi_items', '{}', 1, '{"qty": 5}')$$),
('try_update_versioned', 'key of a missing row', 'P0002', $$SELECT consistency.try_update_versioned('public.bi_items', '{"id": 99}', 1, '{"qty": 5}')$$),
('try_update_versioned', 'expected_version NULL', '22004', $$SELECT consistency.try_update_versioned('public.bi_items', '{"id": 1}', NULL, '{"qty": 5}')$$),
('try_update_versioned', 'changes NULL', '22004', $$SELECT consistency.try_update_versioned('public.bi_items', '{"id": 1}', 1, NULL)$$),
('try_update_versioned', 'changes setting the version column', '22023', $$SELECT consistency.try_update_versioned('public.bi_items', '{"id": 1}', 1, '{"version": 7}')$$),
('try_update_versioned', 'version_column NULL', '22004', $$SELECT consistency.try_update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 5}', NULL)$$),
('try_update_versioned', 'version_column that does not exist', '42703', $$SELECT consistency.try_update_versioned('public.bi_items', '{"id": 1}', 1, '{"qty": 5}', 'nope')$$),
-- version_guard's arguments are its trigger arguments; it is checked when it fires.
('version_guard', 'called as a function', '39P01', $$SELECT consistency.version_guard()$$),
('version_guard', 'an AFTER trigger', '39P01', $$CREATE TRIGGER bi_t AFTER UPDATE ON public.bi_nokey FOR EACH ROW EXECUTE FUNCTION consistency.version_guard(); INSERT INTO public.bi_nokey VALUES (1); UPDATE public.bi_nokey SET a = 2$$),
('version_guard', 'a statement trigger', '39P01', $$CREATE TRIGGER bi_t BEFORE UPDATE ON public.bi_nokey FOR EACH STATEMENT EXECUTE FUNCTION consistency.version_guard(); UPDATE public.bi_nokey SET a = 2$$),
('version_guard', 'an INSERT trigger', '39P01', $$CREATE TRIGGER bi_t BEFORE INSERT ON public.bi_nokey FOR EACH ROW EXECUTE FUNCTION consistency.version_guard(); INSERT INTO public.bi_nokey VALUES (1)$$),
('version_guard', 'a column argument that does not exist', '42703', $$CREATE TRIGGER bi_t BEFORE UPDATE ON public.bi_nokey FOR EACH ROW EXECUTE FUNCTION consistency.version_guard('a"b'); INSERT INTO public.bi_nokey VALUES (1); UPDATE public.bi_nokey SET a = 2$$),
('version_guard', 'a second argument other than strict', '39P01', $$CREATE TRIGGER bi_t BEFORE UPDATE ON public.bi_items FOR EACH ROW EXECUTE FUNCTION consistency.version_guard('version', 'lax'); UPDATE public.bi_items SET qty = 3, version = 1 WHERE id = 1$$),
('version_guard', 'three arguments', '39P01', $$CREATE TRIGGER bi_t BEFORE UPDATE ON public.bi_items FOR EACH ROW EXECUTE FUNCTION consistency.version_guard('version', 'strict', 'x'); UPDATE public.bi_items SET qty = 3, version = 1 WHERE id = 1$$),

-- Session LSN tokens: only the canonical v1:<sysid>:<timeline>:<LSN> spelling, at most 52 bytes.
('write_token', 'in a transaction that has written', 'YC306', $$SELECT consistency.write_token()$$),
('token_max', 'a NULL', '22004', format($$SELECT consistency.token_max(NULL, 'v1:%s:1:0/0')$$, :'sysid')),
('token_max', 'b NULL', '22004', format($$SELECT consistency.token_max('v1:%s:1:0/0', NULL)$$, :'sysid')),
('token_max', 'a empty', 'YC301', format($$SELECT consistency.token_max('', 'v1:%s:1:0/0')$$, :'sysid')),
('token_max', 'b malformed (v2)', 'YC301', format($$SELECT consistency.token_max('v1:%s:1:0/0', 'v2:%s:1:0/0')$$, :'sysid', :'sysid')),
('token_max', 'a with a leading zero in the timeline', 'YC301', format($$SELECT consistency.token_max('v1:%s:01:0/0', 'v1:%s:1:0/0')$$, :'sysid', :'sysid')),
('token_max', 'b with a leading zero in the LSN', 'YC301', format($$SELECT consistency.token_max('v1:%s:1:0/0', 'v1:%s:1:0/01')$$, :'sysid', :'sysid')),
('token_max', 'a of another cluster', 'YC302', format($$SELECT consistency.token_max('v1:1:1:0/0', 'v1:%s:1:0/0')$$, :'sysid')),
('token_status', 'token NULL', '22004', $$SELECT consistency.token_status(NULL)$$),
('token_status', 'token empty', 'YC301', $$SELECT consistency.token_status('')$$),
('token_status', 'token v1: only', 'YC301', $$SELECT consistency.token_status('v1:')$$),
('token_status', 'token with a trailing space', 'YC301', format($$SELECT consistency.token_status('v1:%s:1:0/0 ')$$, :'sysid')),
('token_status', 'token with a trailing newline', 'YC301', format($$SELECT consistency.token_status(E'v1:%s:1:0/0\n')$$, :'sysid')),
('token_status', 'token in upper case', 'YC301', format($$SELECT consistency.token_status('V1:%s:1:0/0')$$, :'sysid')),
('token_status', 'token sysid past 2^64', 'YC301', $$SELECT consistency.token_status('v1:18446744073709551616:1:0/0')$$),
('token_status', 'token sysid negative', 'YC301', $$SELECT consistency.token_status('v1:-1:1:0/0')$$),
('token_status', 'token timeline 0', 'YC301', format($$SELECT consistency.token_status('v1:%s:0:0/0')$$, :'sysid')),
('token_status', 'token timeline past 2^32', 'YC301', format($$SELECT consistency.token_status('v1:%s:4294967296:0/0')$$, :'sysid')),
('token_status', 'token LSN with 9 hex digits', 'YC301', format($$SELECT consistency.token_status('v1:%s:1:100000000/0')$$, :'sysid')),
('token_status', 'token LSN in lower case hex', 'YC301', format($$SELECT consistency.token_status('v1:%s:1:0/3a')$$, :'sysid')),
('token_status', 'token with a trailing field', 'YC301', format($$SELECT consistency.token_status('v1:%s:1:0/0:')$$, :'sysid')),
('token_status', 'token 53 bytes', 'YC301', $$SELECT consistency.token_status(repeat('v', 53))$$),
('token_status', 'token of 400 kB', 'YC301', $$SELECT consistency.token_status(repeat('v1:', 140000))$$),
('token_status', 'token with control characters', 'YC301', E'SELECT consistency.token_status(E''v1:\\x01:1:0/0'')'),
('wait_for_token', 'token NULL', '22004', $$SELECT consistency.wait_for_token(NULL)$$),
('wait_for_token', 'token malformed', 'YC301', $$SELECT consistency.wait_for_token('v1:x:1:0/0')$$),
('wait_for_token', 'token of another cluster', 'YC302', $$SELECT consistency.wait_for_token('v1:1:1:0/0')$$),
('wait_for_token', 'timeout NULL', '22004', format($$SELECT consistency.wait_for_token('v1:%s:1:0/0', NULL)$$, :'sysid')),
('wait_for_token', 'timeout negative', '22023', format($$SELECT consistency.wait_for_token('v1:%s:1:0/0', '-1 second')$$, :'sysid')),
('wait_for_token', 'timeout past 2147483647 ms', '22023', format($$SELECT consistency.wait_for_token('v1:%s:1:0/0', '2147483648 milliseconds')$$, :'sysid')),
('wait_for_token', 'timeout 100 years', '22023', format($$SELECT consistency.wait_for_token('v1:%s:1:0/0', '100 years')$$, :'sysid')),
('wait_for_token', 'timeout 0', NULL, format($$SELECT consistency.wait_for_token('v1:%s:1:0/0', '0')$$, :'sysid')),

-- In-doubt two-phase commit: gids cy1:<sysid>:<database oid>:<xid8>[:<participant>],
-- participant <= 64 bytes; decisions commit | abort; actions auto | commit | rollback.
('tpc_gid', 'participant NULL', '22004', $$SELECT consistency.tpc_gid(NULL)$$),
('tpc_gid', 'participant 65 bytes', '22001', $$SELECT consistency.tpc_gid(repeat('p', 65))$$),
('tpc_gid', 'participant 64 bytes', NULL, $$SELECT consistency.tpc_gid(repeat('p', 64))$$),
('tpc_gid', 'participant 33 two-byte characters (66 bytes)', '22001', $$SELECT consistency.tpc_gid(repeat('é', 33))$$),
('tpc_log_decision', 'gid NULL', '22004', $$SELECT consistency.tpc_log_decision(NULL)$$),
('tpc_log_decision', 'gid empty', '22023', $$SELECT consistency.tpc_log_decision('')$$),
('tpc_log_decision', 'gid hand-made', 'YC401', $$SELECT consistency.tpc_log_decision('order 42 at shop')$$),
('tpc_log_decision', 'gid cy1: only', 'YC401', $$SELECT consistency.tpc_log_decision('cy1:')$$),
('tpc_log_decision', 'gid cy2 prefix', 'YC401', format($$SELECT consistency.tpc_log_decision('cy2:%s:%s:1000')$$, :'sysid', :'dboid')),
('tpc_log_decision', 'gid xid past 2^64', 'YC401', format($$SELECT consistency.tpc_log_decision('cy1:%s:%s:18446744073709551616')$$, :'sysid', :'dboid')),
('tpc_log_decision', 'gid xid negative', 'YC401', format($$SELECT consistency.tpc_log_decision('cy1:%s:%s:-1')$$, :'sysid', :'dboid')),
('tpc_log_decision', 'gid xid with a leading zero', 'YC401', format($$SELECT consistency.tpc_log_decision('cy1:%s:%s:0%s')$$, :'sysid', :'dboid', :'otherxid')),
('tpc_log_decision', 'gid of 400 kB', '22001', $$SELECT consistency.tpc_log_decision(repeat('cy1:', 100000))$$),
('tpc_log_decision', 'gid of another transaction', 'YC402', format($$SELECT consistency.tpc_log_decision('cy1:%s:%s:%s')$$, :'sysid', :'dboid', :'otherxid')),
('tpc_log_decision', 'gid of another database', 'YC402', format($$SELECT consistency.tpc_log_decision('cy1:%s:1:%s')$$, :'sysid', :'otherxid')),
('tpc_log_decision', 'gid of another cluster', 'YC402', format($$SELECT consistency.tpc_log_decision('cy1:1:%s:%s')$$, :'dboid', :'otherxid')),
('tpc_log_decision', 'decision NULL', '22004', format($$SELECT consistency.tpc_log_decision(%L, NULL)$$, :'gid')),
('tpc_log_decision', 'decision empty', '22023', format($$SELECT consistency.tpc_log_decision(%L, '')$$, :'gid')),
('tpc_log_decision', 'decision maybe', '22023', format($$SELECT consistency.tpc_log_decision(%L, 'maybe')$$, :'gid')),
('tpc_log_decision', 'decision in upper case', '22023', format($$SELECT consistency.tpc_log_decision(%L, 'COMMIT')$$, :'gid')),
('tpc_log_decision', 'decision 17 bytes', '22001', format($$SELECT consistency.tpc_log_decision(%L, repeat('c', 17))$$, :'gid')),
('prepared_xacts', 'min_age NULL', '22004', $$SELECT * FROM consistency.prepared_xacts(NULL)$$),
('prepared_xacts', 'min_age negative', '22023', $$SELECT * FROM consistency.prepared_xacts('-1 second')$$),
('prepared_xacts', 'min_age -178000000 years', '22023', $$SELECT * FROM consistency.prepared_xacts('-178000000 years')$$),
('resolve_prepared', 'gid NULL', '22004', $$SELECT * FROM consistency.resolve_prepared(NULL)$$),
('resolve_prepared', 'gid empty', '22023', $$SELECT * FROM consistency.resolve_prepared('')$$),
('resolve_prepared', 'gid 400 kB', '22001', $$SELECT * FROM consistency.resolve_prepared(repeat('g', 400000))$$),
('resolve_prepared', 'action NULL', '22004', $$SELECT * FROM consistency.resolve_prepared('bi', NULL)$$),
('resolve_prepared', 'action empty', '22023', $$SELECT * FROM consistency.resolve_prepared('bi', '')$$),
('resolve_prepared', 'action in upper case', '22023', $$SELECT * FROM consistency.resolve_prepared('bi', 'COMMIT')$$),
('resolve_prepared', 'action abort (a decision, not an action)', '22023', $$SELECT * FROM consistency.resolve_prepared('bi', 'abort')$$),
('resolve_prepared', 'dry_run NULL', '22004', $$SELECT * FROM consistency.resolve_prepared('bi', 'auto', NULL)$$),
('resolve_prepared', 'force NULL', '22004', $$SELECT * FROM consistency.resolve_prepared('bi', 'auto', true, NULL)$$),
('resolve_prepared', 'called by consistency_user', '42501', $$SELECT * FROM consistency.resolve_prepared('bi')$$),
('resolve_stale', 'min_age NULL', '22004', $$SELECT * FROM consistency.resolve_stale(NULL)$$),
('resolve_stale', 'min_age negative', '22023', $$SELECT * FROM consistency.resolve_stale('-10 minutes')$$),
('resolve_stale', 'dry_run NULL', '22004', $$SELECT * FROM consistency.resolve_stale('10 minutes', NULL)$$),
('resolve_stale', 'called by consistency_user', '42501', $$SELECT * FROM consistency.resolve_stale()$$),
('tpc_prune_decisions', 'min_age NULL', '22004', $$SELECT consistency.tpc_prune_decisions(NULL)$$),
('tpc_prune_decisions', 'min_age negative', '22023', $$SELECT consistency.tpc_prune_decisions('-1 second')$$),
('tpc_prune_decisions', 'min_age -178000000 years', '22023', $$SELECT consistency.tpc_prune_decisions('-178000000 years')$$),
('tpc_prune_decisions', 'called by consistency_user', '42501', $$SELECT consistency.tpc_prune_decisions('1 day')$$),

-- Inventory: sku and reservation_id 1-255 bytes, qty > 0, ttl > 0 with now + ttl a valid
-- timestamptz, on_hand >= 0, slots 1-64, delta <> 0, batch_size > 0; reserve_all: equal-length
-- one-dimensional arrays without NULLs, at most 1000 SKUs.
('stock_set', 'sku NULL', '22004', $$SELECT consistency.stock_set(NULL, 1)$$),
('stock_set', 'sku empty', '22023', $$SELECT consistency.stock_set('', 1)$$),
('stock_set', 'sku 256 bytes', '22001', $$SELECT consistency.stock_set(repeat('s', 256), 1)$$),
('stock_set', 'sku 256 bytes in 64 four-byte characters', '22001', $$SELECT consistency.stock_set(repeat('🔑', 64), 1)$$),
('stock_set', 'sku 255 bytes', NULL, $$SELECT consistency.stock_set(repeat('s', 255), 1)$$),
('stock_set', 'on_hand NULL', '22004', $$SELECT consistency.stock_set('bi-new', NULL)$$),
('stock_set', 'on_hand -1', '22023', $$SELECT consistency.stock_set('bi-new', -1)$$),
('stock_set', 'on_hand int8 minimum', '22023', $$SELECT consistency.stock_set('bi-new', -9223372036854775808)$$),
('stock_set', 'on_hand below the reserved units', 'YC207', $$SELECT consistency.stock_set('bi-sku', 1)$$),
('stock_set', 'slots 0', '22023', $$SELECT consistency.stock_set('bi-new', 1, 0)$$),
('stock_set', 'slots -1', '22023', $$SELECT consistency.stock_set('bi-new', 1, -1)$$),
('stock_set', 'slots 65', '22023', $$SELECT consistency.stock_set('bi-new', 1, 65)$$),
('stock_set', 'slots int4 maximum', '22023', $$SELECT consistency.stock_set('bi-new', 1, 2147483647)$$),
('stock_set', 'called by consistency_user', '42501', $$SELECT consistency.stock_set('bi-new', 1)$$),
('stock_add', 'sku NULL', '22004', $$SELECT consistency.stock_add(NULL, 1)$$),
('stock_add', 'sku empty', '22023', $$SELECT consistency.stock_add('', 1)$$),
('stock_add', 'sku 256 bytes', '22001', $$SELECT consistency.stock_add(repeat('s', 256), 1)$$),
('stock_add', 'sku unknown', 'YC201', $$SELECT consistency.stock_add('bi-nope', 1)$$),
('stock_add', 'delta NULL', '22004', $$SELECT consistency.stock_add('bi-sku', NULL)$$),
('stock_add', 'delta 0', '22023', $$SELECT consistency.stock_add('bi-sku', 0)$$),
('stock_add', 'delta below the reserved units', 'YC207', $$SELECT consistency.stock_add('bi-sku', -9)$$),
('stock_add', 'delta int8 minimum', 'YC207', $$SELECT consistency.stock_add('bi-sku', -9223372036854775808)$$),
('stock_add', 'delta int8 maximum (on hand overflows)', '22003', $$SELECT consistency.stock_add('bi-sku', 9223372036854775807)$$),
('stock_add', 'delta int8 maximum on a multi-slot SKU', '22003', $$SELECT consistency.stock_add('bi-hot', 9223372036854775807)$$),
('reserve', 'sku NULL', '22004', $$SELECT consistency.reserve(NULL, 1, 'bi-r')$$),
('reserve', 'sku empty', '22023', $$SELECT consistency.reserve('', 1, 'bi-r')$$),
('reserve', 'sku 256 bytes', '22001', $$SELECT consistency.reserve(repeat('s', 256), 1, 'bi-r')$$),
('reserve', 'sku unknown', 'YC201', $$SELECT consistency.reserve('bi-nope', 1, 'bi-r')$$),
('reserve', 'qty NULL', '22004', $$SELECT consistency.reserve('bi-sku', NULL, 'bi-r')$$),
('reserve', 'qty 0', '22023', $$SELECT consistency.reserve('bi-sku', 0, 'bi-r')$$),
('reserve', 'qty -1', '22023', $$SELECT consistency.reserve('bi-sku', -1, 'bi-r')$$),
('reserve', 'qty int8 minimum', '22023', $$SELECT consistency.reserve('bi-sku', -9223372036854775808, 'bi-r')$$),
('reserve', 'reservation_id NULL', '22004', $$SELECT consistency.reserve('bi-sku', 1, NULL)$$),
('reserve', 'reservation_id empty', '22023', $$SELECT consistency.reserve('bi-sku', 1, '')$$),
('reserve', 'reservation_id 256 bytes', '22001', $$SELECT consistency.reserve('bi-sku', 1, repeat('r', 256))$$),
('reserve', 'reservation_id reused for another quantity', 'YC202', $$SELECT consistency.reserve('bi-sku', 3, 'bi-res')$$),
('reserve', 'reservation_id reused for another SKU', 'YC202', $$SELECT consistency.reserve('bi-hot', 2, 'bi-res')$$),
('reserve', 'ttl NULL', '22004', $$SELECT consistency.reserve('bi-sku', 1, 'bi-r', NULL)$$),
('reserve', 'ttl 0', '22023', $$SELECT consistency.reserve('bi-sku', 1, 'bi-r', '0')$$),
('reserve', 'ttl negative', '22023', $$SELECT consistency.reserve('bi-sku', 1, 'bi-r', '-15 minutes')$$),
('reserve', 'ttl past the timestamptz range', '22008', $$SELECT consistency.reserve('bi-sku', 1, 'bi-r', '178000000 years')$$),
('reserve', 'ttl past the timestamptz range on a multi-slot SKU', '22008', $$SELECT consistency.reserve('bi-hot', 1, 'bi-r', '2147483647 days')$$),
('reserve', 'wait NULL', '22004', $$SELECT consistency.reserve('bi-sku', 1, 'bi-r', '1 minute', NULL)$$),
('reserve_now', 'sku NULL', '22004', $$SELECT consistency.reserve_now(NULL, 1, 'bi-r')$$),
('reserve_now', 'sku empty', '22023', $$SELECT consistency.reserve_now('', 1, 'bi-r')$$),
('reserve_now', 'sku 256 bytes', '22001', $$SELECT consistency.reserve_now(repeat('s', 256), 1, 'bi-r')$$),
('reserve_now', 'qty NULL', '22004', $$SELECT consistency.reserve_now('bi-sku', NULL, 'bi-r')$$),
('reserve_now', 'qty 0', '22023', $$SELECT consistency.reserve_now('bi-sku', 0, 'bi-r')$$),
('reserve_now', 'qty -1', '22023', $$SELECT consistency.reserve_now('bi-sku', -1, 'bi-r')$$),
('reserve_now', 'reservation_id NULL', '22004', $$SELECT consistency.reserve_now('bi-sku', 1, NULL)$$),
('reserve_now', 'reservation_id empty', '22023', $$SELECT consistency.reserve_now('bi-sku', 1, '')$$),
('reserve_now', 'reservation_id 256 bytes', '22001', $$SELECT consistency.reserve_now('bi-sku', 1, repeat('r', 256))$$),
('reserve_now', 'ttl NULL', '22004', $$SELECT consistency.reserve_now('bi-sku', 1, 'bi-r', NULL)$$),
('reserve_now', 'ttl 0', '22023', $$SELECT consistency.reserve_now('bi-sku', 1, 'bi-r', '0')$$),
('reserve_now', 'ttl negative', '22023', $$SELECT consistency.reserve_now('bi-sku', 1, 'bi-r', '-15 minutes')$$),
('reserve_now', 'wait NULL', '22004', $$SELECT consistency.reserve_now('bi-sku', 1, 'bi-r', '1 minute', NULL)$$),
-- (pgTAP runs in one transaction: its errors from the reservation itself, YC201 to YC204 as
-- reserve()'s, are in sql/inventory_now.sql)
('reserve_now', 'inside a transaction block', '25001', $$SELECT consistency.reserve_now('bi-sku', 1, 'bi-r')$$),
('reserve_all', 'reservation_id NULL', '22004', $$SELECT consistency.reserve_all(NULL, ARRAY['bi-sku'], ARRAY[1]::int8[])$$),
('reserve_all', 'reservation_id empty', '22023', $$SELECT consistency.reserve_all('', ARRAY['bi-sku'], ARRAY[1]::int8[])$$),
('reserve_all', 'reservation_id 256 bytes', '22001', $$SELECT consistency.reserve_all(repeat('r', 256), ARRAY['bi-sku'], ARRAY[1]::int8[])$$),
('reserve_all', 'skus NULL', '22004', $$SELECT consistency.reserve_all('bi-ra', NULL, ARRAY[1]::int8[])$$),
('reserve_all', 'skus empty', '22023', $$SELECT consistency.reserve_all('bi-ra', '{}', '{}')$$),
('reserve_all', 'skus with a NULL element', '22004', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku', NULL], ARRAY[1, 1]::int8[])$$),
('reserve_all', 'skus with an empty element', '22023', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku', ''], ARRAY[1, 1]::int8[])$$),
('reserve_all', 'skus with a 256-byte element', '22001', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku', repeat('s', 256)], ARRAY[1, 1]::int8[])$$),
('reserve_all', 'skus two-dimensional', '22023', $$SELECT consistency.reserve_all('bi-ra', '{{bi-sku},{bi-hot}}', '{1,1}')$$),
('reserve_all', 'skus with an unknown SKU', 'YC201', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku', 'bi-nope'], ARRAY[1, 1]::int8[])$$),
('reserve_all', 'skus 1001 elements', '54000', $$SELECT consistency.reserve_all('bi-ra', (SELECT array_agg('bi-sku'::text) FROM generate_series(1, 1001)), (SELECT array_agg(1::int8) FROM generate_series(1, 1001)))$$),
('reserve_all', 'qtys NULL', '22004', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku'], NULL)$$),
('reserve_all', 'qtys with a NULL element', '22004', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku'], ARRAY[NULL]::int8[])$$),
('reserve_all', 'qtys with 0', '22023', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku'], ARRAY[0]::int8[])$$),
('reserve_all', 'qtys with -1', '22023', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku'], ARRAY[-1]::int8[])$$),
('reserve_all', 'qtys two-dimensional', '22023', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku', 'bi-hot'], '{{1},{1}}')$$),
('reserve_all', 'qtys shorter than skus', '22023', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku', 'bi-hot'], ARRAY[1]::int8[])$$),
('reserve_all', 'qtys of one SKU summing past int8', '22003', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku', 'bi-sku'], ARRAY[9223372036854775807, 1]::int8[])$$),
('reserve_all', 'qtys of two SKUs summing past int8', '22003', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku', 'bi-hot'], ARRAY[9223372036854775807, 1]::int8[])$$),
('reserve_all', 'ttl NULL', '22004', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku'], ARRAY[1]::int8[], NULL)$$),
('reserve_all', 'ttl 0', '22023', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku'], ARRAY[1]::int8[], '0')$$),
('reserve_all', 'ttl past the timestamptz range', '22008', $$SELECT consistency.reserve_all('bi-ra', ARRAY['bi-sku'], ARRAY[1]::int8[], '178000000 years')$$),
('reserve_all', 'reservation_id reused for other SKUs', 'YC202', $$SELECT consistency.reserve_all('bi-res', ARRAY['bi-sku', 'bi-hot'], ARRAY[2, 1]::int8[])$$),
('confirm', 'reservation_id NULL', '22004', $$SELECT consistency.confirm(NULL)$$),
('confirm', 'reservation_id empty', '22023', $$SELECT consistency.confirm('')$$),
('confirm', 'reservation_id 256 bytes', '22001', $$SELECT consistency.confirm(repeat('r', 256))$$),
('confirm', 'reservation_id unknown', 'YC206', $$SELECT consistency.confirm('bi-nope')$$),
('confirm', 'reservation_id with quotes and a semicolon', 'YC206', $$SELECT consistency.confirm($q$bi'; DELETE FROM consistency.reservations; --$q$)$$),
('release', 'reservation_id NULL', '22004', $$SELECT consistency.release(NULL)$$),
('release', 'reservation_id empty', '22023', $$SELECT consistency.release('')$$),
('release', 'reservation_id 256 bytes', '22001', $$SELECT consistency.release(repeat('r', 256))$$),
('release', 'reservation_id unknown', 'YC206', $$SELECT consistency.release('bi-nope')$$),
('expire_reservations', 'batch_size NULL', '22004', $$SELECT consistency.expire_reservations(NULL)$$),
('expire_reservations', 'batch_size 0', '22023', $$SELECT consistency.expire_reservations(0)$$),
('expire_reservations', 'batch_size -1', '22023', $$SELECT consistency.expire_reservations(-1)$$),
('expire_reservations', 'batch_size int4 minimum', '22023', $$SELECT consistency.expire_reservations(-2147483648)$$),
('expire_reservations', 'called by consistency_user', '42501', $$SELECT consistency.expire_reservations()$$),
('merge_slots', 'batch_size NULL', '22004', $$SELECT consistency.merge_slots(NULL)$$),
('merge_slots', 'batch_size 0', '22023', $$SELECT consistency.merge_slots(0)$$),
('merge_slots', 'batch_size int4 minimum', '22023', $$SELECT consistency.merge_slots(-2147483648)$$),
('merge_slots', 'called by consistency_user', '42501', $$SELECT consistency.merge_slots()$$),
('available', 'sku NULL', '22004', $$SELECT consistency.available(NULL)$$),
('available', 'sku empty', '22023', $$SELECT consistency.available('')$$),
('available', 'sku 256 bytes', '22001', $$SELECT consistency.available(repeat('s', 256))$$),
('available', 'sku unknown', 'YC201', $$SELECT consistency.available('bi-nope')$$),
-- Operations: maintenance(batch_size, max_batches), both > 0; it commits, so it must be CALLed
-- outside a transaction block (this file runs in one).
('maintenance', 'batch_size NULL', '22004', $$CALL consistency.maintenance(NULL)$$),
('maintenance', 'max_batches NULL', '22004', $$CALL consistency.maintenance(10, NULL)$$),
('maintenance', 'batch_size 0', '22023', $$CALL consistency.maintenance(0)$$),
('maintenance', 'batch_size int4 minimum', '22023', $$CALL consistency.maintenance(-2147483648)$$),
('maintenance', 'max_batches 0', '22023', $$CALL consistency.maintenance(10, 0)$$),
('maintenance', 'max_batches -1', '22023', $$CALL consistency.maintenance(10, -1)$$),
('maintenance', 'called inside a transaction block', '2D000', $$CALL consistency.maintenance()$$),
('maintenance', 'called by consistency_user', '42501', $$CALL consistency.maintenance()$$);

-- Rows whose role is not the default.
UPDATE bi_rows SET role = 'bi_user'
 WHERE what LIKE 'called by consistency_user%' OR what IN ('adding a column to a table the role does not own',
		'rel not owned', 'without UPDATE privilege');

SELECT plan((SELECT (count(*) + count(want) + 1)::int FROM bi_rows));

-- Every function of the extension with arguments has rows (new functions must add theirs).
SELECT is_empty($$
	SELECT p.proname FROM pg_catalog.pg_proc AS p
	 WHERE p.pronamespace = 'consistency'::regnamespace
	   AND (p.pronargs > 0 OR p.prorettype = 'trigger'::regtype)
	   AND p.proname NOT IN ('tpc_decisions_guard', 'tpc_resolution_log_guard')
	   AND p.proname NOT IN (SELECT fn FROM bi_rows)
$$, 'every function with arguments has bad-input rows');

SELECT pg_temp.bi_check(fn, call, role, want, what) FROM bi_rows ORDER BY id;

SELECT * FROM finish();
ROLLBACK;
