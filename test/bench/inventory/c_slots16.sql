-- consistency.reserve() on a 16-slot SKU, one statement in autocommit.
\set r random(1, 9000000000000000000)
SELECT consistency.reserve('hot16', 1, :client_id || '-' || :r);
