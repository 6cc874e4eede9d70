-- The extension's idempotent order with libpq pipelining: BEGIN and idem_claim go in one
-- round trip, idem_finish and COMMIT in another, so the order makes as many round trips
-- as the plain one (four).  Pipelines need -M extended or prepared; results inside a
-- pipeline cannot be \gset, and this order does not need idem_claim's answer to go on (a
-- client would read it when the first pipeline returns).
\set pid random(1, 10000)
\set qty random(1, 3)
\set r random(1, 9000000000000000000)
\startpipeline
BEGIN;
SELECT consistency.idem_claim(:client_id::text || '-' || :r::text, 'fp');
\endpipeline
UPDATE products SET stock = stock - :qty, sold = sold + :qty WHERE id = :pid;
INSERT INTO orders (customer, product_id, qty) VALUES (:client_id, :pid, :qty) RETURNING id \gset
\startpipeline
SELECT consistency.idem_finish(:client_id::text || '-' || :r::text, jsonb_build_object('order_id', :id::bigint, 'status', 'created'));
COMMIT;
\endpipeline
