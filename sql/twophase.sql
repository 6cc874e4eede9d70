-- In-doubt two-phase commit: gids, the decision log, the listing (columns, locks, verdicts),
-- dry runs that change nothing, resolution through the background worker, bad input.
-- Errors are shown as users see them, followed by their SQLSTATE.  Gids, xids and times
-- differ between runs, so they are masked by tpc_mask().
\set VERBOSITY default
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
INSERT INTO accounts VALUES (1, 100), (2, 100);
CREATE FUNCTION tpc_mask(t text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(t,
		'cy2:[0-9]+:[0-9]+:[0-9]+:[0-9a-f]{16}', 'cy2:<sysid>:<db>:<xid>:<nonce>', 'g'),
		'cy1:[0-9]+:[0-9]+:[0-9]+', 'cy1:<sysid>:<db>:<xid>', 'g'),
		'[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ UTC', '<time>', 'g'),
		'transaction [0-9]+', 'transaction <xid>', 'g') $$;
CREATE VIEW listing AS
	SELECT tpc_mask(gid) AS gid, database, owner, lock_count,
		   regexp_replace(relations::text, '/[0-9]+', '/<oid>') AS relations,
		   blocked_pids, verdict, tpc_mask(evidence) AS evidence
	  FROM consistency.prepared_xacts() ORDER BY prepared_at;

-- 1. tpc_gid() names this cluster, this database and this transaction, plus a random nonce
--    drawn once per transaction (its siblings share it, the next transaction has another).
BEGIN;
SELECT consistency.tpc_gid() ~ format('^cy2:%s:%s:%s:[0-9a-f]{16}$', (SELECT system_identifier FROM pg_control_system()),
		(SELECT oid FROM pg_database WHERE datname = current_database()), pg_current_xact_id()) AS gid_names_this_xact,
	   consistency.tpc_gid('shard-1') = consistency.tpc_gid() || ':shard-1' AS participant_label,
	   consistency.tpc_gid() = consistency.tpc_gid() AS stable_within_xact;
