/* consistency--1.0.sql: the SQL surface of the consistency extension, version 1.0. */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION consistency" to load this file. \quit

/*
 * Roles.  consistency_user may call the application functions; consistency_admin may also
 * call the maintenance and resolution functions.  Roles are cluster-wide and outlive the
 * extension, so they are created only when missing and never dropped.
 */
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'consistency_user') THEN
		CREATE ROLE consistency_user NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'consistency_admin') THEN
		CREATE ROLE consistency_admin NOLOGIN;
	END IF;
END
$roles$;
GRANT consistency_user TO consistency_admin;

GRANT USAGE ON SCHEMA @extschema@ TO consistency_user;

/* ------------------------------------------------------------------------------------------
 * Idempotency keys (src/idempotency.c)
 * ------------------------------------------------------------------------------------------
 */

CREATE TYPE @extschema@.idem_state AS ENUM ('in_progress', 'completed');
COMMENT ON TYPE @extschema@.idem_state IS
	'state of an idempotency key: in_progress (a lease) or completed (the response is stored)';

CREATE TABLE @extschema@.idempotency_keys (
	scope            pg_catalog.text        NOT NULL DEFAULT '',
	key              pg_catalog.text        NOT NULL,
	fingerprint      pg_catalog.text,
	state            @extschema@.idem_state NOT NULL,
	response         pg_catalog.jsonb,
	recovery_point   pg_catalog.text,
	attempt          pg_catalog.int4        NOT NULL DEFAULT 1,
	lease_duration   pg_catalog.interval,
	lease_expires_at pg_catalog.timestamptz,
	created_at       pg_catalog.timestamptz NOT NULL,
	completed_at     pg_catalog.timestamptz,
	expires_at       pg_catalog.timestamptz NOT NULL,
	-- No CHECK constraint: PostgreSQL 15 re-parses a table's CHECKs for every statement that
	-- writes it, which cost idem_complete half its CPU.  The state is an enum (checked once,
	-- when a statement is planned); key and scope lengths are enforced by every function.
	PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expires_at_idx ON @extschema@.idempotency_keys (expires_at);
COMMENT ON TABLE @extschema@.idempotency_keys IS
	'idempotency keys: one row per (scope, key) with its request fingerprint and stored response';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.idempotency_keys', '');

CREATE FUNCTION @extschema@.idem_begin(
	key pg_catalog.text,
	fingerprint pg_catalog.text DEFAULT NULL,
	ttl pg_catalog.interval DEFAULT '24 hours',
	scope pg_catalog.text DEFAULT '',
	wait pg_catalog.bool DEFAULT true)
RETURNS TABLE (status pg_catalog.text, response pg_catalog.jsonb)
AS 'MODULE_PATHNAME', 'consistency_idem_begin'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_begin(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
	'claim an idempotency key for this transaction: new, replay (with the stored response) or in_progress';

CREATE FUNCTION @extschema@.idem_complete(
	key pg_catalog.text,
	response pg_catalog.jsonb,
	scope pg_catalog.text DEFAULT '',
	attempt pg_catalog.int4 DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'consistency_idem_complete'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_complete(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4) IS
	'store the response of a key claimed in this transaction (or held by a lease), in the caller''s transaction';

CREATE FUNCTION @extschema@.idem_lease(
	key pg_catalog.text,
	fingerprint pg_catalog.text DEFAULT NULL,
	lease pg_catalog.interval DEFAULT '5 minutes',
	scope pg_catalog.text DEFAULT '',
	ttl pg_catalog.interval DEFAULT '24 hours',
	wait pg_catalog.bool DEFAULT true)
RETURNS TABLE (status pg_catalog.text, response pg_catalog.jsonb,
			   recovery_point pg_catalog.text, attempt pg_catalog.int4)
AS 'MODULE_PATHNAME', 'consistency_idem_lease'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_lease(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.interval, pg_catalog.bool) IS
	'take a key for an operation with external side effects: new, replay, in_progress or resume (after an expired lease)';

CREATE FUNCTION @extschema@.idem_checkpoint(
	key pg_catalog.text,
	recovery_point pg_catalog.text,
	scope pg_catalog.text DEFAULT '',
	attempt pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.timestamptz
AS 'MODULE_PATHNAME', 'consistency_idem_checkpoint'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_checkpoint(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
	'record how far a leased operation got and renew the lease; returns the new lease expiry';

CREATE FUNCTION @extschema@.idem_release(
	key pg_catalog.text,
	scope pg_catalog.text DEFAULT '',
	attempt pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'consistency_idem_release'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_release(pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
	'drop an unfinished claim or lease so the operation can be retried; false if there was none';

CREATE FUNCTION @extschema@.idem_purge(batch_size pg_catalog.int4 DEFAULT 10000)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_idem_purge'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_purge(pg_catalog.int4) IS
	'delete up to batch_size expired keys, skipping keys being claimed; returns how many were deleted';

REVOKE ALL ON @extschema@.idempotency_keys FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.idempotency_keys TO consistency_user;
REVOKE ALL ON FUNCTION
	@extschema@.idem_begin(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool),
	@extschema@.idem_complete(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_lease(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.interval, pg_catalog.bool),
	@extschema@.idem_checkpoint(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_release(pg_catalog.text, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_purge(pg_catalog.int4)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.idem_begin(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool),
	@extschema@.idem_complete(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_lease(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.interval, pg_catalog.bool),
	@extschema@.idem_checkpoint(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_release(pg_catalog.text, pg_catalog.text, pg_catalog.int4)
	TO consistency_user;
GRANT EXECUTE ON FUNCTION @extschema@.idem_purge(pg_catalog.int4) TO consistency_admin;

/* ------------------------------------------------------------------------------------------
 * Optimistic versioning (src/versioning.c, src/versioning_update.c)
 * ------------------------------------------------------------------------------------------
 */

/*
 * Three functions here do not pin search_path (sql/security.sql lists them):
 * version_guard runs no SQL and resolves no names, so a SET clause would only add a GUC
 * save/restore to every updated row; update_versioned and try_update_versioned run the
 * caller's UPDATE, whose triggers must see the caller's search_path as for a hand-written
 * UPDATE, while their own generated SQL qualifies every name and operator.
 */
CREATE FUNCTION @extschema@.version_guard()
RETURNS trigger
AS 'MODULE_PATHNAME', 'consistency_version_guard'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.version_guard() IS
	'BEFORE UPDATE FOR EACH ROW trigger: accept the version the client read and bump it, or raise a version conflict; args: [version column [, ''strict'']]';

CREATE FUNCTION @extschema@.enable_versioning(
	rel pg_catalog.regclass,
	version_column pg_catalog.name DEFAULT 'version',
	strict pg_catalog.bool DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'consistency_enable_versioning'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool) IS
	'add the version column (bigint NOT NULL DEFAULT 1) if missing and install the version_guard trigger';

CREATE FUNCTION @extschema@.disable_versioning(rel pg_catalog.regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'consistency_disable_versioning'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.disable_versioning(pg_catalog.regclass) IS
	'drop the version_guard trigger; the version column stays';

CREATE FUNCTION @extschema@.update_versioned(
	rel pg_catalog.regclass,
	key pg_catalog.jsonb,
	expected_version pg_catalog.int8,
	changes pg_catalog.jsonb,
	version_column pg_catalog.name DEFAULT 'version')
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_update_versioned'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.update_versioned(pg_catalog.regclass, pg_catalog.jsonb, pg_catalog.int8, pg_catalog.jsonb, pg_catalog.name) IS
	'update the row with primary key "key" if it is still at expected_version; returns the new version';

CREATE FUNCTION @extschema@.try_update_versioned(
	rel pg_catalog.regclass,
	key pg_catalog.jsonb,
	expected_version pg_catalog.int8,
	changes pg_catalog.jsonb,
	version_column pg_catalog.name DEFAULT 'version')
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_try_update_versioned'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.try_update_versioned(pg_catalog.regclass, pg_catalog.jsonb, pg_catalog.int8, pg_catalog.jsonb, pg_catalog.name) IS
	'update_versioned, but a version conflict returns NULL instead of raising';

REVOKE ALL ON FUNCTION
	@extschema@.version_guard(),
	@extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool),
	@extschema@.disable_versioning(pg_catalog.regclass),
	@extschema@.update_versioned(pg_catalog.regclass, pg_catalog.jsonb, pg_catalog.int8, pg_catalog.jsonb, pg_catalog.name),
	@extschema@.try_update_versioned(pg_catalog.regclass, pg_catalog.jsonb, pg_catalog.int8, pg_catalog.jsonb, pg_catalog.name)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.version_guard(),
	@extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool),
	@extschema@.disable_versioning(pg_catalog.regclass),
	@extschema@.update_versioned(pg_catalog.regclass, pg_catalog.jsonb, pg_catalog.int8, pg_catalog.jsonb, pg_catalog.name),
	@extschema@.try_update_versioned(pg_catalog.regclass, pg_catalog.jsonb, pg_catalog.int8, pg_catalog.jsonb, pg_catalog.name)
	TO consistency_user;

/* ------------------------------------------------------------------------------------------
 * Session LSN tokens (src/session_token.c, src/token_report.c, src/token_wait.c,
 * src/token_watcher.c)
 * ------------------------------------------------------------------------------------------
 */

CREATE FUNCTION @extschema@.write_token()
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_write_token'
LANGUAGE C VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.write_token() IS
	'on the primary, the token of this session''s last committed write (a token every standby satisfies if it wrote nothing)';

CREATE FUNCTION @extschema@.token_max(a pg_catalog.text, b pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_token_max'
LANGUAGE C IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.token_max(pg_catalog.text, pg_catalog.text) IS
	'the later of two tokens of the same cluster';

CREATE FUNCTION @extschema@.token_status(token pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_token_status'
LANGUAGE C VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.token_status(pg_catalog.text) IS
	'without waiting: ready, behind, wrong_cluster, diverged or primary';

CREATE FUNCTION @extschema@.wait_for_token(token pg_catalog.text, timeout pg_catalog.interval DEFAULT '1s')
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'consistency_wait_for_token'
LANGUAGE C VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.wait_for_token(pg_catalog.text, pg_catalog.interval) IS
	'wait until this server has replayed the token (true) or the timeout passed (false); holds the statement''s snapshot, see SET consistency.read_after';

CREATE FUNCTION @extschema@.standby_status()
RETURNS TABLE (pid pg_catalog.int4, application_name pg_catalog.text, client_addr pg_catalog.inet,
			   state pg_catalog.text, sync_state pg_catalog.text,
			   sent_lsn pg_catalog.pg_lsn, flush_lsn pg_catalog.pg_lsn, replay_lsn pg_catalog.pg_lsn,
			   replay_lag_bytes pg_catalog.numeric, replay_lag pg_catalog.interval,
			   reply_time pg_catalog.timestamptz)
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT s.pid, s.application_name, s.client_addr, s.state, s.sync_state,
		   s.sent_lsn, s.flush_lsn, s.replay_lsn,
		   pg_catalog.pg_wal_lsn_diff(
			   CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
					ELSE pg_catalog.pg_current_wal_lsn() END,
			   s.replay_lsn),
		   s.replay_lag, s.reply_time
	  FROM pg_catalog.pg_stat_replication AS s
	 ORDER BY s.application_name, s.pid
$$;
COMMENT ON FUNCTION @extschema@.standby_status() IS
	'each streaming standby''s replay position and lag in bytes and time (positions need pg_read_all_stats)';

REVOKE ALL ON FUNCTION
	@extschema@.write_token(),
	@extschema@.token_max(pg_catalog.text, pg_catalog.text),
	@extschema@.token_status(pg_catalog.text),
	@extschema@.wait_for_token(pg_catalog.text, pg_catalog.interval),
	@extschema@.standby_status()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.write_token(),
	@extschema@.token_max(pg_catalog.text, pg_catalog.text),
	@extschema@.token_status(pg_catalog.text),
	@extschema@.wait_for_token(pg_catalog.text, pg_catalog.interval),
	@extschema@.standby_status()
	TO consistency_user;
-- monitoring roles may list the standbys (and nothing else: PUBLIC can execute nothing here)
GRANT USAGE ON SCHEMA @extschema@ TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.standby_status() TO pg_monitor;

/* ------------------------------------------------------------------------------------------
 * In-doubt two-phase commit (src/twophase_helpers.c, src/twophase_resolve.c)
 * ------------------------------------------------------------------------------------------
 */

-- The coordinator's decision log: one row per gid whose coordinator transaction decided, written
-- by that transaction itself (tpc_log_decision), so a decision exists iff the coordinator
-- committed with it.  No row means abort (presumed abort).
CREATE TABLE @extschema@.tpc_decisions (
	gid               pg_catalog.text        PRIMARY KEY,
	decision          pg_catalog.text        NOT NULL,
	coordinator_sysid pg_catalog.int8        NOT NULL,
	coordinator_xid   pg_catalog.xid8        NOT NULL,
	decided_at        pg_catalog.timestamptz NOT NULL,
	CONSTRAINT tpc_decisions_decision_check
		CHECK (decision OPERATOR(pg_catalog.=) ANY (ARRAY['commit', 'abort']))
);
CREATE INDEX tpc_decisions_coordinator_idx ON @extschema@.tpc_decisions (coordinator_sysid, coordinator_xid);
COMMENT ON TABLE @extschema@.tpc_decisions IS
	'two-phase commit decision log: the decision of each coordinator transaction, logged before phase 2';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tpc_decisions', '');

-- Every resolution the resolver executed (or attempted), written by its background worker in its
-- own transaction: it stays even if the caller's transaction rolls back.
CREATE TABLE @extschema@.tpc_resolution_log (
	id           pg_catalog.int8        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	resolved_at  pg_catalog.timestamptz NOT NULL,
	gid          pg_catalog.text        NOT NULL,
	database     pg_catalog.name        NOT NULL,
	xid          pg_catalog.xid,
	owner        pg_catalog.name,
	prepared_at  pg_catalog.timestamptz,
	requested    pg_catalog.text        NOT NULL,
	action       pg_catalog.text        NOT NULL,
	heuristic    pg_catalog.bool        NOT NULL,
	verdict      pg_catalog.text        NOT NULL,
	evidence     pg_catalog.text        NOT NULL,
	outcome      pg_catalog.text        NOT NULL,
	error        pg_catalog.text,
	resolved_by  pg_catalog.name        NOT NULL,
	CONSTRAINT tpc_resolution_log_action_check
		CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY['commit', 'rollback'])),
	CONSTRAINT tpc_resolution_log_outcome_check
		CHECK (outcome OPERATOR(pg_catalog.=) ANY (ARRAY['committed', 'rolled_back', 'already_resolved', 'busy', 'failed']))
);
CREATE INDEX tpc_resolution_log_gid_idx ON @extschema@.tpc_resolution_log (gid);
COMMENT ON TABLE @extschema@.tpc_resolution_log IS
	'every COMMIT/ROLLBACK PREPARED the resolver executed or attempted, with its evidence and result';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tpc_resolution_log', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tpc_resolution_log_id_seq', '');

CREATE FUNCTION @extschema@.tpc_gid(participant pg_catalog.text DEFAULT '')
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_tpc_gid'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.tpc_gid(pg_catalog.text) IS
	'a gid naming this transaction (cluster, database, xid) as the coordinator of a distributed transaction';

CREATE FUNCTION @extschema@.tpc_log_decision(gid pg_catalog.text, decision pg_catalog.text DEFAULT 'commit')
RETURNS void
AS 'MODULE_PATHNAME', 'consistency_tpc_log_decision'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.tpc_log_decision(pg_catalog.text, pg_catalog.text) IS
	'log the coordinator''s decision (commit or abort) for a gid, in the coordinator transaction, before phase 2';

CREATE FUNCTION @extschema@.prepared_xacts(min_age pg_catalog.interval DEFAULT '0')
RETURNS TABLE (gid pg_catalog.text, xid pg_catalog.xid, database pg_catalog.name, owner pg_catalog.name,
			   prepared_at pg_catalog.timestamptz, age pg_catalog.interval, xid_age pg_catalog.int4,
			   pins_xmin_horizon pg_catalog.bool, lock_count pg_catalog.int4,
			   relations pg_catalog.text[], blocked_pids pg_catalog.int4[],
			   verdict pg_catalog.text, evidence pg_catalog.text)
AS 'MODULE_PATHNAME', 'consistency_prepared_xacts'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.prepared_xacts(pg_catalog.interval) IS
	'every prepared transaction of the cluster: its locks, whom it blocks, and what the resolver would do and why';

CREATE FUNCTION @extschema@.resolve_prepared(
	gid pg_catalog.text,
	action pg_catalog.text DEFAULT 'auto',
	dry_run pg_catalog.bool DEFAULT true,
	force pg_catalog.bool DEFAULT false)
RETURNS TABLE (database pg_catalog.name, planned pg_catalog.text, executed pg_catalog.bool,
			   outcome pg_catalog.text, reason pg_catalog.text)
AS 'MODULE_PATHNAME', 'consistency_resolve_prepared'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.resolve_prepared(pg_catalog.text, pg_catalog.text, pg_catalog.bool, pg_catalog.bool) IS
	'commit or roll back one prepared transaction following the decision log (dry run by default); not undone if the caller rolls back';

CREATE FUNCTION @extschema@.resolve_stale(
	min_age pg_catalog.interval DEFAULT '10 minutes',
	dry_run pg_catalog.bool DEFAULT true)
RETURNS TABLE (gid pg_catalog.text, database pg_catalog.name, planned pg_catalog.text,
			   executed pg_catalog.bool, outcome pg_catalog.text, reason pg_catalog.text)
AS 'MODULE_PATHNAME', 'consistency_resolve_stale'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.resolve_stale(pg_catalog.interval, pg_catalog.bool) IS
	'resolve every prepared transaction older than min_age that the caller may finish, following the decision log (dry run by default)';

-- Guards (C row triggers; they run no SQL).  consistency_user may insert decisions, but only a
-- row that names the inserting transaction as its coordinator (what tpc_log_decision writes):
-- nobody can log a decision for another coordinator's gid.  consistency_admin may insert
-- resolution log rows only through the resolver's worker.  Superusers are not checked (they
-- could disable the triggers anyway, and restores need it).
CREATE FUNCTION @extschema@.tpc_decisions_guard()
RETURNS trigger
AS 'MODULE_PATHNAME', 'consistency_tpc_decisions_guard'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.tpc_decisions_guard() IS
	'trigger: a decision may only be written by the coordinator transaction its gid names';
CREATE TRIGGER tpc_decisions_guard BEFORE INSERT OR UPDATE ON @extschema@.tpc_decisions
	FOR EACH ROW EXECUTE FUNCTION @extschema@.tpc_decisions_guard();

CREATE FUNCTION @extschema@.tpc_resolution_log_guard()
RETURNS trigger
AS 'MODULE_PATHNAME', 'consistency_tpc_resolution_log_guard'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.tpc_resolution_log_guard() IS
	'trigger: only the resolver''s background worker writes the resolution log';
CREATE TRIGGER tpc_resolution_log_guard BEFORE INSERT OR UPDATE ON @extschema@.tpc_resolution_log
	FOR EACH ROW EXECUTE FUNCTION @extschema@.tpc_resolution_log_guard();

REVOKE ALL ON @extschema@.tpc_decisions, @extschema@.tpc_resolution_log FROM PUBLIC;
GRANT SELECT, INSERT ON @extschema@.tpc_decisions TO consistency_user;
GRANT DELETE ON @extschema@.tpc_decisions TO consistency_admin;
GRANT SELECT, INSERT ON @extschema@.tpc_resolution_log TO consistency_admin;
GRANT SELECT ON @extschema@.tpc_decisions, @extschema@.tpc_resolution_log TO pg_monitor;
GRANT USAGE ON SCHEMA @extschema@ TO pg_monitor;
REVOKE ALL ON FUNCTION
	@extschema@.tpc_gid(pg_catalog.text),
	@extschema@.tpc_log_decision(pg_catalog.text, pg_catalog.text),
	@extschema@.prepared_xacts(pg_catalog.interval),
	@extschema@.resolve_prepared(pg_catalog.text, pg_catalog.text, pg_catalog.bool, pg_catalog.bool),
	@extschema@.resolve_stale(pg_catalog.interval, pg_catalog.bool),
	@extschema@.tpc_decisions_guard(),
	@extschema@.tpc_resolution_log_guard()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.tpc_gid(pg_catalog.text),
	@extschema@.tpc_log_decision(pg_catalog.text, pg_catalog.text)
	TO consistency_user;
GRANT EXECUTE ON FUNCTION @extschema@.prepared_xacts(pg_catalog.interval) TO consistency_admin, pg_monitor;
GRANT EXECUTE ON FUNCTION
	@extschema@.resolve_prepared(pg_catalog.text, pg_catalog.text, pg_catalog.bool, pg_catalog.bool),
	@extschema@.resolve_stale(pg_catalog.interval, pg_catalog.bool)
	TO consistency_admin;

/* ------------------------------------------------------------------------------------------
 * Inventory reservations (src/inventory.c, src/inventory_slots.c, src/inventory_stock.c)
 * ------------------------------------------------------------------------------------------
 */

/*
 * One row per (sku, slot): a SKU's stock is the sum over its slots (slots = 1 for most SKUs;
 * a hot SKU spreads its stock over several lock rows).  The CHECKs make oversell impossible
 * even for code that bypasses the functions.  Updates touch only on_hand and reserved (no
 * index on them), and the low fillfactor leaves room on the page, so they are HOT updates.
 * PostgreSQL 15 parses a table's CHECK constraints from their stored text on every statement
 * that writes the table, so the hot tables keep one CHECK each (the one that forbids
 * oversell); value ranges are domains, checked only where a value is assigned (INSERT, or an
 * UPDATE of that column) from a definition cached per backend.
 */
CREATE DOMAIN @extschema@.inventory_slot AS pg_catalog.int4
	CHECK (VALUE OPERATOR(pg_catalog.>=) 0 AND VALUE OPERATOR(pg_catalog.<) 64);
CREATE DOMAIN @extschema@.reservation_qty AS pg_catalog.int8
	CHECK (VALUE OPERATOR(pg_catalog.>) 0);

CREATE TABLE @extschema@.inventory (
	sku      pg_catalog.text NOT NULL,
	slot     @extschema@.inventory_slot NOT NULL DEFAULT 0,
	on_hand  pg_catalog.int8 NOT NULL,
	reserved pg_catalog.int8 NOT NULL DEFAULT 0,
	PRIMARY KEY (sku, slot),
	CONSTRAINT inventory_stock_check
		CHECK (reserved OPERATOR(pg_catalog.>=) 0 AND reserved OPERATOR(pg_catalog.<=) on_hand)
) WITH (fillfactor = 30);
COMMENT ON TABLE @extschema@.inventory IS
	'stock per SKU and slot: available = on_hand - reserved, summed over the slots';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.inventory', '');

/*
 * One row per SKU of a reservation ("line"); reserve() makes line 0 only.  Line 0's primary
 * key is the claim on the reservation id.
 */
CREATE TYPE @extschema@.reservation_status AS ENUM ('active', 'confirmed', 'released', 'expired');

CREATE TABLE @extschema@.reservations (
	reservation_id pg_catalog.text        NOT NULL,
	line           pg_catalog.int4        NOT NULL DEFAULT 0,
	sku            pg_catalog.text        NOT NULL,
	qty            @extschema@.reservation_qty NOT NULL,
	status         @extschema@.reservation_status NOT NULL DEFAULT 'active',
	created_at     pg_catalog.timestamptz NOT NULL,
	expires_at     pg_catalog.timestamptz NOT NULL,
	PRIMARY KEY (reservation_id, line)
);
CREATE INDEX reservations_expiry_idx ON @extschema@.reservations (expires_at)
	WHERE status OPERATOR(pg_catalog.=) 'active' AND line OPERATOR(pg_catalog.=) 0;
COMMENT ON TABLE @extschema@.reservations IS
	'reservations: one row per SKU, status active, confirmed, released or expired';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reservations', '');

CREATE FUNCTION @extschema@.stock_set(
	sku pg_catalog.text,
	on_hand pg_catalog.int8,
	slots pg_catalog.int4 DEFAULT 1)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_stock_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.stock_set(pg_catalog.text, pg_catalog.int8, pg_catalog.int4) IS
	'create a SKU or set its stock on hand, spread over slots lock rows; returns the available units';

CREATE FUNCTION @extschema@.stock_add(sku pg_catalog.text, delta pg_catalog.int8)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_stock_add'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.stock_add(pg_catalog.text, pg_catalog.int8) IS
	'restock (or write off, with a negative delta) a SKU; returns the available units';

CREATE FUNCTION @extschema@.reserve(
	sku pg_catalog.text,
	qty pg_catalog.int8,
	reservation_id pg_catalog.text,
	ttl pg_catalog.interval DEFAULT '15 minutes',
	wait pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_reserve'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.reserve(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool) IS
	'reserve qty units of a SKU under an idempotent reservation id: reserved, insufficient or busy';

CREATE FUNCTION @extschema@.reserve_all(
	reservation_id pg_catalog.text,
	skus pg_catalog.text[],
	qtys pg_catalog.int8[],
	ttl pg_catalog.interval DEFAULT '15 minutes')
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_reserve_all'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.reserve_all(pg_catalog.text, pg_catalog.text[], pg_catalog.int8[], pg_catalog.interval) IS
	'reserve several SKUs all-or-nothing under one reservation id: reserved or insufficient';

CREATE FUNCTION @extschema@.confirm(reservation_id pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_confirm'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.confirm(pg_catalog.text) IS
	'sell an active reservation: on_hand and reserved drop; returns the units sold';

CREATE FUNCTION @extschema@.release(reservation_id pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_release'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.release(pg_catalog.text) IS
	'give an active reservation''s stock back; returns the units returned (0 if none were held)';

CREATE FUNCTION @extschema@.expire_reservations(batch_size pg_catalog.int4 DEFAULT 1000)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_expire_reservations'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.expire_reservations(pg_catalog.int4) IS
	'expire up to batch_size reservations past their expiry and return their stock; returns how many';

CREATE FUNCTION @extschema@.available(sku pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_available'
LANGUAGE C STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.available(pg_catalog.text) IS
	'units of a SKU on hand and not reserved (a plain read; works on a standby)';

CREATE FUNCTION @extschema@.check_inventory()
RETURNS TABLE (sku pg_catalog.text, problem pg_catalog.text)
AS 'MODULE_PATHNAME', 'consistency_check_inventory'
LANGUAGE C STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.check_inventory() IS
	'every violated inventory invariant, one row each; empty when all hold';

REVOKE ALL ON @extschema@.inventory, @extschema@.reservations FROM PUBLIC;
REVOKE ALL ON TYPE @extschema@.reservation_status FROM PUBLIC;
GRANT USAGE ON TYPE @extschema@.reservation_status TO consistency_user;
/*
 * The functions run with the caller's rights (no SECURITY DEFINER), so their callers need
 * these table privileges and are trusted with the rows: only the columns the functions
 * change may be updated (a line's SKU or quantity, a slot's SKU or number never); DELETE on
 * reservations is for an attempt that answers 'insufficient' or 'busy' and removes its row.
 */
GRANT SELECT, UPDATE (on_hand, reserved) ON @extschema@.inventory TO consistency_user;
GRANT INSERT, DELETE ON @extschema@.inventory TO consistency_admin;
GRANT SELECT, INSERT, UPDATE (status), DELETE ON @extschema@.reservations TO consistency_user;
REVOKE ALL ON FUNCTION
	@extschema@.stock_set(pg_catalog.text, pg_catalog.int8, pg_catalog.int4),
	@extschema@.stock_add(pg_catalog.text, pg_catalog.int8),
	@extschema@.reserve(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool),
	@extschema@.reserve_all(pg_catalog.text, pg_catalog.text[], pg_catalog.int8[], pg_catalog.interval),
	@extschema@.confirm(pg_catalog.text),
	@extschema@.release(pg_catalog.text),
	@extschema@.expire_reservations(pg_catalog.int4),
	@extschema@.available(pg_catalog.text),
	@extschema@.check_inventory()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.reserve(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool),
	@extschema@.reserve_all(pg_catalog.text, pg_catalog.text[], pg_catalog.int8[], pg_catalog.interval),
	@extschema@.confirm(pg_catalog.text),
	@extschema@.release(pg_catalog.text),
	@extschema@.available(pg_catalog.text)
	TO consistency_user;
GRANT EXECUTE ON FUNCTION
	@extschema@.stock_set(pg_catalog.text, pg_catalog.int8, pg_catalog.int4),
	@extschema@.stock_add(pg_catalog.text, pg_catalog.int8),
	@extschema@.expire_reservations(pg_catalog.int4),
	@extschema@.check_inventory()
	TO consistency_admin;
