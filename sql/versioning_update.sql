-- Optimistic versioning, function mode: update_versioned and try_update_versioned.
-- Every error and bad input (nothing is written), composite keys, value coercion, hostile
-- identifiers, privileges and row-level security, plan invalidation after ALTER TABLE,
-- and both modes together on one table.  Errors are shown as users see them, followed by
-- their SQLSTATE; err() shows the error fields an application reads.
\set VERBOSITY default
CREATE FUNCTION err(stmt text, OUT code text, OUT message text, OUT detail text,
					OUT schema_name text, OUT table_name text, OUT column_name text)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	code := 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL, schema_name = SCHEMA_NAME,
		table_name = TABLE_NAME, column_name = COLUMN_NAME;
END $$;

CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL,
					   tags text[], prefs jsonb, active boolean NOT NULL DEFAULT true,
					   code varchar(4), version bigint NOT NULL DEFAULT 1);
INSERT INTO accounts (id, owner, balance) VALUES (1, 'alice', 100), (2, 'bob', 50);

-- 1. The row is updated if it is still at the expected version; the new version is returned.
SELECT consistency.update_versioned('accounts', '{"id": 1}', 1, '{"balance": 120.5}');
SELECT id, owner, balance, version FROM accounts ORDER BY id;
SELECT consistency.update_versioned('accounts', '{"id": 1}', 2,
	'{"owner": "alice b.", "balance": "130", "active": false}');
SELECT id, owner, balance, active, version FROM accounts WHERE id = 1;
-- the key's values may be strings too: each goes through its column's input function
SELECT consistency.update_versioned('accounts', '{"id": "2"}', 1, '{"balance": 55}');

-- 2. Stale version: the same conflict as the trigger's (40001 + fields); nothing written.
SELECT consistency.update_versioned('accounts', '{"id": 1}', 2, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 2, '{"balance": 0}') $$);
SET consistency.version_conflict_sqlstate = 'YC101';
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 2, '{"balance": 0}') $$);
RESET consistency.version_conflict_sqlstate;
SELECT id, balance, version FROM accounts WHERE id = 1;