ROLLBACK;
BEGIN;
SELECT split_part(consistency.tpc_gid(), ':', 5) AS nonce_1 \gset
COMMIT;
BEGIN;
SELECT split_part(consistency.tpc_gid(), ':', 5) AS nonce_2 \gset
COMMIT;
SELECT :'nonce_1' <> :'nonce_2' AS nonce_per_transaction;
SELECT consistency.tpc_gid(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_gid(repeat('x', 65));
\echo :LAST_ERROR_SQLSTATE

-- 2. The decision log: only the coordinator transaction that made the gid may log it.
BEGIN;
SELECT consistency.tpc_gid('a') AS gid_commit \gset
SELECT consistency.tpc_log_decision(:'gid_commit');
SELECT consistency.tpc_log_decision(:'gid_commit', 'commit');		-- the same again: a no-op
\set VERBOSITY sqlstate
SELECT consistency.tpc_log_decision(:'gid_commit', 'abort');		-- a different decision: refused
\set VERBOSITY default
ROLLBACK;
BEGIN;
SELECT consistency.tpc_gid('a') AS gid_commit \gset
SELECT consistency.tpc_log_decision(:'gid_commit');
SELECT consistency.tpc_log_decision(consistency.tpc_gid('b'), 'commit');	-- sibling gid, same decision
COMMIT;
SELECT tpc_mask(gid) AS gid, decision, coordinator_sysid = (SELECT system_identifier FROM pg_control_system()) AS our_cluster
  FROM consistency.tpc_decisions ORDER BY gid;
-- another transaction's gid (errors naming a gid show only their SQLSTATE here, as gids
-- differ between runs), an unknown format, bad arguments
\set VERBOSITY sqlstate
SELECT consistency.tpc_log_decision(:'gid_commit');
BEGIN;
SELECT consistency.tpc_gid() IS NOT NULL AS has_xid;
SELECT consistency.tpc_log_decision(:'gid_commit');
ROLLBACK;
\set VERBOSITY default
SELECT consistency.tpc_log_decision('order-42');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_log_decision('cy1:12:5:007');				-- leading zero: not ours
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_log_decision('cy1:12:5:07');				-- two digits, leading zero: not ours either
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_log_decision('cy2:12:05:7:0123456789abcdef');	-- the same in format 2's database oid
\echo :LAST_ERROR_SQLSTATE
-- an xid8 whose 32-bit xid is not normal (2^32 + 0, 1, 2: invalid, bootstrap, frozen) names no
-- transaction in any epoch: not a tpc_gid() gid (YC401), rather than another transaction's (YC402)
SELECT consistency.tpc_log_decision('cy2:12:5:4294967296:0123456789abcdef');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_log_decision('cy2:12:5:4294967297:0123456789abcdef');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_log_decision('cy1:12:5:8589934594');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT consistency.tpc_log_decision(consistency.tpc_gid(), 'maybe');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT consistency.tpc_log_decision(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_log_decision('');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_log_decision(repeat('g', 200));
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_log_decision('cy1:1:1:1000', NULL);
\echo :LAST_ERROR_SQLSTATE
-- a gid naming this very transaction that tpc_gid() did not make (spelled by hand: any nonce,
-- or 1.0's format, which tpc_gid() no longer makes), whether tpc_gid() ran in it or not
\set this_xact '(SELECT system_identifier FROM pg_control_system()), (SELECT oid FROM pg_database WHERE datname = current_database()), pg_current_xact_id()'
\set VERBOSITY sqlstate
BEGIN;
SELECT consistency.tpc_log_decision(format('cy2:%s:%s:%s:0000000000000000', :this_xact));
COMMIT;
BEGIN;
SELECT consistency.tpc_gid() IS NOT NULL AS has_gid;
SELECT consistency.tpc_log_decision(format('cy2:%s:%s:%s:0000000000000000', :this_xact));
COMMIT;
BEGIN;
SELECT consistency.tpc_gid() IS NOT NULL AS has_gid;
SELECT consistency.tpc_log_decision(format('cy1:%s:%s:%s', :this_xact));
COMMIT;
\set VERBOSITY default
SELECT count(*) AS decisions FROM consistency.tpc_decisions;

-- 2b. A consistency_user cannot write the decision log directly (no INSERT: 42501), so it
--     cannot forge another coordinator's decision; it logs its own through the function.
--     (The guard trigger still checks every row, whoever writes it: section 10.)
SELECT system_identifier AS sysid FROM pg_control_system() \gset
BEGIN;
SELECT consistency.tpc_gid('victim') AS gid_victim, pg_current_xact_id() AS xid_victim \gset
COMMIT;										-- committed without a decision: presumed abort
CREATE ROLE tpc_app LOGIN IN ROLE consistency_user;
SET ROLE tpc_app;
\set VERBOSITY sqlstate
-- a decision for another transaction's gid: "commit" for the undecided one, "abort" for the
-- committed one (before the fix either was accepted)
INSERT INTO consistency.tpc_decisions VALUES (:'gid_victim', 'commit', :sysid, :'xid_victim', now());
INSERT INTO consistency.tpc_decisions
	SELECT gid || ':forged', 'abort', coordinator_sysid, coordinator_xid, now()
	  FROM consistency.tpc_decisions WHERE gid = :'gid_commit';
-- its own gid, but columns naming another transaction
BEGIN;
SELECT consistency.tpc_gid('own') AS gid_own \gset
INSERT INTO consistency.tpc_decisions VALUES (:'gid_own', 'commit', :sysid, :'xid_victim', now());
ROLLBACK;
BEGIN;
SELECT consistency.tpc_gid('own') AS gid_own \gset
INSERT INTO consistency.tpc_decisions VALUES (:'gid_own', 'commit', 1, pg_current_xact_id(), now());
ROLLBACK;
\set VERBOSITY default
INSERT INTO consistency.tpc_decisions VALUES ('order-42', 'abort', 1, '1000', now());
\echo :LAST_ERROR_SQLSTATE
-- its own decisions: through tpc_log_decision; not even a row naming itself directly
BEGIN;
SELECT consistency.tpc_gid('app') AS gid_app \gset
SELECT consistency.tpc_log_decision(:'gid_app');
COMMIT;
BEGIN;
INSERT INTO consistency.tpc_decisions
	VALUES (consistency.tpc_gid('direct'), 'commit', :sysid, pg_current_xact_id(), now());
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT tpc_mask(gid) AS gid, decision FROM consistency.tpc_decisions
 WHERE gid IN (:'gid_victim', :'gid_app') OR gid LIKE '%:direct' OR gid LIKE '%:forged' ORDER BY gid;
-- A row already there for the gid with another decision (only the owner or a superuser can
-- write one, and only naming this very transaction) makes tpc_log_decision fail: the
-- decision is never silently dropped.
BEGIN;
SELECT consistency.tpc_gid('preset') AS gid_preset \gset
INSERT INTO consistency.tpc_decisions
	VALUES (:'gid_preset', 'abort', :sysid, pg_current_xact_id(), now(), split_part(:'gid_preset', ':', 5));
\set VERBOSITY sqlstate
SELECT consistency.tpc_log_decision(:'gid_preset');
\set VERBOSITY default
ROLLBACK;
DELETE FROM consistency.tpc_decisions WHERE gid = :'gid_app' OR gid LIKE '%:direct';

-- 3. Participants.  The coordinator transactions ran above or run now; each participant
--    prepares a transaction under its gid.
BEGIN;
SELECT consistency.tpc_gid('a') AS gid_aborted \gset
ROLLBACK;									-- coordinator aborted: presumed abort
BEGIN;
SELECT consistency.tpc_gid('a') AS gid_nodecision \gset
COMMIT;										-- committed without a decision: presumed abort
BEGIN;
UPDATE accounts SET balance = balance - 10 WHERE id = 1;
PREPARE TRANSACTION :'gid_commit';
BEGIN;
UPDATE accounts SET balance = balance - 20 WHERE id = 2;
PREPARE TRANSACTION :'gid_aborted';
BEGIN;
INSERT INTO accounts VALUES (3, 30);
PREPARE TRANSACTION :'gid_nodecision';
BEGIN;
CREATE TABLE manual_t (x int);
PREPARE TRANSACTION 'manual-gid';				-- not made by tpc_gid()
BEGIN;
SELECT consistency.tpc_gid('self') AS gid_self \gset
PREPARE TRANSACTION :'gid_self';				-- tpc_gid() in the participant's own transaction
BEGIN;
SELECT pg_advisory_xact_lock(42);
PREPARE TRANSACTION 'cy1:1:1:1000';			-- another cluster's coordinator

SELECT * FROM listing;
-- lock_count is what pg_locks shows for the prepared transaction's virtual transaction
SELECT tpc_mask(p.gid) AS gid, p.lock_count,
	   (SELECT count(*) FROM pg_locks l
		 WHERE l.pid IS NULL AND l.virtualtransaction =
			   (SELECT virtualtransaction FROM pg_locks t
				 WHERE t.locktype = 'transactionid' AND t.transactionid = p.xid AND t.pid IS NULL)) AS in_pg_locks
  FROM consistency.prepared_xacts() p ORDER BY p.prepared_at;
-- the other columns
SELECT tpc_mask(gid) AS gid, xid = (SELECT transaction FROM pg_prepared_xacts x WHERE x.gid = p.gid) AS xid_ok,
	   prepared_at = (SELECT prepared FROM pg_prepared_xacts x WHERE x.gid = p.gid) AS prepared_ok,
	   age >= '0' AND age < '1 hour' AS age_ok, xid_age = age(xid) AS xid_age_ok,
	   pins_xmin_horizon
  FROM consistency.prepared_xacts() p ORDER BY prepared_at;
SELECT count(*) AS older_than_an_hour FROM consistency.prepared_xacts('1 hour');
SELECT * FROM consistency.prepared_xacts(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.prepared_xacts('-1 second');
\echo :LAST_ERROR_SQLSTATE

-- 4. Dry runs plan and change nothing.
CREATE TABLE before AS SELECT gid FROM pg_prepared_xacts;
SELECT database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_prepared(:'gid_commit');
SELECT database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_prepared(:'gid_aborted', 'rollback');
SELECT database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_prepared('manual-gid', 'commit', force => true);
SELECT tpc_mask(gid) AS gid, database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_stale('0');
SELECT * FROM consistency.resolve_prepared('no-such-gid', dry_run => false);
SELECT (SELECT count(*) FROM pg_prepared_xacts) AS prepared,
	   (SELECT count(*) FROM before b JOIN pg_prepared_xacts p USING (gid)) AS unchanged,
	   (SELECT count(*) FROM consistency.tpc_resolution_log) AS logged,
	   (SELECT sum(balance) FROM accounts) AS balance;

-- 5. Explicit actions against the evidence need force; bad arguments.
\set VERBOSITY sqlstate
SELECT * FROM consistency.resolve_prepared(:'gid_commit', 'rollback');
SELECT * FROM consistency.resolve_prepared(:'gid_aborted', 'commit');
-- this cluster's gid with an unknown verdict: its decision is this cluster's to know
SELECT * FROM consistency.resolve_prepared(:'gid_self', 'rollback');
\set VERBOSITY default
SELECT * FROM consistency.resolve_prepared('manual-gid', 'rollback');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_prepared(:'gid_commit', 'abort');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_prepared(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_prepared('');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_prepared(repeat('g', 200));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_prepared(:'gid_commit', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_prepared(:'gid_commit', dry_run => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_prepared(:'gid_commit', force => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_stale(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_stale('-1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.resolve_stale('0', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS still_prepared FROM pg_prepared_xacts;

-- 6. A monitoring role sees everything but resolves nothing.
CREATE ROLE tpc_monitor LOGIN IN ROLE pg_monitor;
SET ROLE tpc_monitor;
SELECT tpc_mask(gid) AS gid, verdict, lock_count FROM consistency.prepared_xacts() ORDER BY prepared_at;
SELECT * FROM consistency.resolve_stale('0');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 7. A consistency_admin that did not prepare a transaction is refused by PostgreSQL itself;
--    the attempt is logged.  resolve_stale skips what the caller may not finish.
CREATE ROLE tpc_admin LOGIN IN ROLE consistency_admin;
SET ROLE tpc_admin;
\set VERBOSITY sqlstate
SELECT * FROM consistency.resolve_prepared(:'gid_commit', dry_run => false);
\set VERBOSITY default
SELECT regexp_replace(:'LAST_ERROR_MESSAGE', '"[^"]*"', '"<gid>"') AS error;
SELECT count(*) AS visible_to_admin FROM consistency.resolve_stale('0');
-- nor can it write the resolution log by hand: only the resolver's worker does
INSERT INTO consistency.tpc_resolution_log
	(resolved_at, gid, database, requested, action, heuristic, verdict, evidence, outcome, resolved_by)
	VALUES (now(), 'forged', 'regression', 'commit', 'commit', false, 'commit', 'forged', 'committed', 'tpc_admin');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- A role that may not log in cannot start a resolver worker as itself: YC406.  The worker
-- that writes the log is the first to start and must be ready before anything is done, so
-- nothing changes and there is nothing to log (no "log not written" warning).
CREATE ROLE tpc_nologin NOLOGIN IN ROLE consistency_admin;
SET ROLE tpc_nologin;
\set VERBOSITY sqlstate
SELECT * FROM consistency.resolve_prepared(:'gid_commit', dry_run => false);
\set VERBOSITY default
RESET ROLE;
SELECT count(*) AS still_prepared FROM pg_prepared_xacts;
SELECT tpc_mask(gid) AS gid, action, outcome, error, resolved_by FROM consistency.tpc_resolution_log;

-- 8. Execution: the decision log is followed; the resolution stays even though the
--    caller's transaction rolls back, and so does its log row.
BEGIN;
SELECT database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_prepared(:'gid_commit', dry_run => false);
ROLLBACK;
SELECT tpc_mask(gid) AS gid, database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_stale('0', dry_run => false);
SELECT database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_prepared('manual-gid', 'rollback', dry_run => false, force => true);
SELECT database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_prepared('cy1:1:1:1000', 'rollback', dry_run => false);
SELECT database, planned, executed, outcome, tpc_mask(reason) AS reason
  FROM consistency.resolve_prepared(:'gid_self', 'rollback', dry_run => false, force => true);
SELECT * FROM accounts ORDER BY id;
SELECT to_regclass('manual_t') AS manual_t;
SELECT count(*) AS still_prepared FROM pg_prepared_xacts;
SELECT tpc_mask(gid) AS gid, database, requested, action, heuristic, verdict, outcome, error,
	   resolved_by, tpc_mask(evidence) AS evidence
  FROM consistency.tpc_resolution_log ORDER BY id;

-- 9. A hostile search_path changes nothing: every function pins its own.
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.texteq_trap(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: text = text'; END $$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.texteq_trap);
CREATE FUNCTION hostile.statement_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: statement_timestamp()'; END $$;
CREATE TABLE hostile.tpc_decisions (gid text, decision text);
SET search_path = hostile, pg_catalog, public;
BEGIN;
SELECT consistency.tpc_gid('hostile') AS gid_hostile \gset
SELECT consistency.tpc_log_decision(:'gid_hostile');
COMMIT;
BEGIN;
SELECT pg_advisory_xact_lock(7);
PREPARE TRANSACTION :'gid_hostile';
SELECT verdict, lock_count FROM consistency.prepared_xacts();
SELECT planned, executed, outcome FROM consistency.resolve_stale('0', dry_run => false);
SELECT count(*) AS hostile_rows FROM hostile.tpc_decisions;
RESET search_path;
DROP SCHEMA hostile CASCADE;

-- 10. The privilege boundary: both logs are written only by the functions, as the tables'
--     owner.  A plain login role granted consistency_user makes gids and logs decisions, and
--     reads the decision log (a restarted coordinator reads its decisions to finish phase 2);
--     it cannot write either log directly, nor call the resolver.  Nothing changes.
CREATE ROLE tpc_plain LOGIN IN ROLE consistency_user;
SET ROLE tpc_plain;
BEGIN;
SELECT consistency.tpc_gid('plain') AS gid_plain \gset
SELECT consistency.tpc_log_decision(:'gid_plain');
COMMIT;
SELECT decision FROM consistency.tpc_decisions WHERE gid = :'gid_plain';
\set VERBOSITY sqlstate
BEGIN;
INSERT INTO consistency.tpc_decisions (gid, decision, coordinator_sysid, coordinator_xid, decided_at)
	VALUES (consistency.tpc_gid('direct'), 'commit', :sysid, pg_current_xact_id(), now());
ROLLBACK;
UPDATE consistency.tpc_decisions SET decision = 'abort' WHERE gid = :'gid_plain';
DELETE FROM consistency.tpc_decisions WHERE gid = :'gid_plain';
INSERT INTO consistency.tpc_resolution_log
	(resolved_at, gid, database, requested, action, heuristic, verdict, evidence, outcome, resolved_by)
	VALUES (now(), 'forged', 'regression', 'commit', 'commit', false, 'commit', 'forged', 'committed', 'tpc_plain');
UPDATE consistency.tpc_resolution_log SET outcome = 'failed';
DELETE FROM consistency.tpc_resolution_log;
SELECT * FROM consistency.prepared_xacts();
SELECT * FROM consistency.resolve_stale('0');
SELECT consistency.tpc_prune_decisions('0');
\set VERBOSITY default
RESET ROLE;
--     consistency_admin resolves and prunes through functions, and cannot write either log.
CREATE ROLE tpc_plain_admin LOGIN IN ROLE consistency_admin;
SET ROLE tpc_plain_admin;
SELECT count(*) AS listed FROM consistency.prepared_xacts();
SELECT count(*) AS resolvable FROM consistency.resolve_stale('0', dry_run => false);
SELECT outcome FROM consistency.resolve_prepared('no-such-gid', dry_run => false);
\set VERBOSITY sqlstate
DELETE FROM consistency.tpc_decisions WHERE gid = :'gid_plain';
INSERT INTO consistency.tpc_resolution_log
	(resolved_at, gid, database, requested, action, heuristic, verdict, evidence, outcome, resolved_by)
	VALUES (now(), 'forged', 'regression', 'commit', 'commit', false, 'commit', 'forged', 'committed', 'tpc_plain_admin');
UPDATE consistency.tpc_resolution_log SET outcome = 'failed';
DELETE FROM consistency.tpc_resolution_log;
\set VERBOSITY default
RESET ROLE;
SELECT decision FROM consistency.tpc_decisions WHERE gid = :'gid_plain';
SELECT count(*) AS log_rows FROM consistency.tpc_resolution_log;
--     Pruning: decisions older than min_age, except those of a coordinator transaction with a
--     participant still prepared in this cluster (its decision is still needed).
BEGIN;
SELECT consistency.tpc_gid('kept') AS gid_kept \gset
SELECT consistency.tpc_log_decision(:'gid_kept');
COMMIT;
BEGIN;
SELECT pg_advisory_xact_lock(9);
PREPARE TRANSACTION :'gid_kept';
SET ROLE tpc_plain_admin;
SELECT consistency.tpc_prune_decisions('1 hour') AS pruned_none_old_enough;
SELECT consistency.tpc_prune_decisions('0') AS pruned;
SELECT consistency.tpc_prune_decisions(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.tpc_prune_decisions('-1 second');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT tpc_mask(gid) AS gid, decision FROM consistency.tpc_decisions ORDER BY gid;
ROLLBACK PREPARED :'gid_kept';
--     The guards still check a direct write by the owner (a superuser here): a decision row
--     must agree with its gid, and may not be written for another transaction of this
--     database; resolution log rows are never updated, and must be consistent.
\set VERBOSITY sqlstate
INSERT INTO consistency.tpc_decisions (gid, decision, coordinator_sysid, coordinator_xid, decided_at)
	VALUES (:'gid_victim', 'commit', :sysid, :'xid_victim', now());
INSERT INTO consistency.tpc_decisions (gid, decision, coordinator_sysid, coordinator_xid, decided_at)
	VALUES ('order-42', 'commit', 1, '1000', now());
INSERT INTO consistency.tpc_decisions (gid, decision, coordinator_sysid, coordinator_xid, decided_at)
	VALUES ('cy1:1:1:1000:other-cluster', 'commit', 2, '1000', now());
UPDATE consistency.tpc_resolution_log SET outcome = 'failed';
INSERT INTO consistency.tpc_resolution_log
	(resolved_at, gid, database, requested, action, heuristic, verdict, evidence, outcome, resolved_by)
	VALUES (now(), 'x', 'regression', 'commit', 'commit', false, 'commit', 'x', 'rolled_back', 'me');
\set VERBOSITY default
-- a role granted INSERT by hand (or consistency_user on a database still at 1.0) keeps 1.0's
-- rule: only rows naming its own transaction; and it cannot write the resolution log
GRANT INSERT ON consistency.tpc_decisions, consistency.tpc_resolution_log TO tpc_plain;
SET ROLE tpc_plain;
\set VERBOSITY sqlstate
INSERT INTO consistency.tpc_decisions (gid, decision, coordinator_sysid, coordinator_xid, decided_at)
	VALUES ('cy1:1:1:1000:granted', 'commit', 1, '1000', now());
INSERT INTO consistency.tpc_resolution_log
	(resolved_at, gid, database, requested, action, heuristic, verdict, evidence, outcome, resolved_by)
	VALUES (now(), 'x', 'regression', 'commit', 'commit', false, 'commit', 'x', 'committed', 'me');
\set VERBOSITY default
BEGIN;
SELECT consistency.tpc_gid('granted') AS gid_granted \gset
INSERT INTO consistency.tpc_decisions
	VALUES (:'gid_granted', 'commit', :sysid, pg_current_xact_id(), now(), split_part(:'gid_granted', ':', 5));
COMMIT;
RESET ROLE;
REVOKE INSERT ON consistency.tpc_decisions, consistency.tpc_resolution_log FROM tpc_plain;
SELECT tpc_mask(gid) AS gid, decision FROM consistency.tpc_decisions WHERE gid LIKE '%granted';
-- a restore: another cluster's decision that agrees with its gid, a consistent log row
INSERT INTO consistency.tpc_decisions (gid, decision, coordinator_sysid, coordinator_xid, decided_at)
	VALUES ('cy1:1:1:1000:other-cluster', 'commit', 1, '1000', now());
INSERT INTO consistency.tpc_resolution_log
	(resolved_at, gid, database, requested, action, heuristic, verdict, evidence, outcome, resolved_by)
	VALUES (now(), 'x', 'regression', 'commit', 'commit', false, 'commit', 'x', 'committed', 'me');
SELECT count(*) AS restored FROM consistency.tpc_decisions WHERE gid = 'cy1:1:1:1000:other-cluster';

-- 11. Sibling gids share their coordinator transaction's nonce.  A decision for the same xid
--     under another nonce (a coordinator whose history was lost, restored from a backup, that
--     handed the xid out again) is not a sibling's: here it is written with the guard off.
BEGIN;
SELECT consistency.tpc_gid('a') AS gid_lost, pg_current_xact_id() AS xid_lost \gset
COMMIT;
ALTER TABLE consistency.tpc_decisions DISABLE TRIGGER tpc_decisions_guard;
INSERT INTO consistency.tpc_decisions
	(gid, decision, coordinator_sysid, coordinator_xid, coordinator_nonce, decided_at)
	VALUES (regexp_replace(:'gid_lost', ':[0-9a-f]{16}:a$', ':0123456789abcdef:b'), 'commit',
			:sysid, :'xid_lost', '0123456789abcdef', now());
ALTER TABLE consistency.tpc_decisions ENABLE TRIGGER tpc_decisions_guard;
BEGIN;
SELECT pg_advisory_xact_lock(10);
PREPARE TRANSACTION :'gid_lost';
SELECT verdict, tpc_mask(evidence) AS evidence FROM consistency.prepared_xacts() WHERE gid = :'gid_lost';
ROLLBACK PREPARED :'gid_lost';
--     A gid in 1.0's format (no nonce) keeps 1.0's rule: any decision of the same coordinator
--     transaction made in that format.  The 1.0 library's tpc_log_decision wrote this row
--     (tpc_gid() makes format 2 now, and tpc_log_decision takes only the gids it made); here
--     the owner writes it in the transaction it names, which the guard accepts.
BEGIN;
SELECT format('cy1:%s:%s:%s', :sysid, (SELECT oid FROM pg_database WHERE datname = current_database()),
			  pg_current_xact_id()) AS gid_old \gset
INSERT INTO consistency.tpc_decisions (gid, decision, coordinator_sysid, coordinator_xid, decided_at)
	VALUES (:'gid_old' || ':b', 'commit', :sysid, pg_current_xact_id(), now());
COMMIT;
BEGIN;
SELECT pg_advisory_xact_lock(11);
PREPARE TRANSACTION :'gid_old';
SELECT verdict, tpc_mask(evidence) AS evidence FROM consistency.prepared_xacts() WHERE gid = :'gid_old';
ROLLBACK PREPARED :'gid_old';
DELETE FROM consistency.tpc_decisions;
--     A gid of this cluster and database whose xid8 is 2^32 + 1 (a 32-bit xid of 1, the
--     bootstrap transaction's) was not made by tpc_gid(): its verdict is unknown, and says so.
SELECT format('cy2:%s:%s:4294967297:0123456789abcdef', :sysid,
			  (SELECT oid FROM pg_database WHERE datname = current_database())) AS gid_nonnormal \gset
BEGIN;
SELECT pg_advisory_xact_lock(12);
PREPARE TRANSACTION :'gid_nonnormal';
SELECT verdict, evidence FROM consistency.prepared_xacts() WHERE gid = :'gid_nonnormal';
ROLLBACK PREPARED :'gid_nonnormal';

-- 12. Settings of the calling role (ALTER ROLE ... SET) reach its resolver workers as they
--     connect; none keeps the log writer from recording what was done.  Here a read-only
--     default, which COMMIT/ROLLBACK PREPARED ignores but the log's INSERT would not: the
--     action is taken and logged, with no warning.
CREATE ROLE tpc_readonly LOGIN IN ROLE consistency_admin;
ALTER ROLE tpc_readonly SET default_transaction_read_only = on;
SET ROLE tpc_readonly;
BEGIN;
SELECT pg_advisory_xact_lock(13);
PREPARE TRANSACTION 'cy1:1:1:1300';			-- another cluster's coordinator: the caller decides
SELECT database, planned, executed, outcome
  FROM consistency.resolve_prepared('cy1:1:1:1300', 'rollback', dry_run => false);
RESET ROLE;
SELECT gid, action, outcome, error, resolved_by FROM consistency.tpc_resolution_log
 WHERE gid = 'cy1:1:1:1300';
SELECT count(*) AS still_prepared FROM pg_prepared_xacts WHERE gid = 'cy1:1:1:1300';

DROP VIEW listing;
DROP TABLE before, accounts;
DROP FUNCTION tpc_mask(text);
DELETE FROM consistency.tpc_decisions;
DELETE FROM consistency.tpc_resolution_log;
DROP ROLE tpc_monitor;
DROP ROLE tpc_admin;
DROP ROLE tpc_nologin;
DROP ROLE tpc_app;
DROP ROLE tpc_plain;
DROP ROLE tpc_plain_admin;
DROP ROLE tpc_readonly;
-- Both logs are guarded by C triggers, enabled on every write (section 10 tests what they refuse).
SELECT tgrelid::regclass AS guarded_table, tgname, tgfoid::regprocedure AS guard, tgenabled,
	   (tgtype & 2) <> 0 AS before, (tgtype & 1) <> 0 AS for_each_row
  FROM pg_trigger
 WHERE tgfoid IN ('consistency.tpc_decisions_guard()'::regprocedure,
				  'consistency.tpc_resolution_log_guard()'::regprocedure)
 ORDER BY 1;
