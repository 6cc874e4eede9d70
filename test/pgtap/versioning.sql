-- pgTAP: optimistic versioning's signatures and privileges, and both modes used by
-- non-superusers: a table owner granted consistency_user, an application role with only
-- table privileges and consistency_user, and a role without consistency_user.
BEGIN;
SELECT plan(35);

SELECT function_returns('consistency', 'version_guard', ARRAY[]::text[], 'trigger');
SELECT function_lang_is('consistency', 'version_guard', ARRAY[]::text[], 'c');
SELECT function_returns('consistency', 'enable_versioning', ARRAY['regclass', 'name', 'boolean', 'text'], 'void');
SELECT function_returns('consistency', 'disable_versioning', ARRAY['regclass'], 'void');
SELECT function_returns('consistency', 'update_versioned',
	ARRAY['regclass', 'jsonb', 'bigint', 'jsonb', 'name'], 'bigint');
SELECT function_returns('consistency', 'try_update_versioned',
	ARRAY['regclass', 'jsonb', 'bigint', 'jsonb', 'name'], 'bigint');
SELECT is((SELECT pg_get_function_arguments('consistency.update_versioned(regclass, jsonb, bigint, jsonb, name)'::regprocedure)),
	'rel regclass, key jsonb, expected_version bigint, changes jsonb, version_column name DEFAULT ''version''::name',
	'update_versioned argument names and defaults');
SELECT is((SELECT pg_get_function_arguments('consistency.enable_versioning(regclass, name, boolean, text)'::regprocedure)),
	'rel regclass, version_column name DEFAULT ''version''::name, strict boolean DEFAULT false, mode text DEFAULT ''read''::text',
	'enable_versioning argument names and defaults');
SELECT isnt_definer('consistency', 'update_versioned', ARRAY['regclass', 'jsonb', 'bigint', 'jsonb', 'name']);
SELECT isnt_definer('consistency', 'enable_versioning', ARRAY['regclass', 'name', 'boolean', 'text']);
SELECT isnt_strict('consistency', 'update_versioned', ARRAY['regclass', 'jsonb', 'bigint', 'jsonb', 'name']);
SELECT volatility_is('consistency', 'update_versioned', ARRAY['regclass', 'jsonb', 'bigint', 'jsonb', 'name'], 'volatile');

SELECT ok(NOT has_function_privilege('public',
	'consistency.update_versioned(regclass, jsonb, bigint, jsonb, name)', 'EXECUTE'), 'PUBLIC cannot call update_versioned');
SELECT ok(NOT has_function_privilege('public',
	'consistency.enable_versioning(regclass, name, boolean, text)', 'EXECUTE'), 'PUBLIC cannot call enable_versioning');
SELECT ok(has_function_privilege('consistency_user',
	'consistency.update_versioned(regclass, jsonb, bigint, jsonb, name)', 'EXECUTE'), 'consistency_user can call update_versioned');
SELECT ok(has_function_privilege('consistency_user',
	'consistency.try_update_versioned(regclass, jsonb, bigint, jsonb, name)', 'EXECUTE'), 'consistency_user can call try_update_versioned');
SELECT ok(has_function_privilege('consistency_user', 'consistency.version_guard()', 'EXECUTE'),
	'consistency_user can attach version_guard to its tables');
SELECT ok(has_function_privilege('consistency_user', 'consistency.disable_versioning(regclass)', 'EXECUTE'),
	'consistency_user can call disable_versioning');

-- A table owner with consistency_user; an application role with table privileges only;
-- a stranger without consistency_user.
CREATE ROLE tap_owner NOLOGIN;
CREATE ROLE tap_app NOLOGIN;
CREATE ROLE tap_outsider NOLOGIN;
GRANT consistency_user TO tap_owner, tap_app;
CREATE TABLE public.tap_items (id int PRIMARY KEY, name text NOT NULL, price int NOT NULL);
INSERT INTO public.tap_items VALUES (1, 'pen', 2), (2, 'ink', 5);
ALTER TABLE public.tap_items OWNER TO tap_owner;
GRANT SELECT, UPDATE ON public.tap_items TO tap_app, tap_outsider;

