-- The ceiling of any design that makes one SQL call per reservation and shares no work
-- between calls: the same clients, the same random argument, one round trip that does nothing.
\set r random(1, 9000000000000000000)
SELECT :client_id || '-' || :r;
