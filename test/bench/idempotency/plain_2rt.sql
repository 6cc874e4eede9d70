-- The plain transaction plus two empty round trips: what any two-call API costs the client.
\set pid random(1, 10000)
\set qty random(1, 3)
BEGIN;
SELECT 1;
UPDATE products SET stock = stock - :qty, sold = sold + :qty WHERE id = :pid;
INSERT INTO orders (customer, product_id, qty) VALUES (:client_id, :pid, :qty) RETURNING id \gset
SELECT 1;
COMMIT;
