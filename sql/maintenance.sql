-- consistency.maintenance(): purges expired idempotency keys and expires lapsed reservations
-- in committed batches, and resolves stale in-doubt transactions only when
-- consistency.tpc_auto_resolve is on.  Bad input changes nothing.
\set VERBOSITY default
-- The LOG lines below are the procedure's own: a server that logs every statement (a TAP
-- node's, when test/t/050_upgrade_from_1_0.pl runs this file) would send those too.
SET log_statement = 'none';
CREATE ROLE maint_app LOGIN IN ROLE consistency_user;
CREATE ROLE maint_dba LOGIN IN ROLE consistency_admin;
-- whatever earlier files left behind, so that the figures below are this file's own
CALL consistency.maintenance();

-- 1. Bad input: its own SQLSTATE, nothing purged.
SELECT consistency.stock_set('maint-mug', 10);
BEGIN;
SELECT status FROM consistency.idem_begin('m-0', ttl => '1 microsecond');
SELECT consistency.idem_complete('m-0', '{}');
COMMIT;
CALL consistency.maintenance(NULL);
\echo :LAST_ERROR_SQLSTATE
CALL consistency.maintenance(10, NULL);
\echo :LAST_ERROR_SQLSTATE
CALL consistency.maintenance(0);
\echo :LAST_ERROR_SQLSTATE
CALL consistency.maintenance(10, -1);
\echo :LAST_ERROR_SQLSTATE
-- it commits, so it cannot run inside a transaction block
BEGIN;
CALL consistency.maintenance();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT count(*) AS keys_left FROM consistency.idempotency_keys WHERE key = 'm-0';

-- 2. The application role may not call it; the admin role may.
SET ROLE maint_app;
CALL consistency.maintenance();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 3. Five expired keys (one above) and three lapsed reservations, in batches of two, at most
--    two batches: four keys purged and "more left", every reservation expired and its stock
--    back on sale.  The log line says what it did.
DO $$
BEGIN
	FOR i IN 1..4 LOOP
		PERFORM consistency.idem_begin('m-' || i, ttl => '1 microsecond');
		PERFORM consistency.idem_complete('m-' || i, '{}');
	END LOOP;
END $$;
SELECT consistency.reserve('maint-mug', 2, 'mr-' || i, ttl => '1 microsecond') FROM generate_series(1, 3) i;
SELECT consistency.reserve('maint-mug', 1, 'mr-live');		-- not lapsed: stays
SELECT consistency.available('maint-mug');
SET ROLE maint_dba;
SET client_min_messages = log;
CALL consistency.maintenance(2, 2);
RESET client_min_messages;
SELECT count(*) AS keys_left FROM consistency.idempotency_keys WHERE key LIKE 'm-%';
SELECT reservation_id, status FROM consistency.reservations WHERE reservation_id LIKE 'mr-%' ORDER BY 1;
SELECT consistency.available('maint-mug');
SET client_min_messages = log;
CALL consistency.maintenance(2, 2);
RESET client_min_messages;
SELECT count(*) AS keys_left FROM consistency.idempotency_keys WHERE key LIKE 'm-%';
RESET ROLE;

