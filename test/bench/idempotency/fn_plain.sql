-- The handler as one server-side call, without idempotency.
\set pid random(1, 10000)
\set qty random(1, 3)
SELECT create_order(:client_id, :pid, :qty);
