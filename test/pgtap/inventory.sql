-- pgTAP: inventory reservations' schema objects, signatures and privileges; the flow as a
-- non-superuser granted consistency_user (buyer) and consistency_admin (stock keeper); and
-- under a hostile search_path that shadows the operators and tables the functions use.
BEGIN;
SELECT plan(45);

SELECT has_table('consistency', 'inventory', 'inventory exists');
SELECT has_table('consistency', 'reservations', 'reservations exists');
SELECT col_is_pk('consistency', 'inventory', ARRAY['sku', 'slot'], 'inventory is keyed (sku, slot)');
SELECT col_is_pk('consistency', 'reservations', ARRAY['reservation_id', 'line'],
	'reservations are keyed (reservation_id, line)');
SELECT columns_are('consistency', 'inventory', ARRAY['sku', 'slot', 'on_hand', 'reserved', 'adaptive', 'resized_at']);
SELECT columns_are('consistency', 'reservations', ARRAY[
	'reservation_id', 'line', 'sku', 'qty', 'status', 'created_at', 'expires_at']);
SELECT enum_has_labels('consistency', 'reservation_status',
	ARRAY['active', 'confirmed', 'released', 'expired']);
SELECT col_has_check('consistency', 'inventory', ARRAY['reserved', 'on_hand'],
	'inventory has the CHECK that forbids oversell');
SELECT has_index('consistency', 'reservations', 'reservations_expiry_idx', 'expiry has its index');
SELECT is((SELECT reloptions FROM pg_class WHERE oid = 'consistency.inventory'::regclass),
	ARRAY['fillfactor=30'], 'inventory leaves room for HOT updates');
SELECT ok((SELECT 'consistency.inventory'::regclass = ANY (extconfig)
			 AND 'consistency.reservations'::regclass = ANY (extconfig)
			 FROM pg_extension WHERE extname = 'consistency'), 'both tables are dumped by pg_dump');

SELECT function_returns('consistency', 'stock_set', ARRAY['text', 'bigint', 'integer'], 'bigint');
SELECT function_returns('consistency', 'stock_add', ARRAY['text', 'bigint'], 'bigint');
SELECT function_returns('consistency', 'reserve',
	ARRAY['text', 'bigint', 'text', 'interval', 'boolean'], 'text');
SELECT function_returns('consistency', 'reserve_all',
	ARRAY['text', 'text[]', 'bigint[]', 'interval'], 'text');
SELECT function_returns('consistency', 'confirm', ARRAY['text'], 'bigint');
SELECT function_returns('consistency', 'release', ARRAY['text'], 'bigint');
SELECT function_returns('consistency', 'expire_reservations', ARRAY['integer'], 'bigint');
SELECT function_returns('consistency', 'available', ARRAY['text'], 'bigint');
SELECT function_returns('consistency', 'check_inventory', ARRAY[]::text[], 'setof record');
SELECT isnt_definer('consistency', 'reserve', ARRAY['text', 'bigint', 'text', 'interval', 'boolean']);

SELECT ok(NOT has_function_privilege('public',
	'consistency.reserve(text, bigint, text, interval, boolean)', 'EXECUTE'), 'PUBLIC cannot reserve');
SELECT ok(has_function_privilege('consistency_user',
	'consistency.reserve(text, bigint, text, interval, boolean)', 'EXECUTE'), 'consistency_user can reserve');
SELECT ok(NOT has_function_privilege('consistency_user',
	'consistency.stock_set(text, bigint, integer)', 'EXECUTE'), 'stock_set is for consistency_admin only');
SELECT ok(NOT has_function_privilege('consistency_user',
	'consistency.expire_reservations(integer)', 'EXECUTE'), 'expire_reservations is for consistency_admin only');
SELECT ok(has_function_privilege('consistency_admin',
	'consistency.check_inventory()', 'EXECUTE'), 'consistency_admin can check the inventory');
-- The functions write the tables as their owner: no application role may write them
-- directly.  Reads only where the README documents one: buyers read reservations, the stock
-- keeper also the slot rows; a buyer reads stock through available().
SELECT is((SELECT array_agg(r.role || ' ' || p.priv || ' ' || t.tab ORDER BY 1)
			 FROM (VALUES ('consistency_user'), ('consistency_admin')) r(role)
			 CROSS JOIN (VALUES ('consistency.inventory'), ('consistency.reservations')) t(tab)
			 CROSS JOIN (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) p(priv)
			WHERE CASE WHEN p.priv IN ('INSERT', 'UPDATE')
					   THEN has_any_column_privilege(r.role, t.tab, p.priv)
					   ELSE has_table_privilege(r.role, t.tab, p.priv) END),
	NULL, 'neither consistency_user nor consistency_admin may write the inventory tables');
SELECT ok(has_table_privilege('consistency_user', 'consistency.reservations', 'SELECT'),
	'consistency_user may read reservations');
SELECT ok(NOT has_any_column_privilege('consistency_user', 'consistency.inventory', 'SELECT'),
	'consistency_user reads stock through available(), not the slot rows');
SELECT ok(has_table_privilege('consistency_admin', 'consistency.inventory', 'SELECT'),
	'consistency_admin may read the slot rows');