-- 3. try_update_versioned: NULL on a conflict, the new version otherwise; every other
--    error still raises.
SELECT consistency.try_update_versioned('accounts', '{"id": 1}', 2, '{"balance": 0}') AS conflict;
SELECT consistency.try_update_versioned('accounts', '{"id": 1}', 3, '{"balance": 140}') AS updated;
SELECT consistency.try_update_versioned('accounts', '{"id": 99}', 1, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.try_update_versioned('accounts', '{"id": 1}', 4, '{"balance": "lots"}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.try_update_versioned('accounts', '{"id": 1}', NULL, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE

-- 4. A missing row is P0002 (no_data_found), not a conflict.
SELECT consistency.update_versioned('accounts', '{"id": 99}', 1, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 99}', 1, '{"balance": 0}') $$);

-- 5. Values: strings give their text, numbers and booleans their JSON text, JSON null is
--    SQL NULL, arrays and objects their JSON text; json/jsonb columns take any JSON value;
--    each is checked by its column type's input function (typmod included).
SELECT consistency.update_versioned('accounts', '{"id": 2}', 2,
	'{"tags": "{vip,\"new, customer\"}", "prefs": {"lang": "en", "digest": [1, 2]}, "code": "AB12"}');
SELECT id, tags, prefs, code, version FROM accounts WHERE id = 2;
SELECT consistency.update_versioned('accounts', '{"id": 2}', 3, '{"prefs": "plain string", "code": null}');
SELECT id, prefs, jsonb_typeof(prefs), code FROM accounts WHERE id = 2;
SELECT consistency.update_versioned('accounts', '{"id": 2}', 4, '{"prefs": null, "balance": 1e2}');
SELECT id, prefs IS NULL AS prefs_is_null, balance FROM accounts WHERE id = 2;
-- coercion failures: the input function's own SQLSTATE, with the column named
SELECT consistency.update_versioned('accounts', '{"id": 2}', 5, '{"balance": "a lot"}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 2}', 5, '{"active": 7}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 2}', 5, '{"tags": ["a", "b"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 2}', 5, '{"code": "TOO LONG"}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 2}', 5, '{"balance": 12345678901234}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 2}', 5, '{"owner": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": "two"}', 5, '{"balance": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": null}', 5, '{"balance": 1}');
\echo :LAST_ERROR_SQLSTATE
-- a domain's constraints apply
CREATE DOMAIN positive_money AS numeric(12,2) CHECK (VALUE > 0);
ALTER TABLE accounts ADD COLUMN credit_limit positive_money;
SELECT consistency.update_versioned('accounts', '{"id": 2}', 5, '{"credit_limit": -5}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 2}', 5, '{"credit_limit": 500}');

-- 6. Bad arguments: clear errors, and nothing is written.
SELECT consistency.update_versioned(NULL, '{"id": 1}', 1, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', NULL, 1, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 1}', NULL, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 1}', 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 1}', 1, '{"balance": 0}', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '[1]', 1, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '1', 1, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{"id": 1}', 1, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('accounts', '{}', 1, '{"balance": 0}');
\echo :LAST_ERROR_SQLSTATE
-- unknown, system, generated and version columns
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"balance": 0, "nickname": "x"}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"xmin": 1}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"version": 10}') $$);
ALTER TABLE accounts ADD COLUMN balance_cents bigint GENERATED ALWAYS AS (balance * 100) STORED;
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"balance_cents": 1}') $$);
ALTER TABLE accounts ADD COLUMN gone int;
ALTER TABLE accounts DROP COLUMN gone;
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"gone": 1}') $$);
-- the key must name exactly the primary key
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"owner": "bob"}', 4, '{"balance": 0}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1, "owner": "alice"}', 4, '{"balance": 0}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"ID": 1}', 4, '{"balance": 0}') $$);
-- the version column must exist and be bigint or integer
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"balance": 0}', 'rev') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"balance": 0}', 'xmin') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"balance": 0}', 'owner') $$);
-- tables only, and only with a primary key
CREATE TABLE no_pk (id int UNIQUE, version bigint NOT NULL DEFAULT 1, note text);
INSERT INTO no_pk VALUES (1, 1, 'a');
SELECT * FROM err($$ SELECT consistency.update_versioned('no_pk', '{"id": 1}', 1, '{"note": "b"}') $$);
CREATE VIEW accounts_view AS SELECT * FROM accounts;
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts_view', '{"id": 1}', 4, '{"balance": 0}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned(0, '{"id": 1}', 4, '{"balance": 0}') $$);
SELECT id, owner, balance, version FROM accounts ORDER BY id;		-- untouched by all of section 6

-- 7. Composite keys, in any order; a key that matches another row's prefix is no match.
CREATE TABLE stock (warehouse text, sku text, qty int NOT NULL, version int NOT NULL DEFAULT 1,
					PRIMARY KEY (warehouse, sku));
