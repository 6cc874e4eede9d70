-- A retry answered by the hand-written PL/pgSQL layer (baseline).
\set k random(1, 100000)
BEGIN;
SELECT plpgsql_idem_claim('r-' || :k::text, 'fp') AS response \gset
COMMIT;
