-- Optimistic versioning, trigger mode: enable_versioning, the version_guard trigger
-- (accept + bump, conflict, strict mode, overflow, NULLs, misuse), the SQLSTATE GUC and
-- disable_versioning.  Errors are shown as users see them, followed by their SQLSTATE;
-- err() shows the error fields an application reads (SQLSTATE, detail, table, column).
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

-- 1. enable_versioning adds "version bigint NOT NULL DEFAULT 1" without rewriting the
--    table, and installs the trigger.
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
INSERT INTO products VALUES (1, 'espresso machine', 199), (2, 'grinder', 89), (3, 'scale', 25);
SELECT relfilenode AS before_filenode FROM pg_class WHERE oid = 'products'::regclass \gset
SELECT consistency.enable_versioning('products');
SELECT relfilenode = :before_filenode AS not_rewritten FROM pg_class WHERE oid = 'products'::regclass;
SELECT attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(adbin, adrelid) AS default
  FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
 WHERE attrelid = 'products'::regclass AND attname = 'version';
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'products'::regclass;
SELECT id, version FROM products ORDER BY id;
-- idempotent: a second call changes nothing and keeps one trigger
SELECT consistency.enable_versioning('products');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'products'::regclass;

-- 2. The client sends the version it read: accepted, and the version goes up by one.
UPDATE products SET price = 209, version = 1 WHERE id = 1;
SELECT id, price, version FROM products WHERE id = 1;
UPDATE products SET price = 219, version = 2 WHERE id = 1 RETURNING id, price, version;

-- 3. A stale version is a conflict: 40001, "expected version X, found Y", table and column.
UPDATE products SET price = 1, version = 2 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ UPDATE products SET price = 1, version = 2 WHERE id = 1 $$);
SELECT id, price, version FROM products WHERE id = 1;		-- unchanged
-- only the stored version itself is accepted: not the version after it (a client that
-- guessed the next version), nor one far ahead
UPDATE products SET price = 1, version = 4 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ UPDATE products SET price = 1, version = 4 WHERE id = 1 $$);
SELECT * FROM err($$ UPDATE products SET price = 1, version = 100 WHERE id = 1 $$);
SELECT id, price, version FROM products WHERE id = 1;		-- unchanged
-- a multi-row UPDATE is all or nothing: one stale row fails the statement
UPDATE products SET price = price + 1, version = 1 WHERE id IN (2, 3);
SELECT id, price, version FROM products WHERE id IN (2, 3) ORDER BY id;
UPDATE products SET version = 2 WHERE id = 2;	-- another client's update wins row 2
UPDATE products SET price = 0, version = 2 WHERE id IN (2, 3);
\echo :LAST_ERROR_SQLSTATE
SELECT id, price, version FROM products WHERE id IN (2, 3) ORDER BY id;

-- 4. Not strict (the default): an UPDATE that does not set the version is taken as made
--    against the current row, and still bumps it.
UPDATE products SET name = 'espresso machine pro' WHERE id = 1;
SELECT id, name, version FROM products WHERE id = 1;
-- INSERT ... ON CONFLICT DO UPDATE goes through the same check
INSERT INTO products (id, name, price, version) VALUES (1, 'x', 1, 3)
	ON CONFLICT (id) DO UPDATE SET price = excluded.price, version = excluded.version;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO products (id, name, price, version) VALUES (1, 'x', 1, 4)
	ON CONFLICT (id) DO UPDATE SET price = excluded.price, version = excluded.version;
SELECT id, price, version FROM products WHERE id = 1;

-- 5. Strict: an UPDATE whose SET list omits the version is refused (YC102), even when it
--    would change nothing else; naming the version passes.
SELECT consistency.enable_versioning('products', strict => true);
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'products'::regclass;
UPDATE products SET price = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ UPDATE products SET name = name WHERE id = 3 $$);
UPDATE products SET price = 30, version = 2 WHERE id = 3;
SELECT id, price, version FROM products WHERE id = 3;
-- the strict check does not compare values: "version = version" is an explicit choice
UPDATE products SET price = 31, version = version WHERE id = 3;
SELECT id, price, version FROM products WHERE id = 3;
-- and back to not strict, in place
SELECT consistency.enable_versioning('products', strict => false);
UPDATE products SET price = 32 WHERE id = 3;
SELECT id, price, version FROM products WHERE id = 3;

