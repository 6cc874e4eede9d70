-- pgTAP: in-doubt two-phase commit's schema objects, signatures, privileges, and the
-- coordinator side as a non-superuser granted consistency_user, the listing as pg_monitor.
BEGIN;
SELECT plan(28);

SELECT has_table('consistency', 'tpc_decisions', 'tpc_decisions exists');
SELECT col_is_pk('consistency', 'tpc_decisions', 'gid', 'decisions are keyed by gid');
SELECT columns_are('consistency', 'tpc_decisions', ARRAY[
	'gid', 'decision', 'coordinator_sysid', 'coordinator_xid', 'decided_at', 'coordinator_nonce']);
SELECT col_type_is('consistency', 'tpc_decisions', 'coordinator_xid', 'xid8', 'coordinator_xid is xid8');
SELECT has_table('consistency', 'tpc_resolution_log', 'tpc_resolution_log exists');
SELECT ok((SELECT 'consistency.tpc_decisions'::regclass = ANY (extconfig)
			 AND 'consistency.tpc_resolution_log'::regclass = ANY (extconfig)
			 FROM pg_extension WHERE extname = 'consistency'), 'both tables are dumped by pg_dump');

SELECT function_returns('consistency', 'tpc_gid', ARRAY['text'], 'text');
SELECT function_returns('consistency', 'tpc_log_decision', ARRAY['text', 'text'], 'void');
SELECT function_returns('consistency', 'prepared_xacts', ARRAY['interval'], 'setof record');
SELECT function_returns('consistency', 'resolve_prepared', ARRAY['text', 'text', 'boolean', 'boolean'], 'setof record');
SELECT function_returns('consistency', 'resolve_stale', ARRAY['interval', 'boolean'], 'setof record');
SELECT function_returns('consistency', 'tpc_prune_decisions', ARRAY['interval'], 'bigint');
SELECT isnt_definer('consistency', 'resolve_prepared', ARRAY['text', 'text', 'boolean', 'boolean']);

SELECT ok(NOT has_function_privilege('public', 'consistency.resolve_prepared(text, text, boolean, boolean)', 'EXECUTE')
		  AND NOT has_function_privilege('public', 'consistency.prepared_xacts(interval)', 'EXECUTE'),
	'PUBLIC can neither list nor resolve');
SELECT ok(has_function_privilege('consistency_user', 'consistency.tpc_log_decision(text, text)', 'EXECUTE')
		  AND NOT has_function_privilege('consistency_user', 'consistency.resolve_stale(interval, boolean)', 'EXECUTE'),
	'consistency_user logs decisions but does not resolve');
SELECT ok(has_function_privilege('consistency_admin', 'consistency.resolve_stale(interval, boolean)', 'EXECUTE')
		  AND has_function_privilege('consistency_admin', 'consistency.tpc_prune_decisions(interval)', 'EXECUTE')
		  AND NOT has_function_privilege('consistency_user', 'consistency.tpc_prune_decisions(interval)', 'EXECUTE'),
	'consistency_admin resolves and prunes');
SELECT ok(NOT EXISTS (SELECT FROM unnest(ARRAY['consistency_user', 'consistency_admin', 'pg_monitor']) r,
						  unnest(ARRAY['consistency.tpc_decisions', 'consistency.tpc_resolution_log']) t,
						  unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
					 WHERE has_table_privilege(r, t, p)),
	'no role may write either log: the functions write them as the owner');
SELECT ok(has_table_privilege('consistency_user', 'consistency.tpc_decisions', 'SELECT')
		  AND NOT has_table_privilege('consistency_user', 'consistency.tpc_resolution_log', 'SELECT')
		  AND has_table_privilege('consistency_admin', 'consistency.tpc_resolution_log', 'SELECT'),
	'consistency_user reads the decision log, consistency_admin the resolution log');
SELECT ok(has_function_privilege('pg_monitor', 'consistency.prepared_xacts(interval)', 'EXECUTE')
		  AND has_table_privilege('pg_monitor', 'consistency.tpc_decisions', 'SELECT')
		  AND NOT has_function_privilege('pg_monitor', 'consistency.resolve_prepared(text, text, boolean, boolean)', 'EXECUTE'),
	'pg_monitor lists (and reads the decision log) but does not resolve');

-- A coordinator application role, a monitoring role, and a role with neither.
CREATE ROLE tap_coordinator NOLOGIN;
GRANT consistency_user TO tap_coordinator;
CREATE ROLE tap_watcher NOLOGIN;
GRANT pg_monitor TO tap_watcher;
CREATE ROLE tap_stranger NOLOGIN;

SET ROLE tap_coordinator;
SELECT ok(consistency.tpc_gid('p1') ~ '^cy2:[0-9]+:[0-9]+:[0-9]+:[0-9a-f]{16}:p1$', 'a non-superuser coordinator makes gids');
SELECT lives_ok($$ SELECT consistency.tpc_log_decision(consistency.tpc_gid('p1')) $$,
	'and logs its decision');
SELECT results_eq($$ SELECT decision FROM consistency.tpc_decisions WHERE gid = consistency.tpc_gid('p1') $$,
	ARRAY['commit'], 'the decision is in the log, in its own transaction');
SELECT throws_ok($$ SELECT consistency.tpc_log_decision(consistency.tpc_gid('p1'), 'abort') $$,
	'YC403', NULL, 'a second, different decision is refused');
SELECT throws_ok($$ SELECT * FROM consistency.resolve_stale() $$,
	'42501', NULL, 'the coordinator role cannot resolve');
SELECT throws_ok($$ DELETE FROM consistency.tpc_decisions $$,
	'42501', NULL, 'nor delete decisions');
RESET ROLE;

SET ROLE tap_watcher;
SELECT lives_ok($$ SELECT * FROM consistency.prepared_xacts() $$, 'a pg_monitor member lists prepared transactions');
RESET ROLE;

SET ROLE tap_stranger;
SELECT throws_ok($$ SELECT consistency.tpc_gid() $$, '42501', NULL, 'a role without grants cannot make gids');
SELECT throws_ok($$ SELECT * FROM consistency.prepared_xacts() $$, '42501', NULL, 'nor list');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
