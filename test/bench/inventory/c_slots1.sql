-- consistency.reserve() on a one-slot SKU, one statement in autocommit.
\set r random(1, 9000000000000000000)
SELECT consistency.reserve('hot1', 1, :client_id || '-' || :r);