-- 6. NULL versions are refused, stored or sent.
UPDATE products SET version = NULL WHERE id = 3;
\echo :LAST_ERROR_SQLSTATE

-- 7. Overflow is an error, never a wrap-around; bigint and integer columns.
ALTER TABLE products DISABLE TRIGGER consistency_version_guard;
UPDATE products SET version = 9223372036854775807 WHERE id = 3;
ALTER TABLE products ENABLE TRIGGER consistency_version_guard;
UPDATE products SET price = 1, version = 9223372036854775807 WHERE id = 3;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ UPDATE products SET price = 1, version = 9223372036854775807 WHERE id = 3 $$);
CREATE TABLE small (id int PRIMARY KEY, v int NOT NULL DEFAULT 1, note text);
INSERT INTO small VALUES (1, 2147483646, 'a');
SELECT consistency.enable_versioning('small', 'v');
UPDATE small SET note = 'b', v = 2147483646 WHERE id = 1;
SELECT * FROM small;
UPDATE small SET note = 'c', v = 2147483647 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM small;
-- an integer column compares the full value the client sent: no truncation games
UPDATE small SET note = 'd', v = -1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE

-- The bumped version is written into a copy of the row: check rows with NULLs, short,
-- long, compressed and TOASTed values and a dropped column before the version, rows stored
-- before the column existed (fast default), and a column added after it.
CREATE TABLE layouts (id int PRIMARY KEY, a text, b smallint, gone text, c varchar(20), d numeric);
INSERT INTO layouts VALUES
	(1, 'x', 1, 'g', 'c', 1.5),
	(2, NULL, NULL, NULL, repeat('y', 15), NULL),
	(3, repeat('z', 5000), 7, NULL, NULL, 2),
	(4, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 200) g), NULL, 'g', 'c4', NULL);
ALTER TABLE layouts DROP COLUMN gone;
SELECT consistency.enable_versioning('layouts');
UPDATE layouts SET d = coalesce(d, 0) + 1, version = 1;
UPDATE layouts SET a = a || '!', version = 2;
UPDATE layouts SET b = NULL, version = 3 WHERE id = 1;
ALTER TABLE layouts ADD COLUMN e text;
UPDATE layouts SET e = 'e', version = 3 WHERE id IN (3, 4);
UPDATE layouts SET e = 'e1', version = 4 WHERE id = 1;
UPDATE layouts SET c = 'c2', version = 3 WHERE id = 2;
UPDATE layouts SET version = version WHERE id = 2;
SELECT id, left(a, 4) AS a, length(a), md5(a), b, c, d, e, version FROM layouts ORDER BY id;

-- 8. consistency.version_conflict_sqlstate: YC101 for applications that pass a
--    client-supplied version (HTTP If-Match -> 412), 40001 by default.
SHOW consistency.version_conflict_sqlstate;
SET consistency.version_conflict_sqlstate = 'YC101';
SELECT * FROM err($$ UPDATE products SET price = 1, version = 1 WHERE id = 1 $$);
SET consistency.version_conflict_sqlstate = serialization_failure;	-- alias
SHOW consistency.version_conflict_sqlstate;
SET consistency.version_conflict_sqlstate = 'P0001';
\echo :LAST_ERROR_SQLSTATE
RESET consistency.version_conflict_sqlstate;
BEGIN;
SET LOCAL consistency.version_conflict_sqlstate = yc101;
UPDATE products SET price = 1, version = 1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SHOW consistency.version_conflict_sqlstate;

-- 9. Bad input to enable_versioning; nothing is changed.
SELECT consistency.enable_versioning(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.enable_versioning('products', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.enable_versioning('products', 'version', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.enable_versioning('products', '');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.enable_versioning('products', 'name');			-- text column
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.enable_versioning('products', 'ctid');			-- system column
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE loose (id int PRIMARY KEY, version bigint);			-- nullable
SELECT consistency.enable_versioning('loose');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE gen (id int PRIMARY KEY, version bigint GENERATED ALWAYS AS (id) STORED);
SELECT consistency.enable_versioning('gen');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW products_view AS SELECT * FROM products;
SELECT consistency.enable_versioning('products_view');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.enable_versioning(0::regclass);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS triggers FROM pg_trigger
 WHERE tgrelid IN ('loose'::regclass, 'gen'::regclass, 'products_view'::regclass);

-- 10. version_guard installed by hand: arguments and misuse are checked when it fires.
CREATE TABLE manual (id int PRIMARY KEY, rev int NOT NULL DEFAULT 1, note text);
INSERT INTO manual VALUES (1, 1, 'a');
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'strict');
UPDATE manual SET note = 'b', rev = 1 WHERE id = 1;
UPDATE manual SET note = 'c' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM manual;
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard();		-- default column "version"
UPDATE manual SET note = 'd' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'lenient');
UPDATE manual SET note = 'd' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'strict', 'extra');
UPDATE manual SET note = 'd' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard AFTER UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev');
UPDATE manual SET note = 'd' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE INSERT ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev');
INSERT INTO manual VALUES (2, 1, 'x');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH STATEMENT
	EXECUTE FUNCTION consistency.version_guard('rev');