SET ROLE tap_owner;
SELECT lives_ok($$ SELECT consistency.enable_versioning('public.tap_items', strict => true) $$,
	'the table owner enables versioning');
SELECT col_type_is('public', 'tap_items', 'version', 'bigint', 'it added a bigint version column');
SELECT col_not_null('public', 'tap_items', 'version', 'version is NOT NULL');
SELECT trigger_is('public', 'tap_items', 'consistency_version_guard', 'consistency', 'version_guard',
	'the trigger calls consistency.version_guard');
RESET ROLE;

SET ROLE tap_app;
SELECT results_eq($$ UPDATE public.tap_items SET price = 3, version = 1 WHERE id = 1 RETURNING version $$,
	ARRAY[2::bigint], 'the application updates with the version it read and the version goes up');
SELECT throws_ok($$ UPDATE public.tap_items SET price = 4, version = 1 WHERE id = 1 $$,
	'40001', 'version conflict on table "tap_items"', 'a stale version conflicts with 40001');
SELECT throws_ok($$ UPDATE public.tap_items SET price = 4 WHERE id = 1 $$,
	'YC102', NULL, 'strict mode refuses an UPDATE without the version');
SELECT is(consistency.update_versioned('public.tap_items', '{"id": 2}', 1, '{"price": 6}'), 2::bigint,
	'update_versioned works for the application role');
SELECT is(consistency.try_update_versioned('public.tap_items', '{"id": 2}', 1, '{"price": 7}'), NULL::bigint,
	'try_update_versioned answers NULL to a stale version');
SELECT throws_ok($$ SELECT consistency.update_versioned('public.tap_items', '{"id": 9}', 1, '{"price": 7}') $$,
	'P0002', NULL, 'a missing row is P0002');
SELECT throws_ok($$ SELECT consistency.enable_versioning('public.tap_items') $$,
	'42501', NULL, 'only roles with TRIGGER on the table change its versioning');
RESET ROLE;

SET ROLE tap_outsider;
SELECT throws_ok($$ SELECT consistency.update_versioned('public.tap_items', '{"id": 2}', 2, '{"price": 8}') $$,
	'42501', NULL, 'a role without consistency_user cannot call update_versioned');
RESET ROLE;
REVOKE UPDATE ON public.tap_items FROM tap_app;
SET ROLE tap_app;
SELECT throws_ok($$ SELECT consistency.update_versioned('public.tap_items', '{"id": 2}', 2, '{"price": 8}') $$,
	'42501', NULL, 'update_versioned needs the caller''s own UPDATE privilege');
RESET ROLE;
-- Mode 'increment' (the ORM convention), enabled by the owner, used by the application.
CREATE TABLE public.tap_orm (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.tap_orm VALUES (1, 'pen');
ALTER TABLE public.tap_orm OWNER TO tap_owner;
GRANT SELECT, UPDATE ON public.tap_orm TO tap_app;
SET ROLE tap_owner;
SELECT lives_ok($$ SELECT consistency.enable_versioning('public.tap_orm', strict => true, mode => 'increment') $$,
	'the table owner enables versioning in mode increment');
RESET ROLE;
SET ROLE tap_app;
SELECT results_eq($$ UPDATE public.tap_orm SET name = 'ink', version = 2 WHERE id = 1 AND version = 1 RETURNING version $$,
	ARRAY[2::bigint], 'the application sends the version it read plus one, as ORMs do');
SELECT throws_ok($$ UPDATE public.tap_orm SET name = 'pad', version = 2 WHERE id = 1 $$,
	'40001', 'version conflict on table "tap_orm"', 'mode increment refuses the version read itself');
RESET ROLE;

SELECT results_eq($$ SELECT id, price, version FROM public.tap_items ORDER BY id $$,
	$$ VALUES (1, 3, 2::bigint), (2, 6, 2::bigint) $$, 'only the accepted updates were written');

SELECT * FROM finish();
ROLLBACK;
