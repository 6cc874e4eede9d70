-- test/t/060_crash_mixed_load/workload.sql: the application of the crash test, in database shop.
--
-- Run by the superuser after CREATE EXTENSION consistency, once the login roles app (the load)
-- and straggler (the test's own in-doubt transactions) exist.  Both are granted
-- consistency_admin (which includes consistency_user) and mix_worker (this file's tables), and
-- never write an extension table directly: only through the extension's 1.0 functions.  Every operation writes its business
-- effect in the same transaction as the extension's record of it, so every invariant can be
-- checked from the database alone after a crash:
--
--   orders         mix.orders row          <-> idempotency key (scope 'orders') completed
--   leases         mix.payments row        <-> lease key (scope 'payments') completed, same attempt
--   versioning     mix.account_log row     <-> one accepted versioned update of mix.accounts
--   reservations   mix.reservation_intents <-> a stored reservation; mix.sales <-> a confirm
--   2PC            mix.tpc_coordinated     <-> the coordinator transaction; the participants'
--                  transfers rows (databases ledger and warehouse, through dblink as app,
--                  prepared with gids from tpc_gid) <-> a logged commit decision
--
-- Expected outcomes (a replay, a lost version race, an expired hold, a lease taken over, a
-- prepared transaction already finished by the resolver) are handled here and return normally;
-- anything else raises, and the test fails on every error the load reports.

CREATE ROLE mix_worker NOLOGIN;
GRANT mix_worker, consistency_admin TO app, straggler;
CREATE EXTENSION dblink SCHEMA public;
CREATE SCHEMA mix;
GRANT USAGE ON SCHEMA mix TO mix_worker;

-- Idempotent orders: key 'order-<k>'; a duplicate request replays.
CREATE TABLE mix.orders (
	id     bigserial PRIMARY KEY,
	key    text   NOT NULL,
	amount int    NOT NULL
);
CREATE INDEX ON mix.orders (key);

CREATE FUNCTION mix.place_order(k int) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ikey text := 'order-' || k;
	st   text;
	oid  bigint;
BEGIN
	SELECT b.status INTO st FROM consistency.idem_begin(ikey, 'fp-' || k, scope => 'orders') AS b;
	IF st = 'new' THEN
		INSERT INTO mix.orders (key, amount) VALUES (ikey, k % 97 + 1) RETURNING id INTO oid;
		PERFORM consistency.idem_complete(ikey, jsonb_build_object('order_id', oid), scope => 'orders');
	ELSIF st <> 'replay' THEN
		RAISE EXCEPTION 'idem_begin answered % for %', st, ikey;
	END IF;
	RETURN st;
END $$;

-- Leases: three transactions per operation (take, checkpoint, finish), lease of one second, so
-- leases cut by a crash expire and are resumed with the next attempt in a later round.
CREATE TABLE mix.payments (
	id             bigserial PRIMARY KEY,
	key            text NOT NULL,
	attempt        int  NOT NULL
);
CREATE INDEX ON mix.payments (key);

-- The attempt this worker now holds, or 0 (replay, or a live lease of another worker).
CREATE FUNCTION mix.lease_take(k int) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	st  text;
	att int;
BEGIN
	SELECT l.status, l.attempt INTO st, att
	  FROM consistency.idem_lease('pay-' || k, 'fp', lease => '1 second', scope => 'payments') AS l;
	IF st IN ('new', 'resume') THEN
		RETURN att;
	ELSIF st IN ('replay', 'in_progress') THEN
		RETURN 0;
	END IF;
	RAISE EXCEPTION 'idem_lease answered % for pay-%', st, k;
END $$;

CREATE FUNCTION mix.lease_step(k int, att int) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF att = 0 THEN
		RETURN 'idle';
	END IF;
	PERFORM consistency.idem_checkpoint('pay-' || k, 'authorised by attempt ' || att,
										scope => 'payments', attempt => att);
	RETURN 'checkpointed';
EXCEPTION
	WHEN SQLSTATE 'YC003' OR SQLSTATE 'YC004' THEN
		RETURN 'lost';		-- the lease expired and another worker took over (or finished)
END $$;

CREATE FUNCTION mix.lease_finish(k int, att int) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF att = 0 THEN
		RETURN 'idle';
	END IF;
	INSERT INTO mix.payments (key, attempt) VALUES ('pay-' || k, att);
	PERFORM consistency.idem_complete('pay-' || k, jsonb_build_object('attempt', att),
									  scope => 'payments', attempt => att);
	RETURN 'completed';
EXCEPTION
	WHEN SQLSTATE 'YC003' OR SQLSTATE 'YC004' THEN
		RETURN 'lost';		-- and the payment row goes with the subtransaction
END $$;

-- Optimistic versioning: 40 accounts, trigger mode and function mode mixed; every accepted
-- update adds one to the balance and logs the new version in the same transaction.
CREATE TABLE mix.accounts (
	id      int    PRIMARY KEY,
	balance bigint NOT NULL DEFAULT 0
);
INSERT INTO mix.accounts (id) SELECT generate_series(1, 40);
SELECT consistency.enable_versioning('mix.accounts');
CREATE TABLE mix.account_log (
	account int    NOT NULL,
	version bigint NOT NULL,
	via     text   NOT NULL,
	PRIMARY KEY (account, version)
);

CREATE FUNCTION mix.bump(a int, via_trigger bool) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bal  bigint;
	ver  bigint;
	newv bigint;
BEGIN
	SELECT balance, version INTO bal, ver FROM mix.accounts WHERE id = a;
	IF via_trigger THEN
		BEGIN
			UPDATE mix.accounts SET balance = bal + 1, version = ver WHERE id = a
			RETURNING version INTO newv;
		EXCEPTION WHEN serialization_failure THEN
			RETURN NULL;	-- lost the race: the version moved since we read it
		END;
	ELSE
		newv := consistency.try_update_versioned('mix.accounts', jsonb_build_object('id', a), ver,
												 jsonb_build_object('balance', bal + 1));
	END IF;
	IF newv IS NOT NULL THEN
		IF newv <> ver + 1 THEN
			RAISE EXCEPTION 'account % went from version % to %', a, ver, newv;
		END IF;
		INSERT INTO mix.account_log VALUES (a, newv, CASE WHEN via_trigger THEN 'trigger' ELSE 'function' END);
	END IF;
	RETURN newv;
END $$;

-- Inventory: five SKUs; 'hot' has little stock over 4 slots, so it sells out and answers
-- 'insufficient'.  mix.initial_stock is what stock_set was given.
CREATE TABLE mix.initial_stock (sku text PRIMARY KEY, on_hand bigint NOT NULL);
INSERT INTO mix.initial_stock VALUES ('hot', 1500), ('sku-2', 100000), ('sku-3', 100000),
	('sku-4', 100000), ('sku-5', 100000);
SELECT consistency.stock_set(sku, on_hand, CASE WHEN sku = 'hot' THEN 4 ELSE 1 END)
  FROM mix.initial_stock;
CREATE SEQUENCE mix.reservation_seq;
CREATE TABLE mix.reservation_intents (
	reservation_id text     PRIMARY KEY,
	skus           text[]   NOT NULL,
	qtys           bigint[] NOT NULL
);
CREATE TABLE mix.sales (
	reservation_id text   PRIMARY KEY,
	units          bigint NOT NULL
);

CREATE FUNCTION mix.sku(pick int) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN pick <= 1 THEN 'hot' ELSE 'sku-' || pick END $$;

-- Reserve one SKU (n_skus = 1) or a basket of two (reserve_all); returns the reservation's
-- number, or 0 if the stock was insufficient (nothing stored).
CREATE FUNCTION mix.reserve(p1 int, p2 int, q1 int, q2 int, basket bool, ttl_ms int) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n    bigint := nextval('mix.reservation_seq');
	rid  text := 'res-' || n;
	skus text[] := CASE WHEN basket THEN ARRAY[mix.sku(p1), mix.sku(p2)] ELSE ARRAY[mix.sku(p1)] END;
	qtys bigint[] := CASE WHEN basket THEN ARRAY[q1, q2] ELSE ARRAY[q1] END;
	ttl  interval := make_interval(secs => ttl_ms / 1000.0);
	st   text;
BEGIN
	IF basket THEN
		st := consistency.reserve_all(rid, skus, qtys, ttl);
	ELSE
		st := consistency.reserve(skus[1], qtys[1], rid, ttl);
	END IF;
	IF st = 'reserved' THEN
		INSERT INTO mix.reservation_intents VALUES (rid, skus, qtys);
		RETURN n;
	ELSIF st = 'insufficient' THEN
		RETURN 0;
	END IF;
	RAISE EXCEPTION 'reserve answered % for %', st, rid;
END $$;

-- What the buyer does next: 1 pay (confirm, and record the sale), 2 cancel (release), 3 retry
-- the reservation (same id, same request: must answer 'reserved' and take nothing), 4 walk
-- away (the hold expires).
CREATE FUNCTION mix.settle(n bigint, action int) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	rid   text := 'res-' || n;
	i     mix.reservation_intents;
	units bigint;
	st    text;
BEGIN
	IF n = 0 THEN
		RETURN 'none';
	END IF;
	IF action = 1 THEN
		BEGIN
			units := consistency.confirm(rid);
			INSERT INTO mix.sales VALUES (rid, units);
			RETURN 'confirmed';
		EXCEPTION WHEN SQLSTATE 'YC203' THEN
			RETURN 'expired';	-- too late: the hold lapsed (short ttls are part of the mix)
		END;
	ELSIF action = 2 THEN
		PERFORM consistency.release(rid);
		RETURN 'released';
	ELSIF action = 3 THEN
		SELECT * INTO STRICT i FROM mix.reservation_intents WHERE reservation_id = rid;
		BEGIN
			IF cardinality(i.skus) > 1 THEN
				st := consistency.reserve_all(rid, i.skus, i.qtys);
			ELSE
				st := consistency.reserve(i.skus[1], i.qtys[1], rid);
			END IF;
		EXCEPTION WHEN SQLSTATE 'YC203' THEN
			RETURN 'expired';
		END;
		IF st <> 'reserved' THEN
			RAISE EXCEPTION 'retry of % answered %', rid, st;
		END IF;
		RETURN 'retried';
	END IF;
	RETURN 'left';
END $$;

-- In-doubt 2PC: the coordinator transaction (here, in shop) takes a gid per participant,
-- prepares a transfer on each participant database through dblink (as app), logs its
-- decision and commits; phase 2 follows in the next statement.  kind 1..8 commit, 9 abort
-- (logged), 10 no decision at all (the coordinator "forgets": presumed abort, left to the
-- resolver).
CREATE TABLE mix.tpc_coordinated (
	coordinator_xid xid8   PRIMARY KEY,
	gids            text[] NOT NULL,
	kind            text   NOT NULL
);

CREATE FUNCTION mix.participant(conn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NOT conn = ANY (coalesce(public.dblink_get_connections(), '{}')) THEN
		PERFORM public.dblink_connect(conn, current_setting('mix.' || conn || '_dsn'));
	END IF;
END $$;

CREATE FUNCTION mix.tpc_begin(kind_no int, amount int) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	conns text[] := ARRAY['ledger', 'warehouse'];
	gids  text[] := '{}';
	kind  text := CASE WHEN kind_no <= 8 THEN 'commit' WHEN kind_no = 9 THEN 'abort' ELSE 'none' END;
	gid   text;
	c     text;
BEGIN
	FOREACH c IN ARRAY conns LOOP
		gid := consistency.tpc_gid(c);
		gids := gids || gid;
		PERFORM mix.participant(c);
		PERFORM public.dblink_exec(c, 'BEGIN');
		PERFORM public.dblink_exec(c, format('INSERT INTO public.transfers (gid, amount) VALUES (%L, %s)',
											 gid, amount));
		PERFORM public.dblink_exec(c, format('PREPARE TRANSACTION %L', gid));
	END LOOP;
	IF kind <> 'none' THEN
		FOREACH gid IN ARRAY gids LOOP
			PERFORM consistency.tpc_log_decision(gid, kind);
		END LOOP;
		-- phase 2 runs after COMMIT, in mix.tpc_finish()
		PERFORM set_config('mix.phase2', kind || ' ' || array_to_string(gids, ' '), false);
	END IF;
	INSERT INTO mix.tpc_coordinated VALUES (pg_current_xact_id(), gids, kind);
	RETURN kind;
END $$;

CREATE FUNCTION mix.tpc_finish() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p     text[] := string_to_array(current_setting('mix.phase2', true), ' ');
	conns text[] := ARRAY['ledger', 'warehouse'];
	i     int;
BEGIN
	IF coalesce(cardinality(p), 0) = 0 THEN
		RETURN 'none';
	END IF;
	FOR i IN 1 .. cardinality(conns) LOOP
		BEGIN
			PERFORM public.dblink_exec(conns[i], format('%s PREPARED %L',
				CASE p[1] WHEN 'commit' THEN 'COMMIT' ELSE 'ROLLBACK' END, p[i + 1]));
		EXCEPTION
			-- a resolver finished it already (does not exist), or is finishing it (busy): done
			WHEN undefined_object OR object_not_in_prerequisite_state THEN NULL;
		END;
	END LOOP;
	PERFORM set_config('mix.phase2', '', false);
	RETURN p[1];
END $$;

-- The resolver, run now and then during the load: with min_age 0 it must skip the
-- transactions whose coordinator is still running and resolve the rest by the log.  Every row
-- it returns is kept in mix.resolutions (committed with the caller's transaction), so the test
-- can check that each executed action also has its row in consistency.tpc_resolution_log.
CREATE TABLE mix.resolutions (
	id      bigserial PRIMARY KEY,
	gid     text NOT NULL,
	outcome text NOT NULL,
	reason  text
);

CREATE FUNCTION mix.resolve() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	n bigint := 0;
BEGIN
	FOR r IN SELECT * FROM consistency.resolve_stale('0', dry_run => false) LOOP
		INSERT INTO mix.resolutions (gid, outcome, reason) VALUES (r.gid, r.outcome, r.reason);
		-- 'failed' is expected only for want of a worker slot (YC405: nothing was done)
		IF r.outcome NOT IN ('committed', 'rolled_back', 'already_resolved', 'busy', 'skipped')
		   AND NOT (r.outcome = 'failed' AND r.reason LIKE 'YC405:%') THEN
			RAISE EXCEPTION 'resolve_stale during the load: % %: %', r.gid, r.outcome, r.reason;
		END IF;
		n := n + 1;
	END LOOP;
	RETURN n;
EXCEPTION WHEN SQLSTATE 'YC405' THEN
	RETURN 0;	-- no background worker slot free right now: nothing done; documented, retry later
END $$;

GRANT SELECT, INSERT ON mix.orders, mix.payments, mix.account_log, mix.reservation_intents,
	mix.sales, mix.tpc_coordinated, mix.resolutions TO mix_worker;
GRANT SELECT, UPDATE ON mix.accounts TO mix_worker;
GRANT SELECT ON mix.initial_stock TO mix_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA mix TO mix_worker;
