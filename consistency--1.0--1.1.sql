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

-- ---------------------------------------------------------------------------
-- Optimistic versioning
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- Session LSN tokens
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- In-doubt two-phase commit
-- ---------------------------------------------------------------------------

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