INSERT INTO stock VALUES ('ams', 'A-1', 10), ('ams', 'B-2', 5), ('ber', 'A-1', 7);
SELECT consistency.update_versioned('stock', '{"sku": "A-1", "warehouse": "ber"}', 1, '{"qty": 6}');
SELECT consistency.update_versioned('stock', '{"warehouse": "ams", "sku": "A-1"}', 1, '{"qty": 9}');
SELECT * FROM stock ORDER BY warehouse, sku;
SELECT * FROM err($$ SELECT consistency.update_versioned('stock', '{"warehouse": "ams"}', 1, '{"qty": 0}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('stock', '{"warehouse": "ams", "sku": "C-3"}', 1, '{"qty": 0}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('stock', '{"warehouse": "ams", "sku": "A-1"}', 1, '{"qty": 0}') $$);
-- an integer version column overflows at 2147483647 with an error, never wraps
UPDATE stock SET version = 2147483647 WHERE sku = 'B-2';
SELECT * FROM err($$ SELECT consistency.update_versioned('stock', '{"warehouse": "ams", "sku": "B-2"}', 2147483647, '{"qty": 0}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('stock', '{"warehouse": "ams", "sku": "B-2"}', 4294967296, '{"qty": 0}') $$);
SELECT * FROM stock WHERE sku = 'B-2';

-- 8. Both modes on one table: with version_guard installed (strict or not), the version
--    still goes up by exactly one, and plain UPDATEs are still checked.
SELECT consistency.enable_versioning('accounts', strict => true);
SELECT version FROM accounts WHERE id = 1;
SELECT consistency.update_versioned('accounts', '{"id": 1}', 4, '{"balance": 150}');
SELECT consistency.update_versioned('accounts', '{"id": 1}', 5, '{"balance": 160}');
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 5, '{"balance": 0}') $$);
UPDATE accounts SET balance = 170, version = 6 WHERE id = 1;
SELECT * FROM err($$ UPDATE accounts SET balance = 0, version = 6 WHERE id = 1 $$);
SELECT consistency.enable_versioning('accounts');
SELECT consistency.update_versioned('accounts', '{"id": 1}', 7, '{"balance": 180}');
SELECT id, balance, version FROM accounts WHERE id = 1;
-- a conflict leaves no exemption behind: after update_versioned (or try_update_versioned)
-- reported one for row 1 with row 2's version as the expected one, a plain UPDATE in the
-- same session that sets row 2's version to its stored one + 1 is still a conflict
SELECT version AS v2 FROM accounts WHERE id = 2 \gset
SELECT consistency.try_update_versioned('accounts', '{"id": 1}', :v2, '{"balance": 0}') AS conflict;
SELECT * FROM err(format($$ UPDATE accounts SET balance = 0, version = %s WHERE id = 2 $$, :v2 + 1));
SELECT * FROM err(format($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', %s, '{"balance": 0}') $$, :v2));
SELECT * FROM err(format($$ UPDATE accounts SET balance = 0, version = %s WHERE id = 2 $$, :v2 + 1));
SELECT id, balance, version, version = :v2 AS row2_unchanged FROM accounts ORDER BY id;
-- the exemption covers only the one row update_versioned writes: an UPDATE fired from
-- another trigger during it is checked as usual; and the caller's triggers run under the
-- caller's search_path, as they would for the caller's own UPDATE (unqualified "audit")
CREATE TABLE audit (account int PRIMARY KEY, version bigint NOT NULL DEFAULT 1, n int NOT NULL);
INSERT INTO audit VALUES (1, 1, 0);
SELECT consistency.enable_versioning('audit');
CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE audit SET n = n + 1, version = version WHERE account = NEW.id;
	RETURN NEW;
END $$;
CREATE TRIGGER zz_count AFTER UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION count_update();
SELECT consistency.update_versioned('accounts', '{"id": 1}', 8, '{"balance": 190}');
SELECT * FROM audit;
CREATE OR REPLACE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE audit SET n = n + 1, version = 1 WHERE account = NEW.id;		-- stale
	RETURN NEW;
END $$;
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 9, '{"balance": 200}') $$);
SELECT id, balance, version FROM accounts WHERE id = 1;
DROP TRIGGER zz_count ON accounts;
SELECT consistency.disable_versioning('accounts');

-- 9. A row that is there at the expected version but that the UPDATE did not change (a
--    BEFORE trigger skipped it, or an RLS policy for UPDATE hides it): YC103.
CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER skip BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION skip_row();
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 9, '{"balance": 0}') $$);
DROP TRIGGER skip ON accounts;
--    The same with version_guard installed too (it fires first, by name): still YC103 on
--    every attempt, never a false version conflict.
SELECT consistency.enable_versioning('accounts');
CREATE TRIGGER skip BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION skip_row();
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 1}', 9, '{"balance": 0}') $$);
DROP TRIGGER skip ON accounts;
SELECT consistency.disable_versioning('accounts');
SELECT id, balance, version FROM accounts WHERE id = 1;

