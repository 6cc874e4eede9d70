-- Baseline: the PL/pgSQL function (SELECT ... FOR UPDATE + UPDATE + INSERT).
\set r random(1, 9000000000000000000)
SELECT plpgsql_reserve('hot', 1, :client_id || '-' || :r);
