-- The same transaction made idempotent with the extension, a fresh key per request.
\set pid random(1, 10000)
\set qty random(1, 3)
\set r random(1, 9000000000000000000)
BEGIN;
SELECT consistency.idem_claim(:client_id::text || '-' || :r::text, 'fp') AS response \gset
UPDATE products SET stock = stock - :qty, sold = sold + :qty WHERE id = :pid;
INSERT INTO orders (customer, product_id, qty) VALUES (:client_id, :pid, :qty) RETURNING id \gset
SELECT consistency.idem_finish(:client_id::text || '-' || :r::text, jsonb_build_object('order_id', :id::bigint, 'status', 'created'));
COMMIT;
