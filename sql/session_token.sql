-- Session LSN tokens on a primary: the token format, what write_token() names, the
-- last_commit_token parameter, token_max, token_status, wait_for_token and
-- consistency.read_after, and every kind of bad input.  (Standbys, failover and another
-- cluster are covered by the TAP tests in test/t/03*.pl.)
-- The system identifier differs per run: tokens are shown with it replaced by <sysid>.
\set VERBOSITY default
SELECT system_identifier AS sysid FROM pg_control_system() \gset
CREATE FUNCTION show_token(t text) RETURNS text LANGUAGE sql
	AS $$ SELECT replace(t, (SELECT system_identifier::text FROM pg_control_system()), '<sysid>') $$;
CREATE FUNCTION token_lsn(t text) RETURNS pg_lsn LANGUAGE sql
	AS $$ SELECT split_part(t, ':', 4)::pg_lsn $$;
-- Run an expression on a token, returning its result or its SQLSTATE and message.
CREATE FUNCTION try_status(t text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN consistency.token_status(t);
EXCEPTION WHEN others THEN
	RETURN sqlstate || ': ' || sqlerrm;
END $$;
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);

-- 1. A session that has written nothing gets a token every server of the cluster satisfies:
--    LSN 0/0 on the current timeline.  (A new session: this one has created objects.)
\c
SELECT show_token(consistency.write_token()) AS no_write_token;
SELECT consistency.token_status(consistency.write_token()) AS status_on_primary;

-- 2. After a write: the end of its commit record, not the insert position.  It lies after
--    the WAL position before the write and no later than the one after the commit.
SELECT pg_current_wal_insert_lsn() AS before_write \gset
INSERT INTO accounts VALUES (1, 100);
SELECT consistency.write_token() AS t1 \gset
SELECT token_lsn(:'t1') > :'before_write'::pg_lsn AS after_the_write,
	   token_lsn(:'t1') <= pg_current_wal_insert_lsn() AS not_past_insert_position,
	   :'t1' ~ ('^v1:' || :'sysid' || ':1:[0-9A-F]+/[0-9A-F]+$') AS well_formed;

-- A write made before the library was loaded in the session (no preloading) is covered too:
-- write_token() reads the backend's last commit position kept by PostgreSQL itself.
\c
SELECT pg_current_wal_insert_lsn() AS before_write \gset
INSERT INTO accounts VALUES (2, 0);
SELECT token_lsn(consistency.write_token()) > :'before_write'::pg_lsn AS covers_write_before_load;
-- The reported parameter starts with the library: nothing was reported for that write,
-- unless the library was preloaded (shared_preload_libraries, session_preload_libraries),
-- which loaded it before the write, and then the write was reported.
SELECT current_setting('consistency.last_commit_token') =
	   CASE WHEN EXISTS (SELECT FROM pg_settings
						  WHERE name IN ('shared_preload_libraries', 'session_preload_libraries',
										 'local_preload_libraries')
							AND setting ~ '(^|[ ,/])consistency *(,|$)')
			THEN consistency.write_token() ELSE '' END AS reported_iff_loaded_before_write;
DELETE FROM accounts WHERE id = 2;
SELECT current_setting('consistency.last_commit_token') = consistency.write_token() AS reported_after_next_write;
SELECT consistency.write_token() AS t1 \gset

-- 3. The same token is reported in the consistency.last_commit_token parameter.
SELECT current_setting('consistency.last_commit_token') = :'t1' AS reported;
-- users cannot set it
SET consistency.last_commit_token = 'v1:1:1:0/0';
\echo :LAST_ERROR_SQLSTATE

-- 4. Reads, rolled-back writes and uncommitted writes do not move the token.
SELECT balance FROM accounts WHERE id = 1;
BEGIN;
UPDATE accounts SET balance = 0 WHERE id = 1;
ROLLBACK;
SELECT consistency.write_token() = :'t1' AS unchanged_after_read_and_rollback;
-- A read can write WAL without being a write: pruning a page.  Two versions of a 1 kB row
-- leave less free space than fillfactor 10 asks for, so the next read of the page prunes
-- the dead one (heap_page_prune_opt) and WAL-logs that.  The token stays where it was.
CREATE TABLE prune_me (id int PRIMARY KEY, pad text) WITH (fillfactor = 10, autovacuum_enabled = off);
INSERT INTO prune_me VALUES (1, repeat('x', 1000));
UPDATE prune_me SET pad = repeat('y', 1000) WHERE id = 1;
SELECT consistency.write_token() AS t_pruned \gset
SELECT pg_current_wal_insert_lsn() AS wal_before_read \gset
SELECT count(*) FROM prune_me;
SELECT pg_current_wal_insert_lsn() > :'wal_before_read'::pg_lsn AS the_read_wrote_wal,
	   consistency.write_token() = :'t_pruned' AS unchanged_after_pruning_read,
	   current_setting('consistency.last_commit_token') = :'t_pruned' AS not_reported;
