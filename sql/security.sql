-- Security properties of every object the extension installs (new objects are covered
-- automatically): search_path pinned, no SECURITY DEFINER, nothing executable by PUBLIC
-- without a grant, user-data tables registered for pg_dump; and the functions keep working
-- under a hostile search_path.

-- Every function pins search_path to pg_catalog, pg_temp, except these, each listed here
-- on purpose (none is SECURITY DEFINER, so the caller's search_path is the caller's own):
-- * version_guard(), a C trigger that runs no SQL and resolves no names: a SET clause would
--   only add a GUC save and restore to every row an UPDATE touches;
-- * update_versioned() and try_update_versioned(), which run the caller's UPDATE and so fire
--   the caller's triggers, which must see the caller's search_path as they would for a
--   hand-written UPDATE.  Their own SQL qualifies every name and operator
--   (sql/versioning_update.sql runs them under a hostile search_path);
-- * idem_begin() and idem_complete(), and their one-value forms idem_claim() and
--   idem_finish(), called by every idempotent request: the SET clause was a GUC save, parse
--   and restore on each call, 6% of an idempotent order's instructions.
--   Their fast path resolves no names and their SPI statements qualify every name and
--   operator (the hostile search_path below runs every path they have);
-- * reserve(), reserve_now(), reserve_all(), confirm() and release(), the calls of every order: the SET
--   clause was about a tenth of a one-client reservation.  They resolve no names in C and
--   every statement they run qualifies every name and operator (the hostile search_path
--   below runs their single-session paths, test/specs/inventory_hostile.spec a split);
-- * maintenance(), a procedure that commits between batches, which a procedure with a SET
--   clause cannot do.  It qualifies every name and operator (sql/maintenance.sql runs it
--   under a hostile search_path).
SELECT p.oid::regprocedure AS function_without_pinned_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'consistency'::regnamespace
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
   AND p.oid::regprocedure::text NOT IN (
		'consistency.version_guard()',
		'consistency.idem_begin(text,text,interval,text,boolean)',
		'consistency.idem_complete(text,jsonb,text,integer)',
		'consistency.idem_claim(text,text,interval,text,boolean)',
		'consistency.idem_finish(text,jsonb,text,integer)',
		'consistency.update_versioned(regclass,jsonb,bigint,jsonb,name)',
		'consistency.try_update_versioned(regclass,jsonb,bigint,jsonb,name)',
		'consistency.reserve(text,bigint,text,interval,boolean)',
		'consistency.reserve_all(text,text[],bigint[],interval)',
		'consistency.reserve_now(text,bigint,text,interval,boolean)',
		'consistency.confirm(text)',
		'consistency.release(text)',
		'consistency.maintenance(integer,integer)')
 ORDER BY 1;

-- No SECURITY DEFINER function.
SELECT p.oid::regprocedure AS security_definer_function
  FROM pg_proc p
 WHERE p.pronamespace = 'consistency'::regnamespace AND p.prosecdef
 ORDER BY 1;

-- PUBLIC can execute nothing in the schema: every function is granted to a documented role.
SELECT p.oid::regprocedure AS function_executable_by_public
  FROM pg_proc p
 WHERE p.pronamespace = 'consistency'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;
SELECT p.oid::regprocedure AS function_nobody_may_call
  FROM pg_proc p
 WHERE p.pronamespace = 'consistency'::regnamespace
   AND NOT has_function_privilege('consistency_user', p.oid, 'EXECUTE')
   AND NOT has_function_privilege('consistency_admin', p.oid, 'EXECUTE')
   AND NOT has_function_privilege('pg_monitor', p.oid, 'EXECUTE')
   AND p.prorettype <> 'trigger'::regtype
 ORDER BY 1;

-- Every table of the extension is dumped by pg_dump.
SELECT c.oid::regclass AS table_not_in_dump
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'consistency'
 WHERE c.relkind = 'r'
   AND NOT c.oid = ANY (coalesce(e.extconfig, '{}'))
 ORDER BY 1;

-- PUBLIC has no privileges on the tables.
SELECT c.oid::regclass AS table_readable_by_public
  FROM pg_class c
 WHERE c.relnamespace = 'consistency'::regnamespace AND c.relkind = 'r'
   AND has_table_privilege('public', c.oid, 'SELECT')
 ORDER BY 1;

