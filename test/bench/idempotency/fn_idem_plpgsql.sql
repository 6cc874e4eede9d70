-- The handler as one server-side call, idempotent with the hand-written PL/pgSQL layer (baseline) (fresh key).
\set pid random(1, 10000)
\set qty random(1, 3)
\set r random(1, 9000000000000000000)
SELECT create_order_idem_plpgsql(:client_id::text || '-' || :r::text, :client_id, :pid, :qty);
