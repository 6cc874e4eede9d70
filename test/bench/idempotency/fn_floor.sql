-- The floor: the plain handler plus the key row inserted by hand (setup.sql, create_order_floor).
\set pid random(1, 10000)
\set qty random(1, 3)
\set r random(1, 9000000000000000000)
SELECT create_order_floor(:client_id::text || '-' || :r::text, :client_id, :pid, :qty);
