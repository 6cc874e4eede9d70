-- A retry of a completed request through the server-side handler.
\set pid random(1, 10000)
\set qty random(1, 3)
\set k random(1, 100000)
SELECT create_order_idem('r-' || :k::text, :client_id, :pid, :qty);
