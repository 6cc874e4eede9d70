-- The business transaction alone: take stock, create the order.
\set pid random(1, 10000)
\set qty random(1, 3)
BEGIN;
UPDATE products SET stock = stock - :qty, sold = sold + :qty WHERE id = :pid;
INSERT INTO orders (customer, product_id, qty) VALUES (:client_id, :pid, :qty) RETURNING id \gset
COMMIT;