-- 4. In-doubt transactions: left alone while consistency.tpc_auto_resolve is off (the
--    default); with it on, those older than tpc_auto_resolve_after are resolved by their
--    decision log: the one with a commit decision commits, the undecided one rolls back.
SHOW consistency.tpc_auto_resolve;
SHOW consistency.tpc_auto_resolve_after;
CREATE TABLE maint_acc (id int PRIMARY KEY);
BEGIN;
SELECT consistency.tpc_gid('m') AS gid_commit \gset
SELECT consistency.tpc_log_decision(:'gid_commit');
COMMIT;
BEGIN;
SELECT consistency.tpc_gid('m') AS gid_undecided \gset
COMMIT;
BEGIN;
INSERT INTO maint_acc VALUES (1);
PREPARE TRANSACTION :'gid_commit';
BEGIN;
INSERT INTO maint_acc VALUES (2);
PREPARE TRANSACTION :'gid_undecided';
CALL consistency.maintenance();
SELECT count(*) AS still_prepared FROM pg_prepared_xacts WHERE gid IN (:'gid_commit', :'gid_undecided');
-- a plain user cannot turn it on
SET ROLE maint_dba;
SET consistency.tpc_auto_resolve = on;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET consistency.tpc_auto_resolve = on;
SET consistency.tpc_auto_resolve_after = '1h';		-- both are younger: still left alone
CALL consistency.maintenance();
SELECT count(*) AS still_prepared FROM pg_prepared_xacts WHERE gid IN (:'gid_commit', :'gid_undecided');
SET consistency.tpc_auto_resolve_after = 0;
SET client_min_messages = log;
CALL consistency.maintenance();
RESET client_min_messages;
SELECT count(*) AS still_prepared FROM pg_prepared_xacts WHERE gid IN (:'gid_commit', :'gid_undecided');
SELECT id FROM maint_acc ORDER BY id;
SELECT action, outcome, heuristic FROM consistency.tpc_resolution_log
 WHERE gid IN (:'gid_commit', :'gid_undecided') ORDER BY action;
RESET consistency.tpc_auto_resolve;
RESET consistency.tpc_auto_resolve_after;

-- 5. Under a hostile search_path (operators that raise if used, for every operand type the
--    procedure compares or adds), with work to do in every step: it works all the same.
CREATE SCHEMA maint_hostile;
CREATE FUNCTION maint_hostile.b(int8, int8) RETURNS bool LANGUAGE plpgsql AS $$BEGIN RAISE 'hostile operator used'; END$$;
CREATE FUNCTION maint_hostile.b(int8, int4) RETURNS bool LANGUAGE plpgsql AS $$BEGIN RAISE 'hostile operator used'; END$$;
CREATE FUNCTION maint_hostile.b(int4, int4) RETURNS bool LANGUAGE plpgsql AS $$BEGIN RAISE 'hostile operator used'; END$$;
CREATE FUNCTION maint_hostile.b(text, text) RETURNS bool LANGUAGE plpgsql AS $$BEGIN RAISE 'hostile operator used'; END$$;
CREATE FUNCTION maint_hostile.p(int8, int8) RETURNS int8 LANGUAGE plpgsql AS $$BEGIN RAISE 'hostile operator used'; END$$;
CREATE OPERATOR maint_hostile.< (LEFTARG = int8, RIGHTARG = int4, FUNCTION = maint_hostile.b);
CREATE OPERATOR maint_hostile.= (LEFTARG = int8, RIGHTARG = int4, FUNCTION = maint_hostile.b);
CREATE OPERATOR maint_hostile.<= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = maint_hostile.b);
CREATE OPERATOR maint_hostile.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = maint_hostile.b);
CREATE OPERATOR maint_hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = maint_hostile.b);
CREATE OPERATOR maint_hostile.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = maint_hostile.b);
CREATE OPERATOR maint_hostile.+ (LEFTARG = int8, RIGHTARG = int8, FUNCTION = maint_hostile.p);
CREATE OPERATOR maint_hostile.> (LEFTARG = int8, RIGHTARG = int8, FUNCTION = maint_hostile.b);
BEGIN;
SELECT status FROM consistency.idem_begin('m-h', ttl => '1 microsecond');
SELECT consistency.idem_complete('m-h', '{}');
COMMIT;
SELECT consistency.reserve('maint-mug', 1, 'mr-h', ttl => '1 microsecond');
BEGIN;
SELECT consistency.tpc_gid('h') AS gid_hostile \gset
COMMIT;
BEGIN;
INSERT INTO maint_acc VALUES (3);
PREPARE TRANSACTION :'gid_hostile';
SET consistency.tpc_auto_resolve = on;
SET consistency.tpc_auto_resolve_after = 0;
SET search_path = maint_hostile, pg_catalog, public;
SET client_min_messages = log;
CALL consistency.maintenance(1, 1);
RESET client_min_messages;
RESET search_path;
RESET consistency.tpc_auto_resolve;
RESET consistency.tpc_auto_resolve_after;
SELECT (SELECT count(*) FROM consistency.idempotency_keys WHERE key = 'm-h') AS keys_left,
	   (SELECT status FROM consistency.reservations WHERE reservation_id = 'mr-h') AS hold,
	   (SELECT count(*) FROM pg_prepared_xacts WHERE gid = :'gid_hostile') AS still_prepared;
