-- Optimistic versioning on what only PostgreSQL 18 has: temporal primary keys (PRIMARY KEY
-- (..., p WITHOUT OVERLAPS)), a GiST index whose operator classes number their strategies
-- their own way: update_versioned matches the key with the index's equality, not with its
-- strategy 3 (&&, overlaps, in range_ops).  Before 18 there is nothing to test
-- (expected/versioning_pg18_1.out).
SELECT current_setting('server_version_num')::int < 180000 AS skip_test \gset
\if :skip_test
\quit
\endif
\set VERBOSITY default

-- 1. A range key: only the row whose key equals the one given is updated.  A key that merely
--    overlaps a row's is no row (P0002), also one that overlaps two rows.
CREATE TABLE booking (id int4range, during daterange, room int NOT NULL,
					  version bigint NOT NULL DEFAULT 1,
					  PRIMARY KEY (id, during WITHOUT OVERLAPS));
INSERT INTO booking (id, during, room) VALUES
	('[1,2)', '[2025-01-01,2025-02-01)', 1),
	('[1,2)', '[2025-03-01,2025-04-01)', 2);
SELECT consistency.update_versioned('booking',
	'{"id": "[1,2)", "during": "[2025-01-10,2025-01-11)"}', 1, '{"room": 7}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('booking',
	'{"id": "[1,2)", "during": "[2025-01-01,2025-05-01)"}', 1, '{"room": 7}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM booking ORDER BY during;
-- the exact key: updated, then a stale version is a conflict
SELECT consistency.update_versioned('booking',
	'{"id": "[1,2)", "during": "[2025-03-01,2025-04-01)"}', 1, '{"room": 8}');
SELECT consistency.update_versioned('booking',
	'{"id": "[1,2)", "during": "[2025-03-01,2025-04-01)"}', 1, '{"room": 9}');
\echo :LAST_ERROR_SQLSTATE
-- equal ranges written another way are the same key
SELECT consistency.update_versioned('booking',
	'{"id": "[1,1]", "during": "[2025-03-01,2025-03-31]"}', 2, '{"room": 9}');
SELECT consistency.try_update_versioned('booking',
	'{"id": "[1,2)", "during": "[2025-03-01,2025-04-01)"}', 2, '{"room": 1}') AS stale;
SELECT * FROM booking ORDER BY during;
-- the statements compare every key column with "="
SELECT regexp_replace(ident, '\$\d+', '$n', 'g') AS statement FROM pg_backend_memory_contexts
 WHERE name = 'CachedPlan' AND ident LIKE '% public.booking %' ORDER BY 1;

-- 2. A scalar column in a temporal key (btree_gist, whose strategy 3 is "=" already), and
--    the trigger on the same table.
CREATE EXTENSION btree_gist;
CREATE TABLE rooms (room int, during tstzrange, rate int NOT NULL,
					version bigint NOT NULL DEFAULT 1,
					PRIMARY KEY (room, during WITHOUT OVERLAPS));
INSERT INTO rooms (room, during, rate) VALUES
	(7, '[2025-01-01 00:00+00,2025-02-01 00:00+00)', 100),
	(7, '[2025-02-01 00:00+00,2025-03-01 00:00+00)', 120);
SELECT consistency.enable_versioning('rooms', strict => true);
SELECT consistency.update_versioned('rooms',
	'{"room": 7, "during": "[2025-01-15 00:00+00,2025-02-15 00:00+00)"}', 1, '{"rate": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.update_versioned('rooms',
	'{"room": 7, "during": "[2025-02-01 00:00+00,2025-03-01 00:00+00)"}', 1, '{"rate": 130}');
UPDATE rooms SET rate = 140, version = 1 WHERE room = 7 AND upper(during) = '2025-03-01 00:00+00';
\echo :LAST_ERROR_SQLSTATE
SELECT room, to_char(lower(during) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS from, rate, version
  FROM rooms ORDER BY during;

-- 3. MERGE (versioning_trigger.sql tests the rest) in what 17 added: MERGE ... RETURNING in
--    WITH, checked as a top-level MERGE is (UPDATE actions setting the version in some but
--    not all are refused on a strict table), and WHEN NOT MATCHED BY SOURCE.
WITH m AS (
	MERGE INTO rooms USING (VALUES (7, 1::bigint, 'jan'), (7, NULL, 'feb')) s(room, v, month)
		ON rooms.room = s.room
		   AND to_char(lower(rooms.during) AT TIME ZONE 'UTC', 'mon') = s.month
		WHEN MATCHED AND s.v IS NOT NULL THEN UPDATE SET rate = 101, version = s.v
		WHEN MATCHED THEN UPDATE SET rate = 121
		RETURNING rooms.rate)
SELECT * FROM m;
\echo :LAST_ERROR_SQLSTATE
WITH m AS (
	MERGE INTO rooms USING (VALUES (7, 1::bigint, 'jan')) s(room, v, month)
		ON rooms.room = s.room
		   AND to_char(lower(rooms.during) AT TIME ZONE 'UTC', 'mon') = s.month
		WHEN MATCHED THEN UPDATE SET rate = 101, version = s.v
		RETURNING rooms.rate, rooms.version)
SELECT * FROM m;
-- 17 added WHEN NOT MATCHED BY SOURCE, whose UPDATE actions count too
MERGE INTO rooms USING (VALUES (7, 2::bigint, 'jan')) s(room, v, month)
	ON rooms.room = s.room AND to_char(lower(rooms.during) AT TIME ZONE 'UTC', 'mon') = s.month
	WHEN MATCHED THEN UPDATE SET rate = 102, version = s.v
	WHEN NOT MATCHED BY SOURCE THEN UPDATE SET rate = 0;
\echo :LAST_ERROR_SQLSTATE
MERGE INTO rooms USING (VALUES (7, 2::bigint, 'jan')) s(room, v, month)
	ON rooms.room = s.room AND to_char(lower(rooms.during) AT TIME ZONE 'UTC', 'mon') = s.month
	WHEN MATCHED THEN UPDATE SET rate = 102, version = s.v
	WHEN NOT MATCHED BY SOURCE THEN UPDATE SET rate = 0, version = 2;
SELECT room, to_char(lower(during) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS from, rate, version
  FROM rooms ORDER BY during;

DROP TABLE booking, rooms;
DROP EXTENSION btree_gist;
