-- pgTAP: the privilege boundary of every object the extension installs, for every role that
-- matters: PUBLIC, consistency_user, consistency_admin (a member of consistency_user, so it
-- holds everything consistency_user holds) and pg_monitor.
--
-- The expectations below are written out by hand on purpose: a grant added or lost by any
-- change, or a new function or table without an expectation here, fails this file.  Application
-- roles get functions, not write access: no role holds INSERT, UPDATE, DELETE, TRUNCATE,
-- REFERENCES or TRIGGER on any extension table, nor a column-level write privilege; the
-- functions write the tables as their owner (src/table_owner.c).
BEGIN;

CREATE TEMP TABLE roles (role name PRIMARY KEY);
INSERT INTO roles VALUES ('public'), ('consistency_user'), ('consistency_admin'), ('pg_monitor');

-- Functions: signature (as regprocedure prints it) and the roles that may execute it.
CREATE TEMP TABLE fn_expected (sig text PRIMARY KEY, who text NOT NULL
	CHECK (who IN ('user', 'admin', 'admin+monitor', 'user+monitor')));
INSERT INTO fn_expected VALUES
	-- idempotency keys
	('consistency.idem_begin(text,text,interval,text,boolean)', 'user'),
	('consistency.idem_complete(text,jsonb,text,integer)', 'user'),
	('consistency.idem_claim(text,text,interval,text,boolean)', 'user'),
	('consistency.idem_finish(text,jsonb,text,integer)', 'user'),
	('consistency.idem_lease(text,text,interval,text,interval,boolean)', 'user'),
	('consistency.idem_checkpoint(text,text,text,integer)', 'user'),
	('consistency.idem_release(text,text,integer)', 'user'),
	('consistency.idem_purge(integer)', 'admin'),
	-- optimistic versioning
	('consistency.version_guard()', 'user'),
	('consistency.enable_versioning(regclass,name,boolean,text)', 'user'),
	('consistency.disable_versioning(regclass)', 'user'),
	('consistency.update_versioned(regclass,jsonb,bigint,jsonb,name)', 'user'),
	('consistency.try_update_versioned(regclass,jsonb,bigint,jsonb,name)', 'user'),
	-- session LSN tokens
	('consistency.write_token()', 'user'),
	('consistency.token_max(text,text)', 'user'),
	('consistency.token_status(text)', 'user'),
	('consistency.wait_for_token(text,interval)', 'user'),
	('consistency.standby_status()', 'user+monitor'),
	-- in-doubt two-phase commit
	('consistency.tpc_gid(text)', 'user'),
	('consistency.tpc_log_decision(text,text)', 'user'),
	('consistency.prepared_xacts(interval)', 'admin+monitor'),
	('consistency.resolve_prepared(text,text,boolean,boolean)', 'admin'),
	('consistency.resolve_stale(interval,boolean)', 'admin'),
	('consistency.tpc_prune_decisions(interval)', 'admin'),
	-- inventory reservation
	('consistency.reserve(text,bigint,text,interval,boolean)', 'user'),
	('consistency.reserve_all(text,text[],bigint[],interval)', 'user'),
	('consistency.reserve_now(text,bigint,text,interval,boolean)', 'user'),
	('consistency.confirm(text)', 'user'),
	('consistency.release(text)', 'user'),
	('consistency.available(text)', 'user'),
	('consistency.stock_set(text,bigint,integer)', 'admin'),
	('consistency.stock_add(text,bigint)', 'admin'),
	('consistency.expire_reservations(integer)', 'admin'),
	('consistency.check_inventory()', 'admin'),
	('consistency.merge_slots(integer)', 'admin'),
	-- operations
	('consistency.stats_read()', 'user+monitor'),
	('consistency.stats_reset()', 'admin'),
	('consistency.maintenance(integer,integer)', 'admin');
-- Trigger functions nobody calls directly: no role may execute them (PostgreSQL does not
-- check EXECUTE when it fires a trigger).
CREATE TEMP TABLE fn_nobody (sig text PRIMARY KEY);
INSERT INTO fn_nobody VALUES
	('consistency.tpc_decisions_guard()'),
	('consistency.tpc_resolution_log_guard()');

-- Tables: the privileges each role holds (anything else it must not hold).
CREATE TEMP TABLE tab_expected (tab name, role name, privs text[], PRIMARY KEY (tab, role));
INSERT INTO tab_expected
SELECT t.tab, r.role, '{}' FROM roles r,
	(VALUES ('idempotency_keys'), ('tpc_decisions'), ('tpc_resolution_log'),
			('inventory'), ('reservations'), ('stats')) t(tab);
