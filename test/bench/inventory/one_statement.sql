-- Baseline: one statement, a conditional UPDATE feeding the insert.
\set r random(1, 9000000000000000000)
WITH u AS (UPDATE plain_stock SET reserved = reserved + 1
			WHERE sku = 'hot' AND on_hand - reserved >= 1 RETURNING sku)
INSERT INTO plain_res (id, sku, qty) SELECT :client_id || '-' || :r, sku, 1 FROM u;
