-- A retry of a completed request: answered from the stored response.
\set k random(1, 100000)
BEGIN;
SELECT status, response FROM consistency.idem_begin('r-' || :k::text, 'fp') \gset
COMMIT;