UPDATE manual SET note = 'd' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER guard ON manual;
SELECT consistency.version_guard();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM manual;

-- 11. Partitioned tables: the trigger is cloned to every partition, present and future.
CREATE TABLE orders (region text, id int, status text NOT NULL, PRIMARY KEY (region, id))
	PARTITION BY LIST (region);
CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
INSERT INTO orders VALUES ('eu', 1, 'new');
SELECT consistency.enable_versioning('orders', strict => true);
CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
INSERT INTO orders VALUES ('us', 1, 'new');
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname = 'consistency_version_guard'
   AND tgrelid::regclass::text LIKE 'orders%' ORDER BY 1;
UPDATE orders SET status = 'paid', version = 1 WHERE id = 1;
SELECT * FROM orders ORDER BY region;
SELECT * FROM err($$ UPDATE orders SET status = 'shipped', version = 1 WHERE region = 'us' $$);
SELECT * FROM err($$ UPDATE orders SET status = 'shipped' WHERE region = 'us' $$);
SELECT consistency.enable_versioning('orders');		-- replaced on every partition
UPDATE orders SET status = 'shipped' WHERE region = 'us';
SELECT * FROM orders ORDER BY region;

-- 12. disable_versioning drops the trigger and keeps the column (and its values);
--     it is idempotent.
SELECT consistency.disable_versioning('products');
SELECT consistency.disable_versioning('products');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'products'::regclass;
UPDATE products SET price = 5, version = 1 WHERE id = 1;		-- no check any more
SELECT id, price, version FROM products WHERE id = 1;
SELECT consistency.disable_versioning('orders');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid::regclass::text LIKE 'orders%';
SELECT consistency.disable_versioning(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.disable_versioning('products_view');
\echo :LAST_ERROR_SQLSTATE

-- 13. Hostile names: quoted everywhere, the column name is passed as a literal.
CREATE SCHEMA "we""ird; schema";
CREATE TABLE "we""ird; schema"."t""; DROP TABLE canary; --" (id int PRIMARY KEY, note text);
CREATE TABLE canary (id int);
INSERT INTO "we""ird; schema"."t""; DROP TABLE canary; --" VALUES (1, 'a');
SELECT consistency.enable_versioning('"we""ird; schema"."t""; DROP TABLE canary; --"',
									 'v''); DROP TABLE canary; --');
SELECT pg_get_triggerdef(oid) FROM pg_trigger
 WHERE tgrelid = '"we""ird; schema"."t""; DROP TABLE canary; --"'::regclass;
UPDATE "we""ird; schema"."t""; DROP TABLE canary; --"
   SET note = 'b', "v'); DROP TABLE canary; --" = 1;
SELECT * FROM "we""ird; schema"."t""; DROP TABLE canary; --";
SELECT consistency.disable_versioning('"we""ird; schema"."t""; DROP TABLE canary; --"');
SELECT to_regclass('canary') IS NOT NULL AS canary_alive;

-- 14. Privileges: enabling needs TRIGGER on the table (and ownership to add the column);
--     disabling needs ownership.
CREATE ROLE versioning_stranger;
GRANT consistency_user TO versioning_stranger;
SET ROLE versioning_stranger;
SELECT consistency.enable_versioning('manual', 'rev');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.disable_versioning('manual');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT TRIGGER ON manual TO versioning_stranger;
SET ROLE versioning_stranger;
SELECT consistency.enable_versioning('manual', 'rev');			-- column exists: trigger only
SELECT consistency.enable_versioning('manual', 'other');		-- adding a column: owner only
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'manual'::regclass;
-- disable_versioning drops a trigger, which only the owner may do: the TRIGGER privilege is
-- not enough, also when there is no trigger to drop.  Ownership is checked before the
-- table is locked, so a non-owner never holds (or queues for) its ACCESS EXCLUSIVE lock.
SET ROLE versioning_stranger;
SELECT consistency.disable_versioning('manual');		-- the trigger is there
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP TRIGGER consistency_version_guard ON manual;
BEGIN;
SET LOCAL ROLE versioning_stranger;
SELECT code, message FROM err($$ SELECT consistency.disable_versioning('manual') $$);	-- no trigger
SELECT count(*) AS access_exclusive_locks FROM pg_locks
 WHERE pid = pg_backend_pid() AND locktype = 'relation'
   AND relation = 'manual'::regclass AND mode = 'AccessExclusiveLock';
COMMIT;
DROP OWNED BY versioning_stranger;
DROP ROLE versioning_stranger;

-- 15. Regular inheritance passes no row trigger on to child tables: enable_versioning refuses
--     a table with inheritance children (0A000), before adding anything.  Each child can be
--     versioned on its own, and its rows are then checked also when updated through the
--     parent; a child created later is unguarded until enable_versioning is run on it.
--     update_versioned finds only the table's own rows: its primary key does not cover the
--     children's (P0002).
CREATE TABLE stock (id int PRIMARY KEY, qty int);
CREATE TABLE stock_eu () INHERITS (stock);
INSERT INTO stock_eu VALUES (1, 10);
SELECT consistency.enable_versioning('stock');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ SELECT consistency.enable_versioning('stock', strict => true) $$);
SELECT count(*) AS version_columns FROM pg_attribute
 WHERE attname = 'version' AND attrelid IN ('stock'::regclass, 'stock_eu'::regclass);
