-- consistency.reserve() on an untuned (adaptive) SKU, one statement in autocommit.  bench_reset
-- re-creates it with one slot before every run, so each run starts cold and the SKU has to
-- split itself under the clients.
\set r random(1, 9000000000000000000)
SELECT consistency.reserve('hotA', 1, :client_id || '-' || :r);
