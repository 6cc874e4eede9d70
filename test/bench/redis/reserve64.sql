-- consistency.reserve() on a 64-slot SKU (the most slots a SKU can have), one statement in
-- autocommit: what README's first lever against the gap to Redis, more slots, buys.
\set r random(1, 9000000000000000000)
SELECT consistency.reserve('hot64', 1, :client_id || '-' || :r);
