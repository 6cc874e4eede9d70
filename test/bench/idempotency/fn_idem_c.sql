-- The handler as one server-side call, idempotent with the extension (fresh key).
\set pid random(1, 10000)
\set qty random(1, 3)
\set r random(1, 9000000000000000000)
SELECT create_order_idem(:client_id::text || '-' || :r::text, :client_id, :pid, :qty);
