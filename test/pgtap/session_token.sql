-- pgTAP: session LSN tokens' functions, signatures, GUCs, privileges, and use by a
-- non-superuser granted consistency_user, also under a hostile search_path.
-- The session's token is taken before BEGIN: inside this test's transaction, which writes,
-- write_token() is refused (YC306).
SELECT consistency.write_token() AS tok \gset
BEGIN;
SELECT plan(32);

SELECT function_returns('consistency', 'write_token', ARRAY[]::text[], 'text');
SELECT function_returns('consistency', 'token_max', ARRAY['text', 'text'], 'text');
SELECT function_returns('consistency', 'token_status', ARRAY['text'], 'text');
SELECT function_returns('consistency', 'wait_for_token', ARRAY['text', 'interval'], 'boolean');
SELECT function_returns('consistency', 'standby_status', ARRAY[]::text[], 'setof record');
SELECT isnt_definer('consistency', 'wait_for_token', ARRAY['text', 'interval']);
SELECT isnt_strict('consistency', 'token_status', ARRAY['text']);
SELECT volatility_is('consistency', 'token_max', ARRAY['text', 'text'], 'immutable');

SELECT ok(NOT has_function_privilege('public', 'consistency.write_token()', 'EXECUTE'),
	'PUBLIC cannot call write_token');
SELECT ok(has_function_privilege('consistency_user', 'consistency.write_token()', 'EXECUTE'),
	'consistency_user can call write_token');
SELECT ok(has_function_privilege('consistency_user', 'consistency.wait_for_token(text, interval)', 'EXECUTE'),
	'consistency_user can call wait_for_token');
SELECT ok(has_function_privilege('pg_monitor', 'consistency.standby_status()', 'EXECUTE'),
	'pg_monitor can call standby_status');

-- The GUCs exist once the library is loaded (any call loads it).
SELECT lives_ok($$ SELECT consistency.token_status('v1:1:1:0/0') $$, 'calling into the library loads it');
SELECT is((SELECT context FROM pg_settings WHERE name = 'consistency.last_commit_token'),
	'internal', 'last_commit_token cannot be set by users');
SELECT is((SELECT context FROM pg_settings WHERE name = 'consistency.read_after'),
	'user', 'read_after is user-settable');
SELECT is((SELECT unit || ':' || boot_val FROM pg_settings WHERE name = 'consistency.read_after_timeout'),
	'ms:1000', 'read_after_timeout is in milliseconds, default 1s');
SELECT throws_ok($$ SET consistency.last_commit_token = 'v1:1:1:0/0' $$, '55P02', NULL,
	'SET last_commit_token is refused');

-- A non-superuser granted consistency_user, under a hostile search_path.
CREATE ROLE tap_token_app NOLOGIN;
GRANT consistency_user TO tap_token_app;
CREATE ROLE tap_token_stranger NOLOGIN;
CREATE SCHEMA tap_hostile;
GRANT USAGE ON SCHEMA tap_hostile TO PUBLIC;
CREATE FUNCTION tap_hostile.pg_is_in_recovery() RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: pg_is_in_recovery()'; END $$;
CREATE FUNCTION tap_hostile.pg_current_wal_lsn() RETURNS pg_lsn LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: pg_current_wal_lsn()'; END $$;
CREATE VIEW tap_hostile.pg_stat_replication AS SELECT 1 AS pid;
SET ROLE tap_token_app;
SET search_path = tap_hostile, pg_catalog, public;

SELECT matches(:'tok'::text, '^v1:[1-9][0-9]*:[1-9][0-9]*:[0-9A-F]+/[0-9A-F]+$',
	'the session''s token is well-formed');
SELECT throws_ok($$ SELECT consistency.write_token() $$, 'YC306', NULL,
	'inside a transaction that has written, write_token() is refused');
SELECT is(consistency.token_status(:'tok'), 'primary',
	'a token of this primary is "primary" here');
SELECT is(consistency.wait_for_token(:'tok', '10ms'), true,
	'wait_for_token returns true at once on the primary');
SELECT is(consistency.token_max(:'tok', :'tok'), :'tok'::text,
	'token_max of a token with itself is the token');
SELECT is(consistency.token_max('v1:42:1:0/5000', 'v1:42:2:0/10'), 'v1:42:2:0/10',
	'token_max prefers the later timeline');
SELECT lives_ok($$ SELECT * FROM consistency.standby_status() $$,
	'standby_status runs under a hostile search_path');
SELECT is((SELECT count(*) FROM consistency.standby_status()), 0::bigint,
	'and reports no standby here (the hostile view was not used)');
SELECT throws_ok($$ SELECT consistency.token_status('v1:42:1:0/3000148 ') $$, 'YC301', NULL,
	'malformed token: YC301');
SELECT throws_ok($$ SELECT consistency.token_max('v1:42:1:0/1', 'v1:43:1:0/1') $$, 'YC302', NULL,
	'tokens of two clusters: YC302');
SELECT throws_ok($$ SET LOCAL consistency.read_after = 'v1:42:1:0/1000' $$, 'YC302', NULL,
	'SET read_after with another cluster''s token: YC302');
SELECT lives_ok(format($$ SET LOCAL consistency.read_after = %L $$, :'tok'),
	'SET read_after with a token of this primary');
RESET search_path;
RESET ROLE;

CREATE ROLE tap_token_monitor NOLOGIN;
GRANT pg_monitor TO tap_token_monitor;
SET ROLE tap_token_monitor;
SELECT lives_ok($$ SELECT * FROM consistency.standby_status() $$,
	'a pg_monitor member (without consistency_user) can call standby_status');
SELECT throws_ok($$ SELECT consistency.write_token() $$, '42501', NULL,
	'but nothing else');
RESET ROLE;

SET ROLE tap_token_stranger;
SELECT throws_ok($$ SELECT consistency.write_token() $$, '42501', NULL,
	'a role without consistency_user is refused');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