DROP TABLE prune_me;
SELECT consistency.write_token() AS t1 \gset
-- Inside a transaction that has written, there is no token yet: an error, not the
-- previous commit's token (which would miss this write).
BEGIN;
SELECT consistency.write_token() = :'t1' AS before_writing_in_this_transaction;
UPDATE accounts SET balance = 50 WHERE id = 1;
SAVEPOINT s;
SELECT consistency.write_token();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
COMMIT;
-- the classic mistake: two statements in one query string are one transaction
UPDATE accounts SET balance = 50 WHERE id = 1\; SELECT consistency.write_token();
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.write_token() AS t2 \gset
SELECT token_lsn(:'t2') > token_lsn(:'t1') AS moved_after_commit,
	   current_setting('consistency.last_commit_token') = :'t2' AS reported;
-- A write inside a function counts when its transaction commits.
DO $$ BEGIN UPDATE accounts SET balance = balance + 1 WHERE id = 1; END $$;
SELECT token_lsn(consistency.write_token()) > token_lsn(:'t2') AS moved_after_do;
SELECT consistency.write_token() AS t2 \gset
-- PREPARE TRANSACTION is not a commit; COMMIT PREPARED is, for the session that runs it.
BEGIN;
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
PREPARE TRANSACTION 'token_2pc';
SELECT consistency.write_token() = :'t2' AS unchanged_after_prepare;
COMMIT PREPARED 'token_2pc';
SELECT token_lsn(consistency.write_token()) > token_lsn(:'t2') AS moved_after_commit_prepared;
SELECT consistency.write_token() AS t2 \gset
-- With synchronous_commit = off a commit returns before its WAL is flushed, and a crash
-- would lose it: write_token() flushes up to its token before returning it.  (Two commits
-- in a row: the WAL writer, woken by the first, has most likely not flushed the second.)
SET synchronous_commit = off;
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
UPDATE accounts SET balance = balance - 1 WHERE id = 1;
SELECT token_lsn(consistency.write_token()) <= pg_current_wal_flush_lsn() AS async_commit_flushed,
	   token_lsn(consistency.write_token()) > token_lsn(:'t2') AS names_the_async_commit;
RESET synchronous_commit;
SELECT consistency.write_token() AS t2 \gset

-- 5. token_status on the primary: its own tokens are "primary"; a position it never
--    reached on its own timeline, or a timeline not in its history, is "diverged";
--    another system identifier is "wrong_cluster".
SELECT consistency.token_status(:'t2') AS own_token,
	   consistency.token_status('v1:' || :'sysid' || ':1:0/0') AS no_write,
	   consistency.token_status('v1:' || :'sysid' || ':1:FFFFFFFF/0') AS never_written_here,
	   consistency.token_status('v1:' || :'sysid' || ':2:0/1000') AS unknown_timeline,
	   consistency.token_status('v1:' || (:'sysid'::numeric + 1)::text || ':1:0/1000') AS other_cluster;

-- 6. token_max: the later of two tokens; a token without a write never wins; a later
--    timeline wins; order does not matter.
SELECT show_token(consistency.token_max(:'t1', :'t2')) = show_token(:'t2') AS later_wins,
	   show_token(consistency.token_max(:'t2', :'t1')) = show_token(:'t2') AS symmetric,
	   consistency.token_max(:'t1', :'t1') = :'t1' AS idempotent;
SELECT consistency.token_max('v1:42:1:0/5000', 'v1:42:1:0/0') AS no_write_loses_right,
	   consistency.token_max('v1:42:3:0/0', 'v1:42:1:0/5000') AS no_write_loses_left,
	   consistency.token_max('v1:42:1:0/9000', 'v1:42:2:0/8000') AS later_timeline,
	   consistency.token_max('v1:42:1:1/0', 'v1:42:1:0/FFFFFFFF') AS high_half;
