-- Optimistic versioning, the two conventions of the version a client sends back:
-- mode 'read' (the default, 1.0's only one: SET version = <version read>) and mode
-- 'increment' (the ORM convention of SQLAlchemy's version_id_col, Hibernate/JPA @Version,
-- Rails lock_version: SET version = <version read> + 1 WHERE version = <version read>).
-- Each mode refuses the other's convention; strict mode, update_versioned, the SQLSTATE
-- GUC, partitions, switching in place, the 1.0 entry point, bad input and hand-installed
-- triggers.  err() shows the error fields an application reads.
\set VERBOSITY default
CREATE FUNCTION err(stmt text, OUT code text, OUT message text, OUT detail text,
					OUT hint text, OUT table_name text, OUT column_name text)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	code := 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT,
		table_name = TABLE_NAME, column_name = COLUMN_NAME;
END $$;

-- 1. The signature: mode is the fourth argument, 'read' by default.
SELECT pg_get_function_arguments('consistency.enable_versioning'::regproc);

-- 2. Mode 'increment': the client sends the version it read plus one.
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price int NOT NULL);
INSERT INTO items VALUES (1, 'pen', 2), (2, 'ink', 5), (3, 'pad', 7);
SELECT consistency.enable_versioning('items', mode => 'increment');
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'items'::regclass;
-- what an ORM sends: accepted, stored as sent (not bumped a second time)
UPDATE items SET price = 3, version = 2 WHERE id = 1 AND version = 1 RETURNING id, price, version;
UPDATE items SET price = 4, version = 3 WHERE id = 1 RETURNING id, price, version;
-- the read convention (NEW = OLD) is a conflict here: that client read version 2
UPDATE items SET price = 0, version = 3 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ UPDATE items SET price = 0, version = 3 WHERE id = 1 $$);
-- so is "version = version": an explicit choice of the read convention
SELECT * FROM err($$ UPDATE items SET price = 0, version = version WHERE id = 1 $$);
-- stale (a writer that read version 1) and far ahead
SELECT * FROM err($$ UPDATE items SET price = 0, version = 2 WHERE id = 1 $$);
SELECT * FROM err($$ UPDATE items SET price = 0, version = 9 WHERE id = 1 $$);
-- the smallest bigint has no version below it: still a conflict, not an overflow
SELECT * FROM err($$ UPDATE items SET price = 0, version = -9223372036854775808 WHERE id = 1 $$);
SELECT id, price, version FROM items WHERE id = 1;		-- unchanged: 4, version 3
-- "version = version + 1" is the increment convention's explicit choice
UPDATE items SET price = 5, version = version + 1 WHERE id = 1 RETURNING id, price, version;
-- multi-row: all or nothing
UPDATE items SET price = price + 1, version = 2 WHERE id IN (2, 3) RETURNING id, price, version;
UPDATE items SET price = 0, version = 2 WHERE id = 2;	-- version 2 is the read convention
\echo :LAST_ERROR_SQLSTATE
UPDATE items SET price = 1, version = 3 WHERE id = 3;	-- another client wins row 3
UPDATE items SET price = 0, version = 3 WHERE id IN (2, 3);
\echo :LAST_ERROR_SQLSTATE
SELECT id, price, version FROM items ORDER BY id;
-- INSERT ... ON CONFLICT DO UPDATE goes through the same check
INSERT INTO items VALUES (2, 'ink', 0, 2)
	ON CONFLICT (id) DO UPDATE SET price = excluded.price, version = excluded.version;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO items VALUES (2, 'ink', 9, 3)
	ON CONFLICT (id) DO UPDATE SET price = excluded.price, version = excluded.version
	RETURNING id, price, version;

-- 3. Not strict: an UPDATE that does not set the version is taken as made against the
--    current row and bumps it, as in mode 'read'.
UPDATE items SET name = 'fountain pen' WHERE id = 1 RETURNING id, name, version;

