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
