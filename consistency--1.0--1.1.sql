-- consistency--1.0--1.1.sql: everything added or changed since 1.0.
--
-- 1.0 has shipped and its install script is frozen; CREATE EXTENSION runs
-- consistency--1.0.sql and then this file, and ALTER EXTENSION consistency
-- UPDATE runs this file on a 1.0 database.  The shared library keeps every
-- 1.0 C entry point working, so a 1.0 database keeps working on the new
-- library before it is updated.
--
-- Rules as in 1.0: every object and built-in schema-qualified, functions pin
-- search_path, no CREATE OR REPLACE (new objects only; a changed definition
-- is DROPped and re-created, or ALTERed), no SECURITY DEFINER.
--
-- One section per capability, in the order of the 1.0 script.

\echo Use "ALTER EXTENSION consistency UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Idempotency keys
-- ---------------------------------------------------------------------------

-- The functions read and write idempotency_keys as its owner (src/table_owner.c), so
-- application roles need no write privilege on it, and must have none: with it, any member
-- of consistency_user could rewrite a stored response that retries then replay.
-- consistency_user keeps SELECT: the README documents that it can read the table (scope is
-- a key space, not a permission boundary).  consistency_admin never had a grant of its own.
REVOKE INSERT, UPDATE, DELETE ON @extschema@.idempotency_keys FROM consistency_user;

-- Keys and scopes are opaque identifiers compared byte for byte: with the database's
-- collation every primary-key comparison of a claim (the probe in idem_begin, the unique
-- check and the insert in idem_complete) went through strcoll(), a fifth of the claim's own
-- instructions under a libc locale (see src/idempotency.c).  Equality is the same under
-- every deterministic collation, so no key changes meaning; only ORDER BY key sorts
-- differently.  No heap rewrite: only the primary key is rebuilt, under an ACCESS
-- EXCLUSIVE lock held for the update.
-- The rebuilt primary key is (key, scope), not (scope, key): scope is '' in most rows, so in
-- (scope, key) order nearly every comparison of a probe or an insert compared scope first,
-- equal, then key, which also sat after a variable-length column and could not be found at
-- a fixed offset.  Key first halves the comparisons (callgrind: see src/idempotency.c).
-- Every lookup is by both columns, so no query loses its index; ON CONFLICT (scope, key)
-- names the columns as a set.  Other objects depending on the old constraint (a foreign
-- key a DBA pointed at it) stop the update with an error, changing nothing.
ALTER TABLE @extschema@.idempotency_keys
	DROP CONSTRAINT idempotency_keys_pkey,
	ALTER COLUMN scope SET DATA TYPE pg_catalog.text COLLATE pg_catalog."C",
	ALTER COLUMN key SET DATA TYPE pg_catalog.text COLLATE pg_catalog."C",
	ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (key, scope);

-- idem_begin and idem_complete, called once each by every idempotent request, no longer pin
-- search_path: the SET clause cost a GUC save, parse and restore on every call, 22k of the
-- 351k instructions of an idempotent order (callgrind; see src/idempotency.c).  Their fast
-- path resolves no names (direct index probe and heap/index insert), and every statement
-- they run through SPI qualifies every name and operator (sql/security.sql runs them under a
-- hostile search_path).  As for version_guard(), sql/security.sql lists them as exceptions.
ALTER FUNCTION @extschema@.idem_begin(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool)
	RESET search_path;
ALTER FUNCTION @extschema@.idem_complete(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4)
	RESET search_path;