UPDATE tab_expected SET privs = '{SELECT}' WHERE (tab, role) IN (
	('idempotency_keys', 'consistency_user'), ('idempotency_keys', 'consistency_admin'),
	('tpc_decisions', 'consistency_user'), ('tpc_decisions', 'consistency_admin'),
	('tpc_decisions', 'pg_monitor'),
	('tpc_resolution_log', 'consistency_admin'), ('tpc_resolution_log', 'pg_monitor'),
	('reservations', 'consistency_user'), ('reservations', 'consistency_admin'),
	('inventory', 'consistency_admin'),
	('stats', 'consistency_user'), ('stats', 'consistency_admin'), ('stats', 'pg_monitor'));

SELECT plan(4
	+ (SELECT count(*)::int FROM fn_expected) * (SELECT count(*)::int FROM roles)
	+ (SELECT count(*)::int FROM fn_nobody) * (SELECT count(*)::int FROM roles)
	+ (SELECT count(*)::int FROM tab_expected));

-- Every function and table of the schema has an expectation here, and nothing more.
SELECT set_eq(
	$$SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'consistency'::regnamespace$$,
	$$SELECT sig FROM fn_expected UNION ALL SELECT sig FROM fn_nobody$$,
	'every function of the schema has a privilege expectation');
SELECT set_eq(
	$$SELECT c.relname::text FROM pg_catalog.pg_class c
	   WHERE c.relnamespace = 'consistency'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')$$,
	$$SELECT DISTINCT tab::text FROM tab_expected$$,
	'every table of the schema has a privilege expectation');

SELECT function_privs_are(
	split_part(f.sig, '.', 1),
	split_part(split_part(f.sig, '.', 2), '(', 1),
	CASE WHEN f.sig LIKE '%()' THEN '{}'::text[]
		 ELSE string_to_array(rtrim(split_part(f.sig, '(', 2), ')'), ',') END,
	r.role,
	CASE WHEN (r.role = 'consistency_user' AND f.who IN ('user', 'user+monitor'))
		   OR (r.role = 'consistency_admin')
		   OR (r.role = 'pg_monitor' AND f.who IN ('admin+monitor', 'user+monitor'))
		 THEN '{EXECUTE}'::text[] ELSE '{}'::text[] END,
	format('%s: EXECUTE for %s is as documented', f.sig, r.role))
  FROM fn_expected f CROSS JOIN roles r
 ORDER BY f.sig, r.role;

SELECT function_privs_are(
	split_part(f.sig, '.', 1),
	split_part(split_part(f.sig, '.', 2), '(', 1),
	'{}'::text[], r.role, '{}'::text[],
	format('%s: no role executes it', f.sig))
  FROM fn_nobody f CROSS JOIN roles r
 ORDER BY f.sig, r.role;

SELECT table_privs_are('consistency', t.tab, t.role, t.privs,
	format('consistency.%s: %s holds exactly %s', t.tab, t.role, t.privs))
  FROM tab_expected t
 ORDER BY t.tab, t.role;

-- No column-level write privilege either (REVOKE on the table removes column grants too,
-- and a column grant would not show in table_privs_are above).
SELECT is_empty(
	$$SELECT c.relname, r.role, p.priv
	    FROM pg_catalog.pg_class c, roles r,
	         (VALUES ('INSERT'), ('UPDATE'), ('REFERENCES')) p(priv)
	   WHERE c.relnamespace = 'consistency'::regnamespace AND c.relkind = 'r'
	     AND pg_catalog.has_any_column_privilege(r.role, c.oid, p.priv)$$,
	'no role holds a column-level INSERT, UPDATE or REFERENCES on an extension table');

-- The types the application uses are usable; nothing else is granted on the schema to PUBLIC.
SELECT ok(NOT pg_catalog.has_schema_privilege('public', 'consistency', 'USAGE')
		  AND pg_catalog.has_schema_privilege('consistency_user', 'consistency', 'USAGE')
		  AND NOT pg_catalog.has_schema_privilege('consistency_user', 'consistency', 'CREATE'),
	'schema: USAGE for consistency_user only, CREATE for nobody but the owner');

SELECT * FROM finish();
ROLLBACK;
