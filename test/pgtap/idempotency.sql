-- pgTAP: idempotency keys' schema objects, signatures, privileges, and the flow as a
-- non-superuser granted consistency_user.
BEGIN;
SELECT plan(39);

SELECT has_schema('consistency');
SELECT has_table('consistency', 'idempotency_keys', 'idempotency_keys exists');
SELECT col_is_pk('consistency', 'idempotency_keys', ARRAY['key', 'scope'],
	'primary key is (key, scope): key first, see consistency--1.0--1.1.sql');
SELECT columns_are('consistency', 'idempotency_keys', ARRAY[
	'scope', 'key', 'fingerprint', 'state', 'response', 'recovery_point', 'attempt',
	'lease_duration', 'lease_expires_at', 'created_at', 'completed_at', 'expires_at']);
SELECT col_type_is('consistency', 'idempotency_keys', 'response', 'jsonb', 'response is jsonb');
SELECT has_index('consistency', 'idempotency_keys', 'idempotency_keys_expires_at_idx', 'purge has its index');
SELECT ok((SELECT 'consistency.idempotency_keys'::regclass = ANY (extconfig)
			 FROM pg_extension WHERE extname = 'consistency'), 'idempotency_keys is dumped by pg_dump');

SELECT function_returns('consistency', 'idem_begin',
	ARRAY['text', 'text', 'interval', 'text', 'boolean'], 'setof record');
SELECT function_returns('consistency', 'idem_complete',
	ARRAY['text', 'jsonb', 'text', 'integer'], 'void');
SELECT function_returns('consistency', 'idem_lease',
	ARRAY['text', 'text', 'interval', 'text', 'interval', 'boolean'], 'setof record');
SELECT function_returns('consistency', 'idem_checkpoint',
	ARRAY['text', 'text', 'text', 'integer'], 'timestamp with time zone');
SELECT function_returns('consistency', 'idem_release', ARRAY['text', 'text', 'integer'], 'boolean');
SELECT function_returns('consistency', 'idem_purge', ARRAY['integer'], 'bigint');
SELECT function_returns('consistency', 'idem_claim',
	ARRAY['text', 'text', 'interval', 'text', 'boolean'], 'jsonb');
SELECT function_returns('consistency', 'idem_finish',
	ARRAY['text', 'jsonb', 'text', 'integer'], 'jsonb');
SELECT isnt_definer('consistency', 'idem_begin', ARRAY['text', 'text', 'interval', 'text', 'boolean']);
SELECT isnt_definer('consistency', 'idem_claim', ARRAY['text', 'text', 'interval', 'text', 'boolean']);
SELECT isnt_definer('consistency', 'idem_finish', ARRAY['text', 'jsonb', 'text', 'integer']);

SELECT has_role('consistency_user');
SELECT has_role('consistency_admin');
SELECT ok(NOT has_function_privilege('public',
	'consistency.idem_begin(text, text, interval, text, boolean)', 'EXECUTE'), 'PUBLIC cannot call idem_begin');
SELECT ok(has_function_privilege('consistency_user',
	'consistency.idem_begin(text, text, interval, text, boolean)', 'EXECUTE'), 'consistency_user can call idem_begin');
SELECT ok(NOT has_function_privilege('consistency_user', 'consistency.idem_purge(integer)', 'EXECUTE'),
	'idem_purge is for consistency_admin only');
SELECT ok(has_function_privilege('consistency_admin', 'consistency.idem_purge(integer)', 'EXECUTE'),
	'consistency_admin can purge');
-- The functions write the table as its owner: the roles may read it, never write it.
SELECT table_privs_are('consistency', 'idempotency_keys', 'consistency_user', ARRAY['SELECT'],
	'consistency_user may only read idempotency_keys');
SELECT table_privs_are('consistency', 'idempotency_keys', 'consistency_admin', ARRAY['SELECT'],
	'consistency_admin may only read idempotency_keys');

-- An application role granted consistency_user, and one that was not.
CREATE ROLE tap_app NOLOGIN;
GRANT consistency_user TO tap_app;
CREATE ROLE tap_stranger NOLOGIN;
CREATE TABLE public.tap_orders (id serial PRIMARY KEY, item text);
GRANT ALL ON public.tap_orders, public.tap_orders_id_seq TO tap_app;

SET ROLE tap_app;
SELECT results_eq($$ SELECT status FROM consistency.idem_begin('tap-1', 'fp') $$,
	ARRAY['new'], 'non-superuser claims a new key');
INSERT INTO public.tap_orders (item) VALUES ('book');
SELECT lives_ok($$ SELECT consistency.idem_complete('tap-1', '{"order": 1}') $$,
	'non-superuser stores the response');
SELECT results_eq($$ SELECT status, response FROM consistency.idem_begin('tap-1', 'fp') $$,
	$$ VALUES ('replay'::text, '{"order": 1}'::jsonb) $$, 'and sees the replay');
SELECT throws_ok($$ SELECT * FROM consistency.idem_begin('tap-1', 'other') $$,
	'YC001', NULL, 'fingerprint mismatch has its own SQLSTATE for non-superusers too');
SELECT is(consistency.idem_claim('tap-3', 'fp'), NULL, 'non-superuser claims with idem_claim: NULL, run it');
SELECT is(consistency.idem_finish('tap-3', '{"order": 3}'), '{"order": 3}'::jsonb,
	'idem_finish stores the response and returns it');
SELECT is(consistency.idem_claim('tap-3', 'fp'), '{"order": 3}'::jsonb, 'idem_claim replays it');
SELECT throws_ok($$ SELECT consistency.idem_purge() $$, '42501', NULL,
	'consistency_user cannot purge');
SELECT throws_ok($$ UPDATE consistency.idempotency_keys SET response = '{"forged": true}' $$,
	'42501', NULL, 'consistency_user cannot rewrite a stored response');
SELECT throws_ok($$ INSERT INTO consistency.idempotency_keys (key, state, created_at, expires_at)
	VALUES ('tap-forged', 'completed', now(), now()) $$, '42501', NULL,
	'consistency_user cannot insert a key');
SELECT throws_ok($$ DELETE FROM consistency.idempotency_keys $$, '42501', NULL,
	'consistency_user cannot delete keys');
RESET ROLE;

SET ROLE tap_stranger;
SELECT throws_ok($$ SELECT * FROM consistency.idem_begin('tap-2') $$, '42501', NULL,
	'a role without consistency_user is refused');
SELECT throws_ok($$ SELECT consistency.idem_claim('tap-2') $$, '42501', NULL,
	'and refused idem_claim');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
