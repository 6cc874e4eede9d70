-- Statistics: consistency.stats and consistency.stats_reset(), as the documented roles use
-- them.  The counters live in shared memory, so they exist only when the library is in
-- shared_preload_libraries; without it the view has one row saying so, and the rest of this
-- file checks that (expected/stats.out).  With it, every counter this file can drive from one
-- session is driven and shown (expected/stats_1.out).
\set VERBOSITY default
CREATE ROLE stats_app LOGIN IN ROLE consistency_user;
CREATE ROLE stats_dba LOGIN IN ROLE consistency_admin;
SELECT 'consistency' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
	AS preloaded \gset

-- 1. The privilege boundary: the application role and pg_monitor read the view (and its
--    function), but cannot reset the counters (42501); the admin role resets them.  The view
--    is not updatable for anybody (55000), so nobody writes counters but the extension.
SET ROLE stats_app;
SELECT count(*) > 0 AS app_reads FROM consistency.stats;
SELECT count(*) > 0 AS app_reads_fn FROM consistency.stats_read();
SELECT consistency.stats_reset();
\echo :LAST_ERROR_SQLSTATE
INSERT INTO consistency.stats (capability) VALUES ('x');
\echo :LAST_ERROR_SQLSTATE
UPDATE consistency.stats SET value = 0;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM consistency.stats;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE pg_monitor;
SELECT count(*) > 0 AS monitor_reads FROM consistency.stats;
RESET ROLE;

\if :preloaded
-- 2. Preloaded: a reset zeroes this database's counters and stamps the reset time.
SET ROLE stats_dba;
SELECT consistency.stats_reset();
RESET ROLE;
SELECT count(*) AS counters, sum(value) AS total, bool_and(reason IS NULL) AS no_reason,
	   bool_and(stats_reset IS NOT NULL AND stats_reset <= now()) AS reset_stamped
  FROM consistency.stats WHERE datname = current_database();
SELECT count(DISTINCT capability) AS capabilities FROM consistency.stats;

-- 3. Idempotency keys, as the application role.
SET ROLE stats_app;
BEGIN;
SELECT status FROM consistency.idem_begin('k1', 'fp-1');
SELECT consistency.idem_complete('k1', '{"id": 1}');
COMMIT;
SELECT status, response FROM consistency.idem_begin('k1', 'fp-1');	-- replay
SELECT status FROM consistency.idem_begin('k1', 'fp-2');			-- mismatch (YC001)
\echo :LAST_ERROR_SQLSTATE
SELECT status, attempt FROM consistency.idem_lease('k2', lease => '1 hour');
SELECT status, attempt FROM consistency.idem_lease('k2', lease => '1 hour');	-- in_progress
SELECT status, attempt FROM consistency.idem_lease('k3', lease => '1 microsecond');
SELECT status, attempt FROM consistency.idem_lease('k3', lease => '1 hour');	-- takeover
SELECT consistency.idem_complete('k3', '{}', attempt => 1);		-- fenced (YC003)
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT status FROM consistency.idem_begin('k4', ttl => '1 microsecond');
SELECT consistency.idem_complete('k4', '{}');
COMMIT;
RESET ROLE;
SET ROLE stats_dba;
SELECT consistency.idem_purge(100);
RESET ROLE;

