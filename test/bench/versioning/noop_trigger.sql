-- The hand-written version-checked UPDATE (plain.sql) on a table with a no-op BEFORE UPDATE
-- trigger (suppress_redundant_updates_trigger): what any BEFORE ROW trigger costs PostgreSQL.
\set id random(1, 100000)
\set price random(1, 1000000)
SELECT version AS v FROM items_noop WHERE id = :id \gset
UPDATE items_noop SET price = :price, version = version + 1 WHERE id = :id AND version = :v;