-- 10. The statements are prepared once and kept; ALTER TABLE makes them stale, and the
--     next call rebuilds them (renamed, retyped, re-added columns, a new primary key).
DROP VIEW accounts_view;
ALTER TABLE accounts DROP COLUMN balance_cents;
SELECT consistency.update_versioned('accounts', '{"id": 2}', 6, '{"owner": "bob", "balance": 60}');
ALTER TABLE accounts RENAME COLUMN owner TO holder;
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 2}', 7, '{"owner": "bob"}') $$);
SELECT consistency.update_versioned('accounts', '{"id": 2}', 7, '{"holder": "robert", "balance": 61}');
ALTER TABLE accounts ALTER COLUMN balance TYPE text;
SELECT consistency.update_versioned('accounts', '{"id": 2}', 8, '{"holder": "rob", "balance": "sixty-two"}');
ALTER TABLE accounts DROP COLUMN holder, ADD COLUMN holder int;
SELECT consistency.update_versioned('accounts', '{"id": 2}', 9, '{"holder": 7, "balance": "63"}');
SELECT id, holder, balance, version FROM accounts WHERE id = 2;
UPDATE accounts SET code = 'X' WHERE code IS NULL;
ALTER TABLE accounts DROP CONSTRAINT accounts_pkey, ADD PRIMARY KEY (id, code);
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 2}', 10, '{"balance": "64"}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('accounts', '{"id": 2, "code": null}', 10, '{"balance": "64"}') $$);
SELECT consistency.update_versioned('accounts', '{"id": 2, "code": "X"}', 10, '{"balance": "64"}');
ALTER TABLE accounts ALTER COLUMN version TYPE int;
SELECT consistency.update_versioned('accounts', '{"id": 2, "code": "X"}', 11, '{"balance": "65"}');
SELECT pg_typeof(version), version FROM accounts WHERE id = 2;

-- The cache holds one kept statement per column set, with one generic plan: however often
-- it is called, an update is never planned again; a stale entry is rebuilt or dropped.  On
-- a table without triggers the update is made without the executor (case 17), so the
-- UPDATE is prepared but never planned; with a trigger the statement runs, on one plan.
CREATE TABLE cache_probe (id int PRIMARY KEY, a int, b int, version bigint NOT NULL DEFAULT 1);
INSERT INTO cache_probe VALUES (1, 0, 0);
CREATE VIEW cached_statements AS
	SELECT name, left(ident, 48) AS statement, count(*)
	  FROM pg_backend_memory_contexts WHERE ident LIKE '% public.cache_probe %'
	 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT max(consistency.update_versioned('cache_probe', '{"id": 1}', g, jsonb_build_object('a', g)))
  FROM generate_series(1, 20) g;
SELECT * FROM cached_statements;
CREATE TRIGGER probe_seen BEFORE UPDATE ON cache_probe
	FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
SELECT max(consistency.update_versioned('cache_probe', '{"id": 1}', g, jsonb_build_object('a', g)))
  FROM generate_series(21, 40) g;
SELECT * FROM cached_statements;
ALTER TABLE cache_probe ADD COLUMN c int;
SELECT consistency.update_versioned('cache_probe', '{"id": 1}', 41, '{"b": 1}');
SELECT * FROM cached_statements;
DROP VIEW cached_statements;
DROP TABLE cache_probe;