SELECT count(*) AS triggers FROM pg_trigger
 WHERE tgrelid IN ('stock'::regclass, 'stock_eu'::regclass);
-- with the column already there (trigger only), just the same
ALTER TABLE stock ADD COLUMN version bigint NOT NULL DEFAULT 1;
SELECT * FROM err($$ SELECT consistency.enable_versioning('stock') $$);
-- the child, versioned itself: checked also through the parent
SELECT consistency.enable_versioning('stock_eu');
UPDATE stock SET qty = 11, version = 1 WHERE id = 1;
UPDATE stock SET qty = 12, version = 1 WHERE id = 1;	-- stale
\echo :LAST_ERROR_SQLSTATE
SELECT tableoid::regclass, * FROM stock ORDER BY id;
SELECT * FROM err($$ SELECT consistency.update_versioned('stock', '{"id": 1}', 2, '{"qty": 13}') $$);
-- a child created later: unguarded until it is enabled
CREATE TABLE stock_us () INHERITS (stock);
INSERT INTO stock_us VALUES (2, 20);
UPDATE stock SET qty = 21, version = 7 WHERE id = 2;	-- not checked
SELECT consistency.enable_versioning('stock_us');
UPDATE stock SET qty = 22, version = 1 WHERE id = 2;	-- stale: checked now
\echo :LAST_ERROR_SQLSTATE
SELECT tableoid::regclass, * FROM stock ORDER BY id;
-- disable_versioning on a parent with children: allowed (here there is nothing to drop)
SELECT consistency.disable_versioning('stock');

