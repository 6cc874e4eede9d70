-- No contention at all: the PL/pgSQL baseline (FOR UPDATE + UPDATE + INSERT), but every client
-- reserves from a row of its own ('own' || client_id), so nobody ever waits for a lock: what
-- more clients cost the machine by themselves (the scaling goal's yardstick).
\set r random(1, 9000000000000000000)
SELECT plpgsql_reserve('own' || :client_id, 1, :client_id || '-' || :r);