-- 4. Optimistic versioning.
CREATE TABLE stats_doc (id int PRIMARY KEY, body text, version bigint NOT NULL DEFAULT 1);
CREATE TABLE stats_strict (id int PRIMARY KEY, body text, version bigint NOT NULL DEFAULT 1);
GRANT SELECT, INSERT, UPDATE ON stats_doc, stats_strict TO stats_app;
ALTER TABLE stats_doc OWNER TO stats_app;
ALTER TABLE stats_strict OWNER TO stats_app;
SET ROLE stats_app;
SELECT consistency.enable_versioning('stats_doc');
SELECT consistency.enable_versioning('stats_strict', strict => true);
INSERT INTO stats_doc VALUES (1, 'a'), (2, 'b');
INSERT INTO stats_strict VALUES (1, 'a');
SELECT consistency.update_versioned('stats_doc', '{"id": 1}', 1, '{"body": "a2"}');	-- checked
SELECT consistency.update_versioned('stats_doc', '{"id": 1}', 1, '{"body": "a3"}');	-- conflict
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.try_update_versioned('stats_doc', '{"id": 1}', 1, '{"body": "a3"}');	-- conflict
UPDATE stats_doc SET body = 'b2', version = 1 WHERE id = 2;		-- checked
UPDATE stats_doc SET body = 'b3', version = 1 WHERE id = 2;		-- conflict
\echo :LAST_ERROR_SQLSTATE
UPDATE stats_strict SET body = 'a2' WHERE id = 1;					-- strict refusal
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- mode 'increment' (ORMs send the version read plus one) counts the same way
CREATE TABLE stats_orm (id int PRIMARY KEY, body text, version bigint NOT NULL DEFAULT 1);
CREATE TABLE stats_orm_strict (id int PRIMARY KEY, body text, version bigint NOT NULL DEFAULT 1);
ALTER TABLE stats_orm OWNER TO stats_app;
ALTER TABLE stats_orm_strict OWNER TO stats_app;
SET ROLE stats_app;
SELECT consistency.enable_versioning('stats_orm', mode => 'increment');
SELECT consistency.enable_versioning('stats_orm_strict', strict => true, mode => 'increment');
INSERT INTO stats_orm VALUES (1, 'a');
INSERT INTO stats_orm_strict VALUES (1, 'a');
UPDATE stats_orm SET body = 'a2', version = 2 WHERE id = 1 AND version = 1;	-- checked
UPDATE stats_orm SET body = 'a3', version = 2 WHERE id = 1;			-- conflict
\echo :LAST_ERROR_SQLSTATE
UPDATE stats_orm SET body = 'a4' WHERE id = 1;						-- checked (bumped)
SELECT consistency.update_versioned('stats_orm', '{"id": 1}', 3, '{"body": "a5"}');	-- checked, once
UPDATE stats_orm_strict SET body = 'a2' WHERE id = 1;				-- strict refusal
\echo :LAST_ERROR_SQLSTATE
SELECT id, body, version FROM stats_orm;
RESET ROLE;

-- 5. Inventory: reserved, insufficient, a rebalance over slots, confirmed, released, expired.
SET ROLE stats_dba;
SELECT consistency.stock_set('mug', 10);
SELECT consistency.stock_set('lamp', 8, slots => 4);
RESET ROLE;
SET ROLE stats_app;
SELECT consistency.reserve('mug', 3, 'r-1');
SELECT consistency.reserve('mug', 30, 'r-2');					-- insufficient
SELECT consistency.reserve('lamp', 5, 'r-3');					-- rebalanced
SELECT consistency.reserve_all('r-4', ARRAY['mug'], ARRAY[1]);
SELECT consistency.reserve('mug', 1, 'r-5', ttl => '1 microsecond');
SELECT consistency.confirm('r-1');
SELECT consistency.confirm('r-1');								-- a retry: not counted again
SELECT consistency.release('r-4');
SELECT consistency.release('r-4');								-- nothing to release
RESET ROLE;
SET ROLE stats_dba;
SELECT consistency.expire_reservations(100);
RESET ROLE;

-- 6. Tokens: another cluster's token, and a write this primary never made (diverged).
SELECT system_identifier AS sysid FROM pg_control_system() \gset
SELECT timeline_id AS tli FROM pg_control_checkpoint() \gset
SET ROLE stats_app;
\set VERBOSITY sqlstate
SELECT consistency.wait_for_token(consistency.write_token(), '1s');		-- no wait on a primary
SELECT consistency.wait_for_token('v1:1:1:0/1', '1s');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.wait_for_token(format('v1:%s:%s:FFFFFFFF/0', :'sysid', :'tli'), '1s');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;