-- 16. A partition's trigger is a clone of its partitioned table's, which PostgreSQL lets
--     neither be replaced (42710) nor dropped (2BP01) on its own: enable_versioning and
--     disable_versioning on such a partition say so, naming the table to call them on
--     (the top of the chain for a sub-partition).  A partition versioned on its own is
--     taken over by its partitioned table's trigger, and is its own again after
--     disable_versioning on the partitioned table.
CREATE TABLE tickets (region text, id int, note text, version bigint NOT NULL DEFAULT 1,
					  PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE tickets_eu PARTITION OF tickets FOR VALUES IN ('eu');
CREATE TABLE tickets_us PARTITION OF tickets FOR VALUES IN ('us') PARTITION BY LIST (id);
CREATE TABLE tickets_us_1 PARTITION OF tickets_us FOR VALUES IN (1);
INSERT INTO tickets VALUES ('eu', 1, 'a'), ('us', 1, 'b');
SELECT consistency.enable_versioning('tickets_eu', strict => true);	-- its own
SELECT consistency.enable_versioning('tickets');						-- takes it over
SELECT tgrelid::regclass, tgparentid <> 0 AS clone, pg_get_triggerdef(oid) FROM pg_trigger
 WHERE tgname = 'consistency_version_guard' AND tgrelid::regclass::text LIKE 'tickets%' ORDER BY 1;
SELECT consistency.enable_versioning('tickets_eu', strict => true);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.disable_versioning('tickets_eu');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ SELECT consistency.enable_versioning('tickets_us_1') $$);
SELECT * FROM err($$ SELECT consistency.disable_versioning('tickets_us_1') $$);
SELECT * FROM err($$ SELECT consistency.disable_versioning('tickets_us') $$);
UPDATE tickets SET note = 'c' WHERE id = 1;		-- still checked (and bumped) everywhere
SELECT * FROM tickets ORDER BY region;
SELECT consistency.disable_versioning('tickets');
SELECT consistency.enable_versioning('tickets_eu', strict => true);	-- its own again
SELECT consistency.disable_versioning('tickets_eu');
SELECT count(*) AS triggers FROM pg_trigger
 WHERE tgname = 'consistency_version_guard' AND tgrelid::regclass::text LIKE 'tickets%';

