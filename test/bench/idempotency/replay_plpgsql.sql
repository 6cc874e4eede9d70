-- A retry answered by the hand-written PL/pgSQL layer (baseline).
\set k random(1, 100000)
BEGIN;
SELECT status, response FROM plpgsql_idem_begin('r-' || :k::text, 'fp') \gset
COMMIT;