-- A hostile search_path: objects that shadow built-ins and raise if anything resolves them.
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.texteq_trap(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: text = text'; END $$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.texteq_trap);
CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: now()'; END $$;
CREATE FUNCTION hostile.octet_length(text) RETURNS int LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: octet_length()'; END $$;
CREATE FUNCTION hostile.int4pl_trap(int, int) RETURNS int LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: int + int'; END $$;
CREATE OPERATOR hostile.+ (LEFTARG = int, RIGHTARG = int, FUNCTION = hostile.int4pl_trap);
CREATE FUNCTION hostile.tsle_trap(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: timestamptz <= timestamptz'; END $$;
CREATE OPERATOR hostile.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = hostile.tsle_trap);
CREATE FUNCTION hostile.tsgt_trap(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: timestamptz > timestamptz'; END $$;
CREATE OPERATOR hostile.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = hostile.tsgt_trap);
CREATE FUNCTION hostile.tspl_trap(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: timestamptz + interval'; END $$;
CREATE OPERATOR hostile.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = hostile.tspl_trap);
CREATE FUNCTION hostile.stateeq_trap(consistency.idem_state, consistency.idem_state) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked: idem_state = idem_state'; END $$;
CREATE OPERATOR hostile.= (LEFTARG = consistency.idem_state, RIGHTARG = consistency.idem_state,
						   FUNCTION = hostile.stateeq_trap);
CREATE FUNCTION hostile.tideq_trap(tid, tid) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: tid = tid'; END $$;
CREATE OPERATOR hostile.= (LEFTARG = tid, RIGHTARG = tid, FUNCTION = hostile.tideq_trap);
CREATE TABLE hostile.idempotency_keys (scope text, key text);
-- and what the inventory statements use: int4 and int8 arithmetic and comparisons, the
-- reservation status, aggregates and set-returning functions
CREATE FUNCTION hostile.int4eq_trap(int, int) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: int = int'; END $$;
CREATE OPERATOR hostile.= (LEFTARG = int, RIGHTARG = int, FUNCTION = hostile.int4eq_trap);
CREATE FUNCTION hostile.int4ge_trap(int, int) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: int >= int'; END $$;
CREATE OPERATOR hostile.>= (LEFTARG = int, RIGHTARG = int, FUNCTION = hostile.int4ge_trap);
CREATE FUNCTION hostile.int4mi_trap(int, int) RETURNS int LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: int - int'; END $$;
CREATE OPERATOR hostile.- (LEFTARG = int, RIGHTARG = int, FUNCTION = hostile.int4mi_trap);
CREATE FUNCTION hostile.int8pl_trap(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: bigint + bigint'; END $$;
CREATE OPERATOR hostile.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = hostile.int8pl_trap);
CREATE FUNCTION hostile.int8mi_trap(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: bigint - bigint'; END $$;
CREATE OPERATOR hostile.- (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = hostile.int8mi_trap);
CREATE FUNCTION hostile.int8ge_trap(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: bigint >= bigint'; END $$;
CREATE OPERATOR hostile.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = hostile.int8ge_trap);
CREATE FUNCTION hostile.int8eq_trap(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: bigint = bigint'; END $$;
CREATE OPERATOR hostile.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = hostile.int8eq_trap);
CREATE FUNCTION hostile.reseq_trap(consistency.reservation_status, consistency.reservation_status)
	RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked: reservation_status ='; END $$;
CREATE OPERATOR hostile.= (LEFTARG = consistency.reservation_status,
						   RIGHTARG = consistency.reservation_status, FUNCTION = hostile.reseq_trap);
CREATE FUNCTION hostile.agg_trap(int, int) RETURNS int LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: an int aggregate'; END $$;
CREATE AGGREGATE hostile.max(int) (SFUNC = hostile.agg_trap, STYPE = int);
CREATE FUNCTION hostile.agg8_trap(numeric, bigint) RETURNS numeric LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: a bigint aggregate'; END $$;
CREATE AGGREGATE hostile.sum(bigint) (SFUNC = hostile.agg8_trap, STYPE = numeric);
CREATE FUNCTION hostile.aggb_trap(boolean, boolean) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: bool_and()'; END $$;
CREATE AGGREGATE hostile.bool_and(boolean) (SFUNC = hostile.aggb_trap, STYPE = boolean);
CREATE FUNCTION hostile.statement_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: statement_timestamp()'; END $$;
CREATE FUNCTION hostile.generate_series(int, int) RETURNS SETOF int LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: generate_series()'; END $$;
CREATE FUNCTION hostile.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'hijacked: unnest()'; END $$;
SET search_path = hostile, pg_catalog, public;

-- every path of idem_begin and idem_complete: a fresh key (no SQL), its replay (the look-up),
-- an expired key claimed again (the upsert) and a lease completed (the update)
BEGIN;
SELECT * FROM consistency.idem_begin('hostile-1', 'fp');
SELECT consistency.idem_complete('hostile-1', '{"ok": true}');
COMMIT;
SELECT * FROM consistency.idem_begin('hostile-1', 'fp');
UPDATE consistency.idempotency_keys SET expires_at = pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 second'
 WHERE key OPERATOR(pg_catalog.=) 'hostile-1';
BEGIN;
SELECT * FROM consistency.idem_begin('hostile-1', 'fp-2');
SELECT consistency.idem_complete('hostile-1', '{"again": true}');
COMMIT;
SELECT * FROM consistency.idem_begin('hostile-1', 'fp-2');
SELECT status, attempt FROM consistency.idem_lease('hostile-3');
SELECT consistency.idem_complete('hostile-3', '{"leased": true}', attempt => 1);
SELECT * FROM consistency.idem_begin('hostile-3');
SELECT status, attempt FROM consistency.idem_lease('hostile-2');
SELECT consistency.idem_checkpoint('hostile-2', 'step') IS NOT NULL AS checkpointed;
SELECT consistency.idem_release('hostile-2');
SELECT consistency.idem_purge() >= 0 AS purged;
SELECT count(*) AS hostile_rows FROM hostile.idempotency_keys;
-- idem_claim and idem_finish share those paths: a fresh key, its replay, the lease answer
BEGIN;
SELECT consistency.idem_claim('hostile-4', 'fp') IS NULL AS claimed;
SELECT consistency.idem_finish('hostile-4', '{"four": true}');
COMMIT;
SELECT consistency.idem_claim('hostile-4', 'fp');
SELECT status, attempt FROM consistency.idem_lease('hostile-5');
SELECT consistency.idem_claim('hostile-5');
SELECT consistency.idem_finish('hostile-5', '{"five": true}', attempt => 1);
SELECT consistency.idem_claim('hostile-5');

-- every single-session path of reserve, reserve_now, reserve_all, confirm and release: on an adaptive
-- one-slot SKU (the one-row statements) and on a pinned three-slot SKU (a slot's row, and
-- the spread over every slot when no slot alone has enough); a reservation, its retry, a
-- sell-out, and each way a reservation ends
SELECT consistency.stock_set('hostile-one', 10) AS one_available,
	   consistency.stock_set('hostile-three', 9, slots => 3) AS three_available;
SELECT consistency.reserve('hostile-one', 4, 'hr-1') AS fresh,
	   consistency.reserve('hostile-one', 4, 'hr-1') AS retried,
	   consistency.reserve('hostile-one', 7, 'hr-2') AS short,
	   consistency.confirm('hr-1') AS sold;
SELECT consistency.reserve('hostile-one', 2, 'hr-3') AS fresh,
	   consistency.release('hr-3') AS returned;
SELECT consistency.reserve('hostile-three', 2, 'hr-4') AS one_slot,
	   consistency.reserve('hostile-three', 5, 'hr-5') AS spread,
	   consistency.reserve('hostile-three', 5, 'hr-6') AS short;
SELECT consistency.confirm('hr-4') AS sold, consistency.release('hr-5') AS returned;
SELECT consistency.reserve_all('hr-7', ARRAY['hostile-one', 'hostile-three'], ARRAY[1, 2]::bigint[])
		 AS basket,
	   consistency.reserve_all('hr-7', ARRAY['hostile-one', 'hostile-three'], ARRAY[1, 2]::bigint[])
		 AS retried,
	   consistency.reserve_all('hr-8', ARRAY['hostile-one', 'hostile-three'], ARRAY[100, 1]::bigint[])
		 AS short,
	   consistency.confirm('hr-7') AS sold;
SELECT consistency.reserve('hostile-three', 1, 'hr-9', ttl => '1 microsecond') AS lapsing;
SELECT consistency.reserve_now('hostile-one', 1, 'hr-10') AS reserved_now;
SELECT pg_catalog.pg_sleep(0.01);
SELECT consistency.expire_reservations() AS expired;

RESET search_path;
SELECT sku, pg_catalog.sum(on_hand) AS on_hand, pg_catalog.sum(reserved) AS reserved
  FROM consistency.inventory WHERE sku LIKE 'hostile-%' GROUP BY sku ORDER BY sku;
SELECT reservation_id, line, sku, qty, status FROM consistency.reservations
 WHERE reservation_id LIKE 'hr-%' ORDER BY reservation_id, line;
SELECT * FROM consistency.check_inventory();
DELETE FROM consistency.reservations;
DELETE FROM consistency.inventory;
DELETE FROM consistency.idempotency_keys;
DROP SCHEMA hostile CASCADE;

-- Versioning and tokens as an application login granted only consistency_user (the other
-- capabilities' files do the same for theirs): versioning runs with the caller's rights on the
-- caller's own table; the token functions need nothing but EXECUTE.
CREATE ROLE sec_app LOGIN IN ROLE consistency_user;
CREATE TABLE public.sec_docs (id int PRIMARY KEY, body text NOT NULL);
ALTER TABLE public.sec_docs OWNER TO sec_app;
SET ROLE sec_app;
SELECT consistency.enable_versioning('public.sec_docs');
INSERT INTO public.sec_docs VALUES (1, 'draft');
SELECT consistency.update_versioned('public.sec_docs', '{"id": 1}', 1, '{"body": "reviewed"}') AS new_version;
SELECT consistency.try_update_versioned('public.sec_docs', '{"id": 1}', 1, '{"body": "stale"}') IS NULL AS stale_refused;
\set VERBOSITY sqlstate
UPDATE public.sec_docs SET body = 'lost update', version = 1 WHERE id = 1;
\set VERBOSITY default
SELECT consistency.disable_versioning('public.sec_docs');
SELECT id, body, version FROM public.sec_docs;
SELECT consistency.token_status(consistency.write_token()) AS written_token_status,
	   consistency.token_max(consistency.write_token(), consistency.write_token())
		 = consistency.write_token() AS token_max_same;
SELECT count(*) AS standby_rows FROM consistency.standby_status();
RESET ROLE;
DROP TABLE public.sec_docs;
DROP ROLE sec_app;