SELECT consistency.token_max('v1:42:1:0/5000', 'v1:43:1:0/5000');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.token_max(NULL, 'v1:42:1:0/5000');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.token_max('v1:42:1:0/5000', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.token_max('v1:42:1:0/5000', 'v1:42:1:0/50000000000');
\echo :LAST_ERROR_SQLSTATE

-- 7. Malformed tokens: YC301, with a detail naming the field.  NULL is 22004.
SELECT consistency.token_status(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.token_status('v1:42:1:0/3000148x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.token_status(repeat('v1:42:1:0/1', 1000));
\echo :LAST_ERROR_SQLSTATE
-- The message quotes a long token's first 52 bytes, cut on a character boundary: the
-- message converts to the client's encoding and the error stays YC301 (a cut inside a
-- two-byte UTF-8 character failed to convert: 22021).  The database is UTF-8.
SELECT pg_catalog.getdatabaseencoding() AS database_encoding;
SET client_encoding = 'LATIN1';
\set VERBOSITY sqlstate
SELECT consistency.token_status('v1:' || repeat(chr(233), 30));
\set VERBOSITY default
RESET client_encoding;
SELECT consistency.token_status('v1:' || repeat(chr(233), 30));
SELECT t AS token, try_status(t) AS result
  FROM (VALUES (''), ('v1'), ('v1:'), ('v2:42:1:0/0'), ('V1:42:1:0/0'), (' v1:42:1:0/0'),
			   ('v1:42:1:0/0 '), ('v1:42:1:0/0:'), ('v1:42:1:0/0/0'), ('v1:42:1'), ('v1:42:1:'),
			   ('v1:0:1:0/0'), ('v1:042:1:0/0'), ('v1:-42:1:0/0'), ('v1:+42:1:0/0'),
			   ('v1:18446744073709551615:1:0/0'), ('v1:18446744073709551616:1:0/0'),
			   ('v1:99999999999999999999:1:0/0'), ('v1:42:0:0/0'), ('v1:42:01:0/0'),
			   ('v1:42:4294967295:0/0'), ('v1:42:4294967296:0/0'), ('v1:42:1:00/0'),
			   ('v1:42:1:0/00'), ('v1:42:1:0/3000148'), ('v1:42:1:0/3000a48'),
			   ('v1:42:1:FFFFFFFF/FFFFFFFF'), ('v1:42:1:100000000/0'), ('v1:42:1:0/'),
			   ('v1:42:1:/0'), ('v1:42:1:0-0'), ('v1:42:1:0/0' || chr(10)), ('v1:４２:1:0/0'))
	   AS v(t);

-- 8. wait_for_token on the primary: its own tokens are there at once; a token it can
--    never satisfy is an error, not a wait; bad timeouts are refused.
SELECT consistency.wait_for_token(:'t2') AS own_token,
	   consistency.wait_for_token(:'t2', '0') AS zero_timeout,
	   consistency.wait_for_token('v1:' || :'sysid' || ':1:0/0', '1 day') AS no_write;
\set VERBOSITY terse
SELECT consistency.wait_for_token('v1:' || (:'sysid'::numeric + 1)::text || ':1:0/1000');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.wait_for_token('v1:' || :'sysid' || ':1:FFFFFFFF/0');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT consistency.wait_for_token(:'t2', '-1 ms');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.wait_for_token(:'t2', '100 years');
\echo :LAST_ERROR_SQLSTATE
-- the largest timeout is 2147483647 ms; a fraction of a millisecond more rounds up past it
SELECT consistency.wait_for_token(:'t2', '2147483.647 s') AS largest_timeout;
SELECT consistency.wait_for_token(:'t2', '2147483.647001 s');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.wait_for_token(:'t2', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.wait_for_token(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.wait_for_token('garbage');
\echo :LAST_ERROR_SQLSTATE

-- 9. SET consistency.read_after on the primary: a token of this primary is satisfied at
--    once and queries run; a malformed, foreign or diverged token is refused and the
--    setting keeps its previous value.
SET consistency.read_after = :'t2';
SELECT current_setting('consistency.read_after') = :'t2' AS set, count(*) AS rows FROM accounts;
SET consistency.read_after = 'v1:42:1:nonsense';
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SET consistency.read_after = 'v1:1:1:0/1000';
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('consistency.read_after', 'v1:' || :'sysid' || ':7:0/1000', false);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT current_setting('consistency.read_after') = :'t2' AS kept_previous_value;
RESET consistency.read_after;
SELECT current_setting('consistency.read_after') AS after_reset;
-- The valid range; PostgreSQL's out-of-range message spells it differently by version.
SELECT min_val, max_val, unit FROM pg_catalog.pg_settings
 WHERE name OPERATOR(pg_catalog.=) 'consistency.read_after_timeout';
\set VERBOSITY sqlstate
SET consistency.read_after_timeout = -1;
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SET consistency.read_after_timeout = '2s';
SHOW consistency.read_after_timeout;
RESET consistency.read_after_timeout;
SHOW consistency.read_after_timeout;

-- 10. standby_status on a primary without standbys: no rows; its columns.
SELECT * FROM consistency.standby_status();

-- 11. Everything works for a non-superuser granted consistency_user.
CREATE ROLE token_app NOLOGIN;
GRANT consistency_user TO token_app;
GRANT ALL ON accounts TO token_app;
SET ROLE token_app;
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
SELECT token_lsn(consistency.write_token()) > token_lsn(:'t2') AS app_token_moved,
	   consistency.token_status(consistency.write_token()) AS status,
	   consistency.wait_for_token(consistency.write_token()) AS waited;
SELECT count(*) AS standbys FROM consistency.standby_status();
RESET ROLE;
CREATE ROLE token_stranger NOLOGIN;
SET ROLE token_stranger;
SELECT consistency.write_token();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE token_stranger;
REVOKE ALL ON accounts FROM token_app;
DROP ROLE token_app;
DROP TABLE accounts;
