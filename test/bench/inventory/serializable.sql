-- Baseline: SERIALIZABLE without row locks; pgbench retries serialization failures.
\set r random(1, 9000000000000000000)
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT on_hand - reserved AS avail FROM plain_stock WHERE sku = 'hot' \gset
\if :avail >= 1
UPDATE plain_stock SET reserved = reserved + 1 WHERE sku = 'hot';
INSERT INTO plain_res (id, sku, qty) VALUES (:client_id || '-' || :r, 'hot', 1);
\endif
COMMIT;
