-- Baseline: the same from the client, in an explicit transaction.
\set r random(1, 9000000000000000000)
BEGIN;
SELECT on_hand - reserved AS avail FROM plain_stock WHERE sku = 'hot' FOR UPDATE \gset
\if :avail >= 1
UPDATE plain_stock SET reserved = reserved + 1 WHERE sku = 'hot';
INSERT INTO plain_res (id, sku, qty) VALUES (:client_id || '-' || :r, 'hot', 1);
\endif
COMMIT;