-- idem_claim and idem_finish: idem_begin's answer as one value and idem_complete returning the
-- response it stored, so that a PL/pgSQL handler is three expressions, which PL/pgSQL evaluates
-- without the executor, instead of a SELECT ... FROM idem_begin() (a function scan) and a
-- PERFORM (a query).  Like idem_begin and idem_complete, they do not pin search_path (see
-- above): every statement they run qualifies every name.
CREATE FUNCTION @extschema@.idem_claim(
	key pg_catalog.text,
	fingerprint pg_catalog.text DEFAULT NULL,
	ttl pg_catalog.interval DEFAULT '24 hours',
	scope pg_catalog.text DEFAULT '',
	wait pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.jsonb
AS 'MODULE_PATHNAME', 'consistency_idem_claim'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.idem_claim(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
	'claim an idempotency key for this transaction: NULL (new: run the request) or the stored response (replay); YC006 while in progress';
REVOKE ALL ON FUNCTION @extschema@.idem_claim(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.idem_claim(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) TO consistency_user;

CREATE FUNCTION @extschema@.idem_finish(
	key pg_catalog.text,
	response pg_catalog.jsonb,
	scope pg_catalog.text DEFAULT '',
	attempt pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.jsonb
AS 'MODULE_PATHNAME', 'consistency_idem_finish'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.idem_finish(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4) IS
	'idem_complete, returning the response it stored';
REVOKE ALL ON FUNCTION @extschema@.idem_finish(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.idem_finish(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4) TO consistency_user;

-- ---------------------------------------------------------------------------
-- Optimistic versioning
-- ---------------------------------------------------------------------------

-- enable_versioning gains the convention of the version a client sends back: 'read' (1.0's,
-- the default) or 'increment' (ORMs: the version read plus one).  A fourth argument with a
-- default next to the 1.0 function would make every call with three or fewer arguments
-- ambiguous, so the 1.0 function is replaced (its C entry point stays, for databases not yet
-- updated).  Triggers installed by 1.0 have no mode argument and keep mode 'read'.
DROP FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool);
CREATE FUNCTION @extschema@.enable_versioning(
	rel pg_catalog.regclass,
	version_column pg_catalog.name DEFAULT 'version',
	strict pg_catalog.bool DEFAULT false,
	mode pg_catalog.text DEFAULT 'read')
RETURNS void
AS 'MODULE_PATHNAME', 'consistency_enable_versioning_1_1'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool, pg_catalog.text) IS
	'add the version column (bigint NOT NULL DEFAULT 1) if missing and install the version_guard trigger; mode ''read'' (the client sends the version it read) or ''increment'' (the version read plus one, as ORMs do)';
REVOKE ALL ON FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool, pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool, pg_catalog.text) TO consistency_user;
COMMENT ON FUNCTION @extschema@.version_guard() IS
	'BEFORE UPDATE FOR EACH ROW trigger: accept the version the client read (mode ''read'') or that plus one (''increment'') and store the next version, or raise a version conflict; args: [version column [, ''strict''] [, ''read'' | ''increment'']]';

-- ---------------------------------------------------------------------------
-- Session LSN tokens
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- In-doubt two-phase commit
-- ---------------------------------------------------------------------------

-- Gids now carry a random nonce, one per coordinator transaction (format 2,
-- cy2:<sysid>:<database oid>:<xid8>:<nonce>[:<label>]), so that a coordinator
-- xid handed out again after a failover or a point-in-time recovery names
-- another transaction.  The decision log records the nonce; a decision counts
-- for a gid only under the same nonce.  Rows of 1.0's gids (cy1:..., no
-- nonce; still prepared at upgrade time, say) keep NULL, and 1.0's rule.
ALTER TABLE @extschema@.tpc_decisions
	ADD COLUMN coordinator_nonce pg_catalog.text,
	ADD CONSTRAINT tpc_decisions_nonce_check
		CHECK (coordinator_nonce OPERATOR(pg_catalog.~) '^[0-9a-f]{16}$');
COMMENT ON COLUMN @extschema@.tpc_decisions.coordinator_nonce IS
	'the gid''s nonce (16 hex digits), NULL for a gid made by 1.0';
-- Decisions logged while this database was still at 1.0 but the 1.1 library was loaded
-- have format-2 gids but no nonce column to record them in: fill it from the gid, or the
-- resolver's lookup by nonce would not find them.  The guard trigger refuses any row not
-- written by the transaction it names, so it is off for this one statement of the script.
ALTER TABLE @extschema@.tpc_decisions DISABLE TRIGGER tpc_decisions_guard;
UPDATE @extschema@.tpc_decisions
   SET coordinator_nonce = pg_catalog.split_part(gid, ':', 5)
 WHERE gid OPERATOR(pg_catalog.~) '^cy2:[0-9]+:[0-9]+:[0-9]+:[0-9a-f]{16}(:|$)'
   AND coordinator_nonce IS NULL;
ALTER TABLE @extschema@.tpc_decisions ENABLE TRIGGER tpc_decisions_guard;

-- The privilege boundary: both logs are written by the functions, as the tables' owner.  No
-- role keeps INSERT, UPDATE or DELETE; consistency_user keeps reading the decision log (a
-- restarted coordinator reads its decisions to finish phase 2), consistency_admin reading the
-- resolution log, pg_monitor reading both.
REVOKE INSERT ON @extschema@.tpc_decisions FROM consistency_user;
REVOKE DELETE ON @extschema@.tpc_decisions FROM consistency_admin;
REVOKE INSERT ON @extschema@.tpc_resolution_log FROM consistency_admin;

-- Pruning the decision log, for consistency_admin (it has no DELETE on the table).
CREATE FUNCTION @extschema@.tpc_prune_decisions(min_age pg_catalog.interval)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_tpc_prune_decisions'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.tpc_prune_decisions(pg_catalog.interval) IS
	'delete decisions logged at least min_age ago, except those of a transaction with a participant still prepared in this cluster';
REVOKE ALL ON FUNCTION @extschema@.tpc_prune_decisions(pg_catalog.interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.tpc_prune_decisions(pg_catalog.interval) TO consistency_admin;

-- The guards now check every row, whoever writes it (the owner and superusers included).
COMMENT ON FUNCTION @extschema@.tpc_decisions_guard() IS
	'trigger: a decision row must agree with its gid, and one for this database may only be written by the coordinator transaction it names';
COMMENT ON FUNCTION @extschema@.tpc_resolution_log_guard() IS
	'trigger: resolution log rows are never changed; rows not written by the resolver''s worker must be consistent and come from the owner';

-- ---------------------------------------------------------------------------
-- Inventory reservation
-- ---------------------------------------------------------------------------

/*
 * The functions read and write consistency.inventory and consistency.reservations as the
 * tables' owner (src/table_owner.c), so no application role needs, or keeps, a write
 * privilege on them: a direct INSERT, UPDATE or DELETE (or a row lock) by consistency_user
 * or consistency_admin is refused (42501), and only the owner can write around the
 * functions.  Reads stay where the README documents one: consistency_user (and so
 * consistency_admin) reads reservations, consistency_admin also the slot rows; buyers read
 * stock with available().
 */
REVOKE ALL ON @extschema@.inventory, @extschema@.reservations FROM consistency_user, consistency_admin;
GRANT SELECT ON @extschema@.reservations TO consistency_user;
GRANT SELECT ON @extschema@.inventory TO consistency_admin;

-- Adaptive SKUs (src/inventory_slots.c): a SKU created without a number of slots starts with
-- one and splits itself under contention, up to consistency.inventory_max_slots, and
-- maintenance() merges it back when it has been cool for consistency.inventory_merge_after.
-- Every row of a SKU carries its flag; resized_at (row 0) is when its count last changed.
-- SKUs of 1.0 get false: they stay pinned at the count they have.
ALTER TABLE @extschema@.inventory
	ADD COLUMN adaptive pg_catalog.bool NOT NULL DEFAULT false,
	ADD COLUMN resized_at pg_catalog.timestamptz;
COMMENT ON COLUMN @extschema@.inventory.adaptive IS
	'true: the SKU splits itself under contention and is merged back when cool; false: its number of slots is pinned';
COMMENT ON COLUMN @extschema@.inventory.resized_at IS
	'on slot 0: when the number of slots of an adaptive SKU last changed';

-- stock_set's slots now defaults to NULL, "adaptive" (1.0: 1, a pinned slot), served by a new
-- C entry point; 1.0's stays in the library (it pins).  CREATE OR REPLACE may change a
-- default's value (not remove one), and keeps the function's oid: the grants a DBA made on it
-- and the objects that depend on it survive the update.
CREATE OR REPLACE FUNCTION @extschema@.stock_set(
	sku pg_catalog.text,
	on_hand pg_catalog.int8,
	slots pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_stock_set_1_1'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.stock_set(pg_catalog.text, pg_catalog.int8, pg_catalog.int4) IS
	'create a SKU or set its stock on hand; slots NULL (the default): adaptive, a new SKU starts with one slot and splits under contention; slots N: pinned at N lock rows; returns the available units';

-- reserve, reserve_all, confirm and release, the calls of every order, no longer pin
-- search_path: the SET clause cost a GUC save, parse and restore on each call, about a tenth
-- of a one-client reservation (see BENCHMARKS.md).  They resolve no names in C, and every
-- statement they run (src/inventory.c, src/inventory_slots.c) qualifies every name and
-- operator: the statements run as the tables' owner, so nothing in them may resolve through
-- the caller's search_path.  sql/security.sql and test/specs/inventory_hostile.spec run
-- every path under a hostile one; sql/security.sql lists them as exceptions.
ALTER FUNCTION @extschema@.reserve(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool)
	RESET search_path;
ALTER FUNCTION @extschema@.reserve_all(pg_catalog.text, pg_catalog.text[], pg_catalog.int8[], pg_catalog.interval)
	RESET search_path;
ALTER FUNCTION @extschema@.confirm(pg_catalog.text)
	RESET search_path;
ALTER FUNCTION @extschema@.release(pg_catalog.text)
	RESET search_path;

-- reserve_now(): reserve() made outside any transaction block and committed before it returns;
-- concurrent calls by one role in one database share one transaction and one commit, applied
-- by one of them (src/inventory_combine.c; only with shared_preload_libraries, else it is
-- reserve() in the caller's own transaction).  No SET search_path, as for reserve() (see
-- sql/security.sql).
CREATE FUNCTION @extschema@.reserve_now(
	sku pg_catalog.text,
	qty pg_catalog.int8,
	reservation_id pg_catalog.text,
	ttl pg_catalog.interval DEFAULT '15 minutes',
	wait pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_reserve_now'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.reserve_now(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool) IS
	'reserve() outside a transaction block, committed before it returns; concurrent calls share one commit: reserved, insufficient or busy';
REVOKE ALL ON FUNCTION @extschema@.reserve_now(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.reserve_now(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool) TO consistency_user;

-- Merging cool adaptive SKUs back into one slot, for maintenance() (consistency_admin).
CREATE FUNCTION @extschema@.merge_slots(batch_size pg_catalog.int4 DEFAULT 1000)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_merge_slots'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.merge_slots(pg_catalog.int4) IS
	'merge adaptive SKUs left unsplit for consistency.inventory_merge_after back into one slot, oldest first, skipping those with a busy slot; at most batch_size SKUs and 512 slot locks per call; returns how many were merged (0: none can be merged now)';
REVOKE ALL ON FUNCTION @extschema@.merge_slots(pg_catalog.int4) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.merge_slots(pg_catalog.int4) TO consistency_admin;

-- ---------------------------------------------------------------------------
-- Operations
-- ---------------------------------------------------------------------------

-- Cumulative counters per database (src/stats.c), in shared memory when the library is in
-- shared_preload_libraries; without it, one row whose reason says so.  Readable by the
-- application role, its administrator and pg_monitor, like pg_stat_database; resetting is
-- for consistency_admin.
CREATE FUNCTION @extschema@.stats_read(
	OUT datid pg_catalog.oid, OUT datname pg_catalog.name,
	OUT capability pg_catalog.text, OUT counter pg_catalog.text, OUT value pg_catalog.int8,
	OUT stats_reset pg_catalog.timestamptz, OUT reason pg_catalog.text)
RETURNS SETOF pg_catalog.record
AS 'MODULE_PATHNAME', 'consistency_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.stats_read() IS
	'the counters of consistency.stats';
REVOKE ALL ON FUNCTION @extschema@.stats_read() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.stats_read() TO consistency_user, pg_monitor;

CREATE VIEW @extschema@.stats AS
	SELECT s.datid, s.datname, s.capability, s.counter, s.value, s.stats_reset, s.reason
	  FROM @extschema@.stats_read() s;
COMMENT ON VIEW @extschema@.stats IS
	'cumulative counters per database and capability; a row with a reason instead when the library is not preloaded or the database has no counters (every slot taken)';
REVOKE ALL ON @extschema@.stats FROM PUBLIC;
GRANT SELECT ON @extschema@.stats TO consistency_user, pg_monitor;

CREATE FUNCTION @extschema@.stats_reset()
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'consistency_stats_reset'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.stats_reset() IS
	'set this database''s counters to zero; false (and nothing done) when the library is not preloaded';
REVOKE ALL ON FUNCTION @extschema@.stats_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.stats_reset() TO consistency_admin;

-- Scheduled maintenance, for pg_cron or any scheduler:
--   SELECT cron.schedule('consistency-maintenance', '* * * * *', 'CALL consistency.maintenance()');
-- A procedure, so that it commits after every batch: no batch holds its row and slot locks
-- longer than itself, and nothing bloats one long transaction.  A procedure that commits
-- cannot carry a SET clause, so instead of pinning search_path every name and operator in
-- it is schema-qualified.  It calls the extension's own functions with the caller's rights:
-- consistency_admin (or the role pg_cron runs the job as) needs nothing more.
CREATE PROCEDURE @extschema@.maintenance(
	batch_size pg_catalog.int4 DEFAULT 1000,
	max_batches pg_catalog.int4 DEFAULT 100)
LANGUAGE plpgsql
AS $maintenance$
DECLARE
	n pg_catalog.int8;
	purged pg_catalog.int8 := 0;
	expired pg_catalog.int8 := 0;
	merged pg_catalog.int8 := 0;
	committed pg_catalog.int8 := 0;
	rolled_back pg_catalog.int8 := 0;
	left_in_doubt pg_catalog.int8 := 0;
	more_keys pg_catalog.bool := false;
	more_reservations pg_catalog.bool := false;
	more_merges pg_catalog.bool := false;
	auto_resolve pg_catalog.bool;
	resolve_after pg_catalog.interval;
BEGIN
	IF batch_size IS NULL OR max_batches IS NULL THEN
		RAISE EXCEPTION 'batch_size and max_batches must not be null'
			USING ERRCODE = '22004',
				  DETAIL = 'consistency.maintenance() needs both limits; the defaults are 1000 and 100.';
	END IF;
	IF batch_size OPERATOR(pg_catalog.<=) 0 OR max_batches OPERATOR(pg_catalog.<=) 0 THEN
		RAISE EXCEPTION 'batch_size and max_batches must be positive'
			USING ERRCODE = '22023',
				  DETAIL = pg_catalog.format('The batch_size given is %s, the max_batches given is %s.',
											 batch_size, max_batches);
	END IF;

	-- expired idempotency keys, one committed batch at a time
	FOR i IN 1..max_batches LOOP
		n := @extschema@.idem_purge(batch_size);
		purged := purged OPERATOR(pg_catalog.+) n;
		COMMIT;
		more_keys := n OPERATOR(pg_catalog.=) batch_size AND i OPERATOR(pg_catalog.=) max_batches;
		EXIT WHEN n OPERATOR(pg_catalog.<) batch_size;
	END LOOP;

	-- lapsed reservations: their stock goes back on sale
	FOR i IN 1..max_batches LOOP
		n := @extschema@.expire_reservations(batch_size);
		expired := expired OPERATOR(pg_catalog.+) n;
		COMMIT;
		more_reservations := n OPERATOR(pg_catalog.=) batch_size AND i OPERATOR(pg_catalog.=) max_batches;
		EXIT WHEN n OPERATOR(pg_catalog.<) batch_size;
	END LOOP;

	-- adaptive SKUs left unsplit for consistency.inventory_merge_after and not busy now:
	-- back into one slot (a busy one is skipped: it is not cool).  A batch may end before
	-- batch_size SKUs (it keeps at most 512 slot locks to its commit) and looks past the busy
	-- ones; it merges none only when no candidate can be merged now.
	FOR i IN 1..max_batches LOOP
		n := @extschema@.merge_slots(batch_size);
		merged := merged OPERATOR(pg_catalog.+) n;
		COMMIT;
		more_merges := n OPERATOR(pg_catalog.>) 0 AND i OPERATOR(pg_catalog.=) max_batches;
		EXIT WHEN n OPERATOR(pg_catalog.=) 0;
	END LOOP;

	-- stale in-doubt transactions, only when allowed, by their decision log's verdict; each
	-- is finished in a transaction of its own by the resolver's worker
	-- (the calls above loaded the library, which defines the setting)
	auto_resolve := pg_catalog.current_setting('consistency.tpc_auto_resolve')::pg_catalog.bool;
	IF auto_resolve THEN
		resolve_after := pg_catalog.current_setting('consistency.tpc_auto_resolve_after')::pg_catalog.interval;
		SELECT pg_catalog.count(*) FILTER (WHERE r.outcome OPERATOR(pg_catalog.=) 'committed'),
			   pg_catalog.count(*) FILTER (WHERE r.outcome OPERATOR(pg_catalog.=) 'rolled_back'),
			   pg_catalog.count(*) FILTER (WHERE r.outcome OPERATOR(pg_catalog.<>) ALL
										   (ARRAY['committed', 'rolled_back', 'already_resolved']::pg_catalog.text[]))
		  INTO committed, rolled_back, left_in_doubt
		  FROM @extschema@.resolve_stale(resolve_after, false) r;
		COMMIT;
	END IF;

	RAISE LOG 'consistency.maintenance: purged % expired idempotency keys%, expired % lapsed reservations%, merged % adaptive SKUs back into one slot%, %',
		purged, CASE WHEN more_keys THEN ' (batch limit reached)' ELSE '' END,
		expired, CASE WHEN more_reservations THEN ' (batch limit reached)' ELSE '' END,
		merged, CASE WHEN more_merges THEN ' (batch limit reached)' ELSE '' END,
		CASE WHEN auto_resolve
			 THEN pg_catalog.format('resolved %s in-doubt transactions older than %s (%s committed, %s rolled back, %s left)',
									committed OPERATOR(pg_catalog.+) rolled_back,
									pg_catalog.current_setting('consistency.tpc_auto_resolve_after'),
									committed, rolled_back, left_in_doubt)
			 ELSE 'in-doubt transactions not resolved (consistency.tpc_auto_resolve is off)' END;
END
$maintenance$;
COMMENT ON PROCEDURE @extschema@.maintenance(pg_catalog.int4, pg_catalog.int4) IS
	'purge expired idempotency keys, expire lapsed reservations, merge cool adaptive SKUs back into one slot and, when consistency.tpc_auto_resolve is on, resolve stale in-doubt transactions; commits after every batch';
REVOKE ALL ON PROCEDURE @extschema@.maintenance(pg_catalog.int4, pg_catalog.int4) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE @extschema@.maintenance(pg_catalog.int4, pg_catalog.int4) TO consistency_admin;