-- 7. In-doubt 2PC: a logged decision, then resolutions that commit (the decision), roll back
--    (presumed abort) and force a heuristic commit.
CREATE TABLE stats_acc (id int PRIMARY KEY);
BEGIN;
SELECT consistency.tpc_gid('p') AS gid_commit \gset
SELECT consistency.tpc_log_decision(:'gid_commit');
COMMIT;
BEGIN;
SELECT consistency.tpc_gid('p') AS gid_abort \gset
COMMIT;
BEGIN;
INSERT INTO stats_acc VALUES (1);
PREPARE TRANSACTION :'gid_commit';
BEGIN;
INSERT INTO stats_acc VALUES (2);
PREPARE TRANSACTION :'gid_abort';
BEGIN;
INSERT INTO stats_acc VALUES (3);
PREPARE TRANSACTION 'stats-manual';
SELECT executed, outcome FROM consistency.resolve_prepared(:'gid_commit', dry_run => false);
SELECT executed, outcome FROM consistency.resolve_prepared(:'gid_abort', dry_run => false);
SELECT executed, outcome FROM consistency.resolve_prepared('stats-manual', 'commit', dry_run => false, force => true);
SELECT id FROM stats_acc ORDER BY id;

-- 8. Every counter, as the application role sees it.  (busy, lock_wait and the token
--    wait figures need a second session or a standby: the isolation and TAP tests.)
SET ROLE stats_app;
SELECT capability, counter, value FROM consistency.stats
 WHERE datname = current_database() ORDER BY capability, counter;
RESET ROLE;

-- 9. Counted work of a transaction that fails is counted all the same; a reset by the
--    admin zeroes the counters again.
BEGIN;
SELECT status FROM consistency.idem_begin('k5');
SELECT 1 / 0;
ROLLBACK;
SELECT value FROM consistency.stats
 WHERE datname = current_database() AND capability = 'idempotency' AND counter = 'new';
SET ROLE stats_dba;
SELECT consistency.stats_reset();
RESET ROLE;
SELECT sum(value) AS total FROM consistency.stats WHERE datname = current_database();

-- 10. consistency.track_stats = off (superuser only, like track_counts) counts nothing and
--     keeps the figures; on again, counting resumes.
SET ROLE stats_app;
SET consistency.track_stats = off;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET consistency.track_stats = off;
BEGIN;
SELECT status FROM consistency.idem_begin('k6');
SELECT consistency.idem_complete('k6', '{}');
COMMIT;
SELECT consistency.reserve('mug', 1, 'r-6');
SELECT sum(value) AS total_while_off FROM consistency.stats WHERE datname = current_database();
RESET consistency.track_stats;
SHOW consistency.track_stats;
BEGIN;
SELECT status FROM consistency.idem_begin('k7');
SELECT consistency.idem_complete('k7', '{}');
COMMIT;
SELECT capability, counter, value FROM consistency.stats
 WHERE datname = current_database() AND value <> 0 ORDER BY capability, counter;
-- (nothing left to roll back unless a resolution above failed; then the DROP must not hang)
SELECT format('ROLLBACK PREPARED %L', gid) FROM pg_prepared_xacts WHERE gid IN (:'gid_commit', :'gid_abort', 'stats-manual') \gexec
DROP TABLE stats_doc, stats_strict, stats_orm, stats_orm_strict, stats_acc;
-- the decision and the resolutions logged above, so that later files start from empty logs
SELECT consistency.tpc_prune_decisions('0') AS pruned;
DELETE FROM consistency.tpc_resolution_log WHERE gid IN (:'gid_commit', :'gid_abort', 'stats-manual');
\else
-- 2. Not preloaded: one row, for this database, whose reason says why there are no
--    counters; resetting changes nothing and says so.
SELECT datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AS this_db,
	   datname, capability, counter, value, stats_reset, reason
  FROM consistency.stats;
SET ROLE stats_dba;
SELECT consistency.stats_reset();
RESET ROLE;
-- counting without shared memory is harmless: the functions work as ever
SELECT status, attempt FROM consistency.idem_lease('k1');
SELECT count(*) AS rows FROM consistency.stats;
\endif

DROP ROLE stats_app, stats_dba;
