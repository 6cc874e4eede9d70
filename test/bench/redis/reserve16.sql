-- consistency.reserve() on a 16-slot SKU, one statement in autocommit (as 30-inventory's
-- c_slots16.sql; a copy, so that this comparison does not move when that section does).
\set r random(1, 9000000000000000000)
SELECT consistency.reserve('hot16', 1, :client_id || '-' || :r);