-- 11. Partitioned tables (the key includes the partition key) and inheritance (ONLY the
--     named table's row: its primary key does not cover children).
CREATE TABLE events (tenant int, id int, payload text, version bigint NOT NULL DEFAULT 1,
					 PRIMARY KEY (tenant, id)) PARTITION BY HASH (tenant);
CREATE TABLE events_0 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE events_1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO events VALUES (1, 1, 'a'), (2, 1, 'b');
SELECT consistency.update_versioned('events', '{"tenant": 2, "id": 1}', 1, '{"payload": "b2"}');
SELECT consistency.enable_versioning('events');
SELECT consistency.update_versioned('events', '{"tenant": 2, "id": 1}', 2, '{"payload": "b3"}');
SELECT consistency.update_versioned('events', '{"tenant": 1, "id": 1}', 1, '{"payload": "a2"}');
SELECT * FROM err($$ SELECT consistency.update_versioned('events', '{"tenant": 1, "id": 1}', 1, '{"payload": "x"}') $$);
SELECT * FROM events ORDER BY tenant;
CREATE TABLE parent (id int PRIMARY KEY, note text, version bigint NOT NULL DEFAULT 1);
CREATE TABLE child () INHERITS (parent);
INSERT INTO parent VALUES (1, 'parent row');
INSERT INTO child VALUES (1, 'child row');
SELECT consistency.update_versioned('parent', '{"id": 1}', 1, '{"note": "parent row, updated"}');
SELECT tableoid::regclass, * FROM parent ORDER BY 1;

-- 12. Hostile identifiers: every name is quoted, and values are parameters, never SQL.
CREATE SCHEMA "s""; DROP TABLE canary; --";
CREATE TABLE "s""; DROP TABLE canary; --"."t"" WHERE true; --" (
	"id""); DROP TABLE canary; --" int PRIMARY KEY,
	"select" text,
	"a b" text,
	"v"" = 0; --" bigint NOT NULL DEFAULT 1);
CREATE TABLE canary (id int);
INSERT INTO "s""; DROP TABLE canary; --"."t"" WHERE true; --" VALUES (1, 'x', 'y'), (2, 'x', 'y');
SELECT consistency.update_versioned('"s""; DROP TABLE canary; --"."t"" WHERE true; --"',
	'{"id\"); DROP TABLE canary; --": 1}', 1,
	'{"select": "''; DROP TABLE canary; --", "a b": "$1"}', 'v" = 0; --');
SELECT * FROM "s""; DROP TABLE canary; --"."t"" WHERE true; --" ORDER BY 1;
SELECT * FROM err($$ SELECT consistency.update_versioned('"s""; DROP TABLE canary; --"."t"" WHERE true; --"',
	'{"id\"); DROP TABLE canary; --": 1}', 1, '{"select": "again"}', 'v" = 0; --') $$);
SELECT to_regclass('canary') IS NOT NULL AS canary_alive;

-- 13. A hostile search_path changes nothing: every name and operator is qualified.
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.int4eq_trap(int, int) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: int = int'; END $$;
CREATE OPERATOR hostile.= (LEFTARG = int, RIGHTARG = int, FUNCTION = hostile.int4eq_trap);
CREATE FUNCTION hostile.int8pl_trap(bigint, int) RETURNS bigint LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: bigint + int'; END $$;
CREATE OPERATOR hostile.+ (LEFTARG = bigint, RIGHTARG = int, FUNCTION = hostile.int8pl_trap);
-- the version check compares the bigint column with a bigint parameter
CREATE FUNCTION hostile.int8eq_trap(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: bigint = bigint'; END $$;
CREATE OPERATOR hostile.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = hostile.int8eq_trap);
CREATE TABLE hostile.parent (id int);
SET search_path = hostile, pg_catalog, public;
SELECT consistency.update_versioned('public.parent', '{"id": 1}', 2, '{"note": "hostile path"}');
-- a stale version is still the conflict, found by the qualified comparison
SELECT consistency.try_update_versioned('public.parent', '{"id": 1}', 2, '{"note": "stale"}') AS conflict;
RESET search_path;
SELECT tableoid::regclass, * FROM parent ORDER BY 1;
DROP SCHEMA hostile CASCADE;

-- 14. Privileges and row-level security apply: update_versioned runs as the caller.
CREATE ROLE versioned_app;
CREATE ROLE versioned_stranger;
GRANT consistency_user TO versioned_app, versioned_stranger;
CREATE TABLE notes (id int PRIMARY KEY, author text NOT NULL, body text,
					locked boolean NOT NULL DEFAULT false, version bigint NOT NULL DEFAULT 1);
INSERT INTO notes (id, author, body, locked) VALUES (1, 'versioned_app', 'mine', false),
	(2, 'someone_else', 'theirs', false), (3, 'versioned_app', 'mine, locked', true);
GRANT SELECT, UPDATE (body, version) ON notes TO versioned_app;
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY see_own ON notes FOR SELECT USING (author = current_user);
CREATE POLICY edit_unlocked ON notes FOR UPDATE USING (author = current_user AND NOT locked)
	WITH CHECK (body IS NOT NULL);
SET ROLE versioned_stranger;
SELECT * FROM err($$ SELECT consistency.update_versioned('notes', '{"id": 1}', 1, '{"body": "stolen"}') $$);
SET ROLE versioned_app;
SELECT consistency.update_versioned('notes', '{"id": 1}', 1, '{"body": "mine, edited"}');
-- a column without the UPDATE privilege
SELECT * FROM err($$ SELECT consistency.update_versioned('notes', '{"id": 1}', 2, '{"author": "versioned_stranger"}') $$);
-- another author's row is invisible, hence missing
SELECT * FROM err($$ SELECT consistency.update_versioned('notes', '{"id": 2}', 1, '{"body": "defaced"}') $$);
-- visible but not updatable under the UPDATE policy
SELECT * FROM err($$ SELECT consistency.update_versioned('notes', '{"id": 3}', 1, '{"body": "unlocked?"}') $$);
-- the policy's WITH CHECK
SELECT * FROM err($$ SELECT consistency.update_versioned('notes', '{"id": 1}', 2, '{"body": null}') $$);
RESET ROLE;
SELECT id, author, body, version FROM notes ORDER BY id;
DROP TABLE notes;
DROP OWNED BY versioned_app, versioned_stranger;
DROP ROLE versioned_app, versioned_stranger;

DROP SCHEMA "s""; DROP TABLE canary; --" CASCADE;
DROP TABLE accounts, no_pk, stock, audit, events, parent, canary CASCADE;
-- 14. A schema renamed under a kept statement: it is rebuilt for the table's new name, and
--     never runs against whatever now has the old name.
CREATE SCHEMA ver_s1;
CREATE TABLE ver_s1.t (id int PRIMARY KEY, v int NOT NULL, version bigint NOT NULL DEFAULT 1);
INSERT INTO ver_s1.t VALUES (1, 0);
SELECT consistency.update_versioned('ver_s1.t', '{"id": 1}', 1, '{"v": 1}');
ALTER SCHEMA ver_s1 RENAME TO ver_s2;
CREATE SCHEMA ver_s1;
CREATE TABLE ver_s1.t (id int PRIMARY KEY, v int NOT NULL, version bigint NOT NULL DEFAULT 1);
INSERT INTO ver_s1.t VALUES (1, 100);
SELECT consistency.update_versioned('ver_s2.t', '{"id": 1}', 2, '{"v": 2}');
SELECT 'renamed' AS t, id, v, version FROM ver_s2.t
UNION ALL SELECT 'new', id, v, version FROM ver_s1.t ORDER BY 1;
DROP SCHEMA ver_s1 CASCADE;
DROP SCHEMA ver_s2 CASCADE;

-- 15. A row whose version is NULL (a nullable column, no trigger) cannot be checked: 22004,
--     not a conflict a retry loop would repeat forever.
CREATE TABLE nullver (id int PRIMARY KEY, v int, version bigint);
INSERT INTO nullver VALUES (1, 0, NULL);
SELECT * FROM err($$ SELECT consistency.update_versioned('nullver', '{"id": 1}', 1, '{"v": 1}') $$);
SELECT * FROM err($$ SELECT consistency.try_update_versioned('nullver', '{"id": 1}', 1, '{"v": 1}') $$);
DROP TABLE nullver;

-- 16. The value returned is the version stored.  Without a BEFORE UPDATE trigger or a rule,
--     nothing can store other than expected + 1 and the statement has no RETURNING; a
--     trigger created later, under a kept statement, rebuilds it with RETURNING, so a trigger
--     that moves the version on is reported; a rule keeps RETURNING too (a DO INSTEAD rule
--     without one refuses it, 0A000, as it always has); dropping them goes back.
--     A column named with a name longer than any column name is not one.
CREATE TABLE retver (id int PRIMARY KEY, v int NOT NULL, version bigint NOT NULL DEFAULT 1);
INSERT INTO retver VALUES (1, 0);
SELECT consistency.update_versioned('retver', '{"id": 1}', 1, '{"v": 1}') AS returned;
CREATE FUNCTION jump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.version := NEW.version + 10;
	RETURN NEW;
END $$;
CREATE TRIGGER jump BEFORE UPDATE ON retver FOR EACH ROW EXECUTE FUNCTION jump_version();
SELECT consistency.update_versioned('retver', '{"id": 1}', 2, '{"v": 2}') AS returned;
SELECT consistency.try_update_versioned('retver', '{"id": 1}', 13, '{"v": 3}') AS returned;
SELECT id, v, version FROM retver;
DROP TRIGGER jump ON retver;
SELECT consistency.update_versioned('retver', '{"id": 1}', 24, '{"v": 4}') AS returned;
CREATE TABLE retver_log (id int, version bigint);
CREATE RULE logged AS ON UPDATE TO retver DO ALSO INSERT INTO retver_log VALUES (NEW.id, NEW.version);
SELECT consistency.update_versioned('retver', '{"id": 1}', 25, '{"v": 5}') AS returned;
SELECT * FROM retver_log;
DROP RULE logged ON retver;
DROP TABLE retver_log;
CREATE RULE nothing AS ON UPDATE TO retver DO INSTEAD NOTHING;
SELECT * FROM err($$ SELECT consistency.update_versioned('retver', '{"id": 1}', 26, '{"v": 6}') $$);
DROP RULE nothing ON retver;
SELECT id, v, version FROM retver;
SELECT * FROM err(format($$ SELECT consistency.update_versioned('retver', '{"id": 1}', 26, '{"%s": 6}') $$,
						 repeat('v', 70)));
SELECT * FROM err($$ SELECT consistency.update_versioned('retver', '{"id": 1}', 26, '{"": 6}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('retver', '{"id": 1}', 26, '{"V": 6}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('retver', '{"id": 1}', 26, '{"xmin": 6}') $$);
DROP TABLE retver;
DROP FUNCTION jump_version();

-- 17. On an ordinary table without triggers, rules, row-level security, CHECK constraints
--     or generated columns, the UPDATE is made without the executor (src/versioning_direct.c):
--     the same results as the statement.  Visible at once to the same transaction and gone
--     with it; a changed indexed column gets new entries in every index (expression and
--     partial ones included; amcheck: every heap row is in each index, and an index scan
--     finds the new value, not the old); a unique index refuses a duplicate (23505), a NOT
--     NULL column a null (23502), nothing written; a TOASTed value is stored whole; an
--     identity column cannot be set (428C9); what a DBA adds is honoured through the
--     statement, also in a session that used the direct path before: a CHECK constraint
--     (23514), a foreign key (23503), row-level security, column privileges; a row changed
--     earlier in the same statement is seen; dropped again, the direct path
--     resumes (a stale version is the same conflict on either path).  A system catalog
--     always goes through the statement.
--     consistency.update_versioned_direct = off makes every call run the statement.
CREATE EXTENSION amcheck;
CREATE TABLE direct (id int PRIMARY KEY, sku text NOT NULL, qty int NOT NULL, note text,
					 ident int GENERATED ALWAYS AS IDENTITY, version bigint NOT NULL DEFAULT 1);
CREATE UNIQUE INDEX direct_sku ON direct (sku);
CREATE INDEX direct_lower_sku ON direct (lower(sku));
CREATE INDEX direct_big_qty ON direct (qty) WHERE qty > 100;
INSERT INTO direct (id, sku, qty) VALUES (1, 'A-1', 5), (2, 'B-2', 7);
BEGIN;
SELECT consistency.update_versioned('direct', '{"id": 1}', 1, '{"qty": 6}') AS v2,
	   consistency.update_versioned('direct', '{"id": 1}', 2, '{"qty": 8}') AS v3;
SELECT qty, version FROM direct WHERE id = 1;
ROLLBACK;
SELECT qty, version FROM direct WHERE id = 1;
SELECT consistency.update_versioned('direct', '{"id": 1}', 1, '{"sku": "C-3", "qty": 150}') AS not_heap_only;
SET enable_seqscan = off;
SELECT id, version FROM direct WHERE sku = 'C-3';
SELECT count(*) AS old_sku_found FROM direct WHERE sku = 'A-1';
SELECT id FROM direct WHERE lower(sku) = 'c-3';
SELECT id FROM direct WHERE qty > 100;
RESET enable_seqscan;
SELECT c.relname, bt_index_parent_check(c.oid, true) AS checked
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'direct'::regclass ORDER BY 1;
SELECT * FROM err($$ SELECT consistency.update_versioned('direct', '{"id": 2}', 1, '{"sku": "C-3"}') $$);
-- so far no UPDATE statement has run (it would have a plan), the 23505 included
SELECT count(*) AS statements_run FROM pg_backend_memory_contexts
 WHERE name = 'CachedPlan' AND ident LIKE 'UPDATE ONLY public.direct %';
-- consistency.update_versioned_direct = off: the statement runs (a plan appears)
SET consistency.update_versioned_direct = off;
SELECT consistency.update_versioned('direct', '{"id": 1}', 2, '{"qty": 151}') AS by_statement;
RESET consistency.update_versioned_direct;
SELECT count(*) AS statements_run FROM pg_backend_memory_contexts
 WHERE name = 'CachedPlan' AND ident LIKE 'UPDATE ONLY public.direct %';
-- a system catalog (a superuser may update one) goes through the statement, which does
-- what catalogs need (on 18, the tuple lock that in-place updates of pg_class and
-- pg_database wait for): a plan appears
CREATE SEQUENCE direct_seq;
SELECT consistency.update_versioned('pg_catalog.pg_sequence',
									jsonb_build_object('seqrelid', 'direct_seq'::regclass::oid),
									1, '{"seqcycle": true}', 'seqcache') AS catalog_row;
SELECT count(*) AS statements_run FROM pg_backend_memory_contexts
 WHERE name = 'CachedPlan' AND ident LIKE 'UPDATE ONLY pg_catalog.pg_sequence %';
SELECT seqcycle, seqcache FROM pg_sequence WHERE seqrelid = 'direct_seq'::regclass;
DROP SEQUENCE direct_seq;
SELECT * FROM err($$ SELECT consistency.update_versioned('direct', '{"id": 2}', 1, '{"qty": null}') $$);
SELECT * FROM err($$ SELECT consistency.update_versioned('direct', '{"id": 2}', 1, '{"ident": 9}') $$);
SELECT consistency.update_versioned('direct', '{"id": 2}', 1,
									jsonb_build_object('note', repeat('toast ', 50000))) AS toasted;
SELECT length(note), md5(note) = md5(repeat('toast ', 50000)) AS whole,
	   pg_column_size(note) < length(note) AS compressed
  FROM direct WHERE id = 2;
ALTER TABLE direct ADD CONSTRAINT small_qty CHECK (qty < 1000);
SELECT * FROM err($$ SELECT consistency.update_versioned('direct', '{"id": 2}', 2, '{"qty": 1000}') $$);
ALTER TABLE direct DROP CONSTRAINT small_qty;
CREATE TABLE direct_parent (sku text PRIMARY KEY);
INSERT INTO direct_parent VALUES ('B-2'), ('C-3');
ALTER TABLE direct ADD CONSTRAINT direct_sku_fkey FOREIGN KEY (sku) REFERENCES direct_parent;
SELECT * FROM err($$ SELECT consistency.update_versioned('direct', '{"id": 2}', 2, '{"sku": "Z-9"}') $$);
ALTER TABLE direct DROP CONSTRAINT direct_sku_fkey;
SELECT consistency.update_versioned('direct', '{"id": 2}', 2, '{"sku": "Z-9"}') AS unchecked_again;
SELECT consistency.try_update_versioned('direct', '{"id": 2}', 2, '{"qty": 9}') AS stale;
-- a row changed earlier in the same statement is seen, as by the statement
WITH bumped AS (UPDATE direct SET qty = qty + 1 WHERE id = 2 RETURNING version)
SELECT consistency.update_versioned('direct', '{"id": 2}', version, '{"qty": 70}') AS same_statement
  FROM bumped;
-- column privileges: the statement checks them
CREATE ROLE versioned_direct_cols;
GRANT consistency_user TO versioned_direct_cols;
GRANT SELECT, UPDATE (qty, version) ON direct TO versioned_direct_cols;
SET ROLE versioned_direct_cols;
SELECT consistency.update_versioned('direct', '{"id": 2}', 4, '{"qty": 71}') AS own_column;
SELECT * FROM err($$ SELECT consistency.update_versioned('direct', '{"id": 2}', 5, '{"sku": "Q-1"}') $$);
RESET ROLE;
REVOKE ALL ON direct FROM versioned_direct_cols;
DROP ROLE versioned_direct_cols;
-- row-level security, for a role with every table privilege: a hidden row is missing
CREATE ROLE versioned_direct_app;
GRANT consistency_user TO versioned_direct_app;
GRANT SELECT, UPDATE ON direct TO versioned_direct_app;
ALTER TABLE direct ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_first ON direct USING (id = 1);
SET ROLE versioned_direct_app;
SELECT * FROM err($$ SELECT consistency.update_versioned('direct', '{"id": 2}', 5, '{"qty": 8}') $$);
SELECT consistency.update_versioned('direct', '{"id": 1}', 3, '{"qty": 152}') AS visible;
RESET ROLE;
DROP POLICY only_first ON direct;
ALTER TABLE direct DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON direct FROM versioned_direct_app;
DROP ROLE versioned_direct_app;
SELECT id, sku, qty, ident, version FROM direct ORDER BY id;
SELECT c.relname, bt_index_parent_check(c.oid, true) AS checked
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'direct'::regclass ORDER BY 1;
DROP TABLE direct, direct_parent;
DROP EXTENSION amcheck;

DROP FUNCTION err(text), count_update(), skip_row();
DROP DOMAIN positive_money;