-- 4. Strict: the SET list must name the version; the hint gives this mode's convention.
SELECT consistency.enable_versioning('items', 'version', true, 'increment');
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'items'::regclass;
UPDATE items SET price = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ UPDATE items SET price = 0 WHERE id = 1 $$);
UPDATE items SET price = 6, version = 6 WHERE id = 1 RETURNING id, price, version;
SELECT * FROM err($$ UPDATE items SET price = 0, version = 6 WHERE id = 1 $$);
SELECT id, price, version FROM items WHERE id = 1;

-- 5. The conflict SQLSTATE follows consistency.version_conflict_sqlstate in both modes.
SET consistency.version_conflict_sqlstate = 'YC101';
SELECT * FROM err($$ UPDATE items SET price = 0, version = 6 WHERE id = 1 $$);
RESET consistency.version_conflict_sqlstate;

-- 6. update_versioned works on tables in either mode: the version goes up by exactly one,
--    and every other UPDATE is still checked by the table's own convention.
SELECT consistency.update_versioned('items', '{"id": 1}', 6, '{"price": 7}');
SELECT consistency.update_versioned('items', '{"id": 1}', 7, '{"price": 8}');
SELECT * FROM err($$ SELECT consistency.update_versioned('items', '{"id": 1}', 7, '{"price": 0}') $$);
SELECT consistency.try_update_versioned('items', '{"id": 1}', 7, '{"price": 0}') AS stale;
SELECT id, price, version FROM items WHERE id = 1;		-- 8, version 8
UPDATE items SET price = 9, version = 9 WHERE id = 1 RETURNING id, price, version;
CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO notes VALUES (1, 'a');
SELECT consistency.enable_versioning('notes', strict => true, mode => 'read');
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'notes'::regclass;
SELECT consistency.update_versioned('notes', '{"id": 1}', 1, '{"body": "b"}');
SELECT consistency.update_versioned('notes', '{"id": 1}', 2, '{"body": "c"}');
-- mode 'read' refuses the increment convention
SELECT * FROM err($$ UPDATE notes SET body = 'x', version = 4 WHERE id = 1 $$);
UPDATE notes SET body = 'd', version = 3 WHERE id = 1 RETURNING id, body, version;

-- 7. Switching mode in place: the same trigger, replaced; conventions follow.
SELECT consistency.enable_versioning('notes', strict => true);	-- mode defaults to 'read'
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'notes'::regclass;
SELECT consistency.enable_versioning('notes', strict => true, mode => 'increment');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'notes'::regclass;
SELECT * FROM err($$ UPDATE notes SET body = 'x', version = 4 WHERE id = 1 $$);
UPDATE notes SET body = 'e', version = 5 WHERE id = 1 RETURNING id, body, version;
SELECT consistency.enable_versioning('notes', strict => true, mode => 'read');
SELECT * FROM err($$ UPDATE notes SET body = 'x', version = 6 WHERE id = 1 $$);
UPDATE notes SET body = 'f', version = 5 WHERE id = 1 RETURNING id, body, version;

-- 8. Overflow: the bump of an UPDATE that omits the version still never wraps; a client
--    cannot send a version past the type's maximum (PostgreSQL refuses the value itself).
CREATE TABLE small (id int PRIMARY KEY, v int NOT NULL, note text);
INSERT INTO small VALUES (1, 2147483646, 'a');
SELECT consistency.enable_versioning('small', 'v', mode => 'increment');
UPDATE small SET note = 'b', v = 2147483647 WHERE id = 1 RETURNING *;
UPDATE small SET note = 'c' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE small SET note = 'c', v = v + 1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ UPDATE small SET note = 'c', v = 2147483647 WHERE id = 1 $$);
SELECT * FROM small;

-- 9. Partitioned tables: the mode goes to every partition, present and future.
CREATE TABLE orders (region text, id int, status text NOT NULL, PRIMARY KEY (region, id))
	PARTITION BY LIST (region);
CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
SELECT consistency.enable_versioning('orders', mode => 'increment');
CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
INSERT INTO orders VALUES ('eu', 1, 'new'), ('us', 1, 'new');
UPDATE orders SET status = 'paid', version = 2 WHERE id = 1 AND version = 1;
SELECT * FROM err($$ UPDATE orders SET status = 'x', version = 2 WHERE region = 'us' $$);
SELECT consistency.update_versioned('orders', '{"region": "us", "id": 1}', 2, '{"status": "shipped"}');
SELECT * FROM orders ORDER BY region;

-- 10. Bad input: a clear error, and nothing changes (items stays strict 'increment').
SELECT consistency.enable_versioning('items', 'version', true, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM err($$ SELECT consistency.enable_versioning('items', mode => 'bump') $$);
SELECT * FROM err($$ SELECT consistency.enable_versioning('items', mode => '') $$);
SELECT * FROM err($$ SELECT consistency.enable_versioning('items', mode => 'Read') $$);
SELECT * FROM err($$ SELECT consistency.enable_versioning('items', mode => 'strict') $$);
SELECT * FROM err($$ SELECT consistency.enable_versioning('items', 'nocolumn', mode => 'bump') $$);
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'items'::regclass;
SELECT attname FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 ORDER BY attnum;

-- 11. The 1.0 entry point (what the 1.0 SQL function still calls on a database not yet
--     updated): three arguments, mode 'read'.
CREATE FUNCTION enable_versioning_1_0(rel regclass, version_column name DEFAULT 'version',
									  strict bool DEFAULT false)
RETURNS void AS 'consistency', 'consistency_enable_versioning' LANGUAGE C;
CREATE TABLE legacy (id int PRIMARY KEY, note text);
INSERT INTO legacy VALUES (1, 'a');
SELECT enable_versioning_1_0('legacy', 'version', true);
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'legacy'::regclass;
UPDATE legacy SET note = 'b', version = 1 WHERE id = 1 RETURNING *;
SELECT * FROM err($$ UPDATE legacy SET note = 'x', version = 3 WHERE id = 1 $$);
-- it turns an increment table back to mode 'read', as 1.0 would install it
SELECT enable_versioning_1_0('small', 'v');
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'small'::regclass;
SELECT enable_versioning_1_0(NULL);
\echo :LAST_ERROR_SQLSTATE
DROP FUNCTION enable_versioning_1_0(regclass, name, bool);

-- 12. version_guard installed by hand: the mode is an argument after the column, with or
--     without 'strict', in either order; anything else is refused when it fires.
CREATE TABLE manual (id int PRIMARY KEY, rev int NOT NULL DEFAULT 1, note text);
INSERT INTO manual VALUES (1, 1, 'a');
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'increment');
UPDATE manual SET note = 'b', rev = 2 RETURNING *;
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'increment', 'strict');
UPDATE manual SET note = 'c', rev = 3 RETURNING *;
UPDATE manual SET note = 'x';
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'strict', 'read');
UPDATE manual SET note = 'd', rev = 3 RETURNING *;
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'read', 'increment');
SELECT * FROM err($$ UPDATE manual SET note = 'x', rev = 4 $$);
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'strict', 'strict');
SELECT * FROM err($$ UPDATE manual SET note = 'x', rev = 4 $$);
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'strict', 'increment', 'extra');
SELECT * FROM err($$ UPDATE manual SET note = 'x', rev = 4 $$);
DROP TRIGGER guard ON manual;
CREATE TRIGGER guard BEFORE UPDATE ON manual FOR EACH ROW
	EXECUTE FUNCTION consistency.version_guard('rev', 'incremental');
SELECT * FROM err($$ UPDATE manual SET note = 'x', rev = 4 $$);
DROP TRIGGER guard ON manual;
SELECT * FROM manual;

DROP TABLE items, notes, small, orders, legacy, manual;
DROP FUNCTION err(text);