CREATE ROLE tap_buyer NOLOGIN;
GRANT consistency_user TO tap_buyer;
CREATE ROLE tap_keeper NOLOGIN;
GRANT consistency_admin TO tap_keeper;
CREATE ROLE tap_nobody NOLOGIN;

SET ROLE tap_keeper;
SELECT is(consistency.stock_set('tap-mug', 3, 2), 3::bigint, 'the stock keeper creates a SKU');
SELECT is(consistency.stock_set('tap-one', 1), 1::bigint, 'and a one-slot SKU');
RESET ROLE;
SET ROLE tap_buyer;
SELECT is(consistency.reserve('tap-one', 2, 'tap-o1'), 'insufficient',
	'the one-slot locking read works for a buyer without privileges on the rows');
SELECT is(consistency.reserve('tap-one', 1, 'tap-o1'), 'reserved', 'so does the one-slot update');
SELECT is(consistency.release('tap-o1'), 1::bigint, 'and the release');
SELECT is(consistency.reserve('tap-mug', 2, 'tap-r1'), 'reserved', 'a non-superuser buyer reserves');
SELECT is(consistency.reserve('tap-mug', 2, 'tap-r1'), 'reserved', 'and retries');
SELECT is(consistency.reserve_all('tap-r2', ARRAY['tap-mug'], ARRAY[2]), 'insufficient',
	'reserve_all is all-or-nothing for non-superusers too');
SELECT is(consistency.confirm('tap-r1'), 2::bigint, 'the buyer confirms');
SELECT is(consistency.available('tap-mug'), 1::bigint, 'and reads the stock');
SELECT throws_ok($$ SELECT consistency.reserve('tap-mug', 1, 'tap-r1') $$, 'YC202', NULL,
	'a reused reservation id has its own SQLSTATE for non-superusers too');
SELECT throws_ok($$ SELECT consistency.stock_add('tap-mug', 10) $$, '42501', NULL,
	'a buyer cannot restock');
RESET ROLE;
SET ROLE tap_nobody;
SELECT throws_ok($$ SELECT consistency.reserve('tap-mug', 1, 'tap-r3') $$, '42501', NULL,
	'a role without consistency_user is refused');
RESET ROLE;

-- A hostile search_path: objects that shadow built-ins and the tables, raising if used.
CREATE SCHEMA tap_hostile;
CREATE FUNCTION tap_hostile.texteq_trap(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: text = text'; END $$;
CREATE OPERATOR tap_hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = tap_hostile.texteq_trap);
CREATE FUNCTION tap_hostile.int8ge_trap(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: bigint >= bigint'; END $$;
CREATE OPERATOR tap_hostile.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = tap_hostile.int8ge_trap);
CREATE TABLE tap_hostile.inventory (sku text, slot int, on_hand bigint, reserved bigint);
CREATE TABLE tap_hostile.reservations (reservation_id text);
GRANT USAGE ON SCHEMA tap_hostile TO tap_keeper;
-- pgTAP itself resolves operators through the search_path: record the answers, assert later.
CREATE TEMP TABLE hostile_answers (n serial, call text, answer text);
GRANT ALL ON hostile_answers, hostile_answers_n_seq TO tap_keeper;
SET ROLE tap_keeper;
SET search_path = tap_hostile, pg_catalog, public;
INSERT INTO pg_temp.hostile_answers (call, answer)
	VALUES ('stock_set', consistency.stock_set('tap-lamp', 4, 4)::text);
INSERT INTO pg_temp.hostile_answers (call, answer)
	VALUES ('reserve', consistency.reserve('tap-lamp', 3, 'tap-h1'));
INSERT INTO pg_temp.hostile_answers (call, answer)
	VALUES ('release', consistency.release('tap-h1')::text);
INSERT INTO pg_temp.hostile_answers (call, answer)
	VALUES ('reserve_all', consistency.reserve_all('tap-h2', ARRAY['tap-lamp', 'tap-mug'], ARRAY[1, 1]));
INSERT INTO pg_temp.hostile_answers (call, answer)
	VALUES ('stock_add', consistency.stock_add('tap-lamp', 1)::text);
INSERT INTO pg_temp.hostile_answers (call, answer)
	VALUES ('confirm', consistency.confirm('tap-h2')::text);
INSERT INTO pg_temp.hostile_answers (call, answer)
	VALUES ('expire_reservations', consistency.expire_reservations()::text);
INSERT INTO pg_temp.hostile_answers (call, answer)
	VALUES ('available', consistency.available('tap-lamp')::text);
INSERT INTO pg_temp.hostile_answers (call, answer)
	SELECT 'check_inventory', count(*)::text FROM consistency.check_inventory();
RESET search_path;
RESET ROLE;
SELECT results_eq($$ SELECT call, answer FROM hostile_answers ORDER BY n $$,
	$$ VALUES ('stock_set', '4'), ('reserve', 'reserved'), ('release', '3'),
			  ('reserve_all', 'reserved'), ('stock_add', '4'), ('confirm', '2'),
			  ('expire_reservations', '0'), ('available', '4'), ('check_inventory', '0') $$,
	'every function works under a hostile search_path (with a rebalance on the way)');
SELECT is((SELECT count(*) FROM tap_hostile.inventory) + (SELECT count(*) FROM tap_hostile.reservations),
	0::bigint, 'the shadowing tables were never touched');

SELECT * FROM finish();
ROLLBACK;
