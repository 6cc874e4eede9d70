-- A retry of a completed request: answered from the stored response.
\set k random(1, 100000)
BEGIN;
SELECT consistency.idem_claim('r-' || :k::text, 'fp') AS response \gset
COMMIT;
