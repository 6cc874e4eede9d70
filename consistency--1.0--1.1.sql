-- consistency--1.0--1.1.sql: everything added or changed since 1.0.
--
-- 1.0 has shipped and its install script is frozen; CREATE EXTENSION runs
-- consistency--1.0.sql and then this file, and ALTER EXTENSION consistency
-- UPDATE runs this file on a 1.0 database.  The shared library keeps every
-- 1.0 C entry point working, so a 1.0 database keeps working on the new
-- library before it is updated.
--
-- Rules as in 1.0: every object and built-in schema-qualified, functions pin
-- search_path, no CREATE OR REPLACE (new objects only; a changed definition
-- is DROPped and re-created, or ALTERed), no SECURITY DEFINER.
--
-- One section per capability, in the order of the 1.0 script.

\echo Use "ALTER EXTENSION consistency UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Idempotency keys
-- ---------------------------------------------------------------------------

-- The functions read and write idempotency_keys as its owner (src/table_owner.c), so
-- application roles need no write privilege on it, and must have none: with it, any member
-- of consistency_user could rewrite a stored response that retries then replay.
-- consistency_user keeps SELECT: the README documents that it can read the table (scope is
-- a key space, not a permission boundary).  consistency_admin never had a grant of its own.
REVOKE INSERT, UPDATE, DELETE ON @extschema@.idempotency_keys FROM consistency_user;

-- ---------------------------------------------------------------------------
-- Optimistic versioning
-- ---------------------------------------------------------------------------

-- enable_versioning gains the convention of the version a client sends back: 'read' (1.0's,
-- the default) or 'increment' (ORMs: the version read plus one).  A fourth argument with a
-- default next to the 1.0 function would make every call with three or fewer arguments
-- ambiguous, so the 1.0 function is replaced (its C entry point stays, for databases not yet
-- updated).  Triggers installed by 1.0 have no mode argument and keep mode 'read'.
DROP FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool);
CREATE FUNCTION @extschema@.enable_versioning(
	rel pg_catalog.regclass,
	version_column pg_catalog.name DEFAULT 'version',
	strict pg_catalog.bool DEFAULT false,
	mode pg_catalog.text DEFAULT 'read')
RETURNS void
AS 'MODULE_PATHNAME', 'consistency_enable_versioning_1_1'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool, pg_catalog.text) IS
	'add the version column (bigint NOT NULL DEFAULT 1) if missing and install the version_guard trigger; mode ''read'' (the client sends the version it read) or ''increment'' (the version read plus one, as ORMs do)';
REVOKE ALL ON FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool, pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.bool, pg_catalog.text) TO consistency_user;
COMMENT ON FUNCTION @extschema@.version_guard() IS
	'BEFORE UPDATE FOR EACH ROW trigger: accept the version the client read (mode ''read'') or that plus one (''increment'') and store the next version, or raise a version conflict; args: [version column [, ''strict''] [, ''read'' | ''increment'']]';

-- ---------------------------------------------------------------------------
-- Session LSN tokens
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- In-doubt two-phase commit
-- ---------------------------------------------------------------------------

-- Gids now carry a random nonce, one per coordinator transaction (format 2,
-- cy2:<sysid>:<database oid>:<xid8>:<nonce>[:<label>]), so that a coordinator
-- xid handed out again after a failover or a point-in-time recovery names
-- another transaction.  The decision log records the nonce; a decision counts
-- for a gid only under the same nonce.  Rows of 1.0's gids (cy1:..., no
-- nonce; still prepared at upgrade time, say) keep NULL, and 1.0's rule.
ALTER TABLE @extschema@.tpc_decisions
	ADD COLUMN coordinator_nonce pg_catalog.text,
	ADD CONSTRAINT tpc_decisions_nonce_check
		CHECK (coordinator_nonce OPERATOR(pg_catalog.~) '^[0-9a-f]{16}$');
COMMENT ON COLUMN @extschema@.tpc_decisions.coordinator_nonce IS
	'the gid''s nonce (16 hex digits), NULL for a gid made by 1.0';
-- Decisions logged while this database was still at 1.0 but the 1.1 library was loaded
-- have format-2 gids but no nonce column to record them in: fill it from the gid, or the
-- resolver's lookup by nonce would not find them.  The guard trigger refuses any row not
-- written by the transaction it names, so it is off for this one statement of the script.
ALTER TABLE @extschema@.tpc_decisions DISABLE TRIGGER tpc_decisions_guard;
UPDATE @extschema@.tpc_decisions
   SET coordinator_nonce = pg_catalog.split_part(gid, ':', 5)
 WHERE gid OPERATOR(pg_catalog.~) '^cy2:[0-9]+:[0-9]+:[0-9]+:[0-9a-f]{16}(:|$)'
   AND coordinator_nonce IS NULL;
ALTER TABLE @extschema@.tpc_decisions ENABLE TRIGGER tpc_decisions_guard;

-- The privilege boundary: both logs are written by the functions, as the tables' owner.  No
-- role keeps INSERT, UPDATE or DELETE; consistency_user keeps reading the decision log (a
-- restarted coordinator reads its decisions to finish phase 2), consistency_admin reading the
-- resolution log, pg_monitor reading both.
REVOKE INSERT ON @extschema@.tpc_decisions FROM consistency_user;
REVOKE DELETE ON @extschema@.tpc_decisions FROM consistency_admin;
REVOKE INSERT ON @extschema@.tpc_resolution_log FROM consistency_admin;

-- Pruning the decision log, for consistency_admin (it has no DELETE on the table).
CREATE FUNCTION @extschema@.tpc_prune_decisions(min_age pg_catalog.interval)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_tpc_prune_decisions'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.tpc_prune_decisions(pg_catalog.interval) IS
	'delete decisions logged at least min_age ago, except those of a transaction with a participant still prepared in this cluster';
REVOKE ALL ON FUNCTION @extschema@.tpc_prune_decisions(pg_catalog.interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.tpc_prune_decisions(pg_catalog.interval) TO consistency_admin;

-- The guards now check every row, whoever writes it (the owner and superusers included).
COMMENT ON FUNCTION @extschema@.tpc_decisions_guard() IS
	'trigger: a decision row must agree with its gid, and one for this database may only be written by the coordinator transaction it names';
COMMENT ON FUNCTION @extschema@.tpc_resolution_log_guard() IS
	'trigger: resolution log rows are never changed; rows not written by the resolver''s worker must be consistent and come from the owner';

-- ---------------------------------------------------------------------------
-- Inventory reservation
-- ---------------------------------------------------------------------------

/*
 * The functions read and write consistency.inventory and consistency.reservations as the
 * tables' owner (src/table_owner.c), so no application role needs, or keeps, a write
 * privilege on them: a direct INSERT, UPDATE or DELETE (or a row lock) by consistency_user
 * or consistency_admin is refused (42501), and only the owner can write around the
 * functions.  Reads stay where the README documents one: consistency_user (and so
 * consistency_admin) reads reservations, consistency_admin also the slot rows; buyers read
 * stock with available().
 */
REVOKE ALL ON @extschema@.inventory, @extschema@.reservations FROM consistency_user, consistency_admin;
GRANT SELECT ON @extschema@.reservations TO consistency_user;
GRANT SELECT ON @extschema@.inventory TO consistency_admin;
