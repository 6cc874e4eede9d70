-- Read the row's version, then send it back; the version_guard trigger checks and bumps it.
\set id random(1, 100000)
\set price random(1, 1000000)
SELECT version AS v FROM items_c WHERE id = :id \gset
UPDATE items_c SET price = :price, version = :v WHERE id = :id;