-- 17. MERGE.  The trigger sees the columns set by a MERGE's UPDATE actions as one set (the
--     union of their SET lists), and cannot tell which action fired.  On a strict table, or
--     one in mode 'increment', a MERGE whose UPDATE actions set the version column in some
--     but not all is refused before it runs: YC102 (strict), 0A000 ('increment', not
--     strict).  All or none: checked per row, as an UPDATE is.  Mode 'read', not strict: an
--     action without the version is taken as made against the current row, as an UPDATE.
CREATE TABLE prices (id int PRIMARY KEY, price int NOT NULL);
INSERT INTO prices VALUES (1, 10), (2, 20);
SELECT consistency.enable_versioning('prices', strict => true);
-- strict: row 2 took the action without the version, and went through unchecked
MERGE INTO prices USING (VALUES (1, 11, 1::bigint), (2, 21, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED THEN UPDATE SET price = s.price;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ MERGE INTO prices USING (VALUES (1, 11, 1::bigint)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.price > 100 THEN UPDATE SET price = s.price
	WHEN MATCHED THEN UPDATE SET price = s.price, version = s.v $$);
SELECT * FROM prices ORDER BY id;
-- refused before it runs, also when no row would take the action without the version
SELECT * FROM err($$ MERGE INTO prices USING (VALUES (3, 1)) s(id, price) ON prices.id = s.id
	WHEN MATCHED AND false THEN UPDATE SET price = s.price
	WHEN MATCHED THEN UPDATE SET price = s.price, version = 1
	WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.price) $$);
-- every UPDATE action sets it: checked per row (row 2 is stale); DELETE, INSERT and DO
-- NOTHING actions set nothing and do not count
MERGE INTO prices USING (VALUES (1, 11, 1::bigint), (2, 21, 0), (3, 31, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.price > 20 THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED AND s.v IS NULL THEN DELETE
	WHEN MATCHED THEN UPDATE SET price = s.price, version = s.v
	WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.price);
\echo :LAST_ERROR_SQLSTATE
MERGE INTO prices USING (VALUES (1, 11, 1::bigint), (2, 21, 1), (3, 31, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.price > 20 THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED AND s.v IS NULL THEN DO NOTHING
	WHEN MATCHED THEN UPDATE SET price = s.price, version = s.v
	WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.price);
SELECT * FROM prices ORDER BY id;
-- none sets it: the trigger refuses the row, as for an UPDATE
SELECT * FROM err($$ MERGE INTO prices USING (VALUES (1, 12)) s(id, price) ON prices.id = s.id
	WHEN MATCHED THEN UPDATE SET price = s.price $$);
-- EXPLAIN does not run it (not refused); a MERGE run by a function is checked too
DO $$ BEGIN
	EXECUTE $m$ EXPLAIN MERGE INTO prices USING (VALUES (1, 12, 2::bigint)) s(id, price, v)
		ON prices.id = s.id
		WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
		WHEN MATCHED THEN UPDATE SET price = s.price $m$;
END $$;
CREATE FUNCTION merge_prices(p_id int, p_price int, p_version bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	MERGE INTO prices USING (VALUES (p_id, p_price, p_version)) s(id, price, v)
		ON prices.id = s.id
		WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
		WHEN MATCHED THEN UPDATE SET price = s.price;
END $$;
SELECT * FROM err($$ SELECT merge_prices(1, 12, 2) $$);
-- a disabled trigger is not checked
ALTER TABLE prices DISABLE TRIGGER consistency_version_guard;
SELECT merge_prices(1, 12, 2);
ALTER TABLE prices ENABLE TRIGGER consistency_version_guard;
-- mode 'increment': the row that took the action without the version was refused as stale
-- (40001: retried for ever)
SELECT consistency.enable_versioning('prices', mode => 'increment');
MERGE INTO prices USING (VALUES (1, 13, 3::bigint), (2, 23, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED THEN UPDATE SET price = s.price;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ MERGE INTO prices USING (VALUES (1, 13, 3::bigint), (2, 23, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED THEN UPDATE SET price = s.price $$);
-- as the hint says, "version = version + 1" in the other actions: they bump it
MERGE INTO prices USING (VALUES (1, 13, 3::bigint), (2, 23, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED THEN UPDATE SET price = s.price, version = version + 1;
-- none sets it: bumped, as an UPDATE without the version is
MERGE INTO prices USING (VALUES (3, 33)) s(id, price) ON prices.id = s.id
	WHEN MATCHED THEN UPDATE SET price = s.price;
SELECT * FROM prices ORDER BY id;
-- mode 'read', not strict: mixed actions are an UPDATE each; the one without the version
-- bumps it, the other is checked
SELECT consistency.enable_versioning('prices');
MERGE INTO prices USING (VALUES (1, 14, 3::bigint), (2, 24, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED THEN UPDATE SET price = s.price;
SELECT * FROM err($$ MERGE INTO prices USING (VALUES (1, 15, 3::bigint), (2, 25, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED THEN UPDATE SET price = s.price $$);
SELECT * FROM prices ORDER BY id;
-- partitions and inheritance children are checked with their own triggers
SELECT consistency.enable_versioning('tickets', strict => true);
SELECT * FROM err($$ MERGE INTO tickets USING (VALUES ('eu', 1, 2::bigint), ('us', 1, NULL)) s(region, id, v)
	ON tickets.region = s.region AND tickets.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET note = 'd', version = s.v
	WHEN MATCHED THEN UPDATE SET note = 'd' $$);
SELECT consistency.enable_versioning('stock_us', mode => 'increment');
SELECT * FROM err($$ MERGE INTO stock USING (VALUES (1, 2::bigint), (2, NULL)) s(id, v)
	ON stock.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET qty = 0, version = s.v
	WHEN MATCHED THEN UPDATE SET qty = 0 $$);
SELECT tableoid::regclass, * FROM stock ORDER BY id;

-- 18. The MERGE check is made by the library, which must be loaded when the MERGE starts:
--     always with shared_preload_libraries (or session_preload_libraries), otherwise once
--     the session has called one of the extension's functions.  The first statement of a
--     session that has not gets the trigger's per-row check only: with the library not
--     preloaded, the MERGE below goes through, row 2 unchecked (the documented limit).
SELECT consistency.enable_versioning('prices', strict => true);
SELECT bool_or('consistency' = ANY (string_to_array(replace(current_setting(s), ' ', ''), ',')))
	AS preloaded
  FROM unnest(ARRAY['shared_preload_libraries', 'session_preload_libraries']) s \gset
\c
SELECT (code = 'YC102') = :'preloaded'::bool AS refused_if_preloaded
  FROM err($$ MERGE INTO prices USING (VALUES (1, 16, 4::bigint), (2, 26, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED THEN UPDATE SET price = s.price $$);
SELECT (price = 26) <> :'preloaded'::bool AS row_2_as_documented FROM prices WHERE id = 2;
-- the library is loaded now: refused in either configuration
SELECT code FROM err($$ MERGE INTO prices USING (VALUES (1, 16, 4::bigint), (2, 26, NULL)) s(id, price, v)
	ON prices.id = s.id
	WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET price = s.price, version = s.v
	WHEN MATCHED THEN UPDATE SET price = s.price $$);

DROP SCHEMA "we""ird; schema" CASCADE;
DROP TABLE products, small, layouts, loose, gen, manual, orders, canary, stock, tickets, prices CASCADE;
DROP FUNCTION err(text), merge_prices(int, int, bigint);