DROP SCHEMA maint_hostile CASCADE;

-- 6. Merging cool adaptive SKUs.  A batch keeps the slot locks of the SKUs it merged until it
--    commits, each an entry in the shared lock table, so it stops before it would hold more
--    than 512 of them: of 40 SKUs of 16 slots (640 slot locks) one batch merges 32, and
--    maintenance() goes on in the next batch until every one is merged.  The totals and the
--    reservation on them are unchanged.
SET consistency.inventory_merge_after = 0;
CALL consistency.maintenance();		-- what earlier files left split
SELECT count(*) AS split_skus FROM consistency.inventory WHERE adaptive AND slot = 1;
SELECT count(consistency.stock_set('maint-cap-' || i, 32, slots => 16)) AS skus FROM generate_series(1, 40) i;
SELECT count(consistency.stock_set('maint-cap-' || i, 32, NULL)) AS adaptive FROM generate_series(1, 40) i;
SELECT consistency.reserve('maint-cap-1', 5, 'mc-1');
CREATE FUNCTION maint_cap_shape() RETURNS TABLE (skus bigint, slots bigint, adaptive bool, on_hand numeric, reserved numeric)
	LANGUAGE sql AS $$ SELECT count(DISTINCT sku), count(*), bool_and(adaptive), sum(on_hand), sum(reserved)
					   FROM consistency.inventory WHERE sku LIKE 'maint-cap-%' $$;
SELECT * FROM maint_cap_shape();
SET ROLE maint_dba;
BEGIN;
SELECT consistency.merge_slots(1000) AS merged \gset
-- the slot locks this backend holds (advisory, field 4 = 'IV')
SELECT :merged AS merged, :merged < 40 AS fewer_than_asked,
	   count(*) AS slot_locks, count(*) <= 512 AS within_limit
  FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid = 18774;
ROLLBACK;
SET client_min_messages = log;
CALL consistency.maintenance();
RESET client_min_messages;
SELECT * FROM maint_cap_shape();
-- split again: with one batch allowed, 32 are merged and the log line says there may be more
RESET ROLE;
SELECT count(consistency.stock_set('maint-cap-' || i, 32, slots => 16)) AS skus FROM generate_series(1, 40) i;
SELECT count(consistency.stock_set('maint-cap-' || i, 32, NULL)) AS adaptive FROM generate_series(1, 40) i;
SET ROLE maint_dba;
SET client_min_messages = log;
CALL consistency.maintenance(1000, 1);
RESET client_min_messages;
SELECT * FROM maint_cap_shape();
SET client_min_messages = log;
CALL consistency.maintenance();
RESET client_min_messages;
RESET ROLE;
SELECT * FROM maint_cap_shape(), consistency.available('maint-cap-1');
SELECT consistency.release('mc-1');
SELECT * FROM consistency.check_inventory() WHERE sku LIKE 'maint-cap-%';
DELETE FROM consistency.reservations WHERE reservation_id = 'mc-1';
DELETE FROM consistency.inventory WHERE sku LIKE 'maint-cap-%';
DROP FUNCTION maint_cap_shape();
RESET consistency.inventory_merge_after;

-- (nothing left to roll back unless a resolution above failed; then the DROP must not hang)
SELECT format('ROLLBACK PREPARED %L', gid) FROM pg_prepared_xacts WHERE gid IN (:'gid_commit', :'gid_undecided', :'gid_hostile') \gexec
DROP TABLE maint_acc;
-- the decision and the resolutions logged above, so that later files start from empty logs
SELECT consistency.tpc_prune_decisions('0') AS pruned;
DELETE FROM consistency.tpc_resolution_log WHERE gid IN (:'gid_commit', :'gid_undecided', :'gid_hostile');
DROP ROLE maint_app, maint_dba;
