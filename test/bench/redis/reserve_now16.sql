-- consistency.reserve_now() on the same 16-slot SKU, one statement in autocommit: concurrent
-- calls share a transaction and its commit (the library is preloaded for this section).
\set r random(1, 9000000000000000000)
SELECT consistency.reserve_now('hot16', 1, :client_id || '-' || :r);
