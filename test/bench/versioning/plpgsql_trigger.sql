-- The same as c_trigger.sql, checked by the PL/pgSQL trigger.
\set id random(1, 100000)
\set price random(1, 1000000)
SELECT version AS v FROM items_plpgsql WHERE id = :id \gset
UPDATE items_plpgsql SET price = :price, version = :v WHERE id = :id;
