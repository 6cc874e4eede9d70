-- Read the row's version, then the hand-written version-checked UPDATE.
\set id random(1, 100000)
\set price random(1, 1000000)
SELECT version AS v FROM items_plain WHERE id = :id \gset
UPDATE items_plain SET price = :price, version = version + 1 WHERE id = :id AND version = :v;
