-- Benchmark schema for the "create order" transaction, and a hand-written PL/pgSQL
-- idempotency layer (what teams write without the extension) as a baseline.
CREATE TABLE products (id int PRIMARY KEY, stock bigint NOT NULL, sold bigint NOT NULL DEFAULT 0)
	WITH (fillfactor = 80);
INSERT INTO products SELECT g, 1000000000 FROM generate_series(1, 10000) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, product_id int NOT NULL,
					 qty int NOT NULL, created_at timestamptz NOT NULL DEFAULT now());

CREATE TABLE plpgsql_idem (key text PRIMARY KEY, fingerprint text, state text NOT NULL,
						   response jsonb, created_at timestamptz NOT NULL,
						   expires_at timestamptz NOT NULL);
CREATE INDEX ON plpgsql_idem (expires_at);
-- The hand-written layer in the extension's shape (idem_claim / idem_finish), so that both
-- handlers below make the same calls: NULL (run it) or the stored response; an error while
-- the request is in progress; the finish returns the response it stored.
CREATE FUNCTION plpgsql_idem_claim(p_key text, p_fp text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	r plpgsql_idem;
BEGIN
	INSERT INTO plpgsql_idem (key, fingerprint, state, created_at, expires_at)
	VALUES (p_key, p_fp, 'in_progress', now(), now() + interval '24 hours')
	ON CONFLICT (key) DO NOTHING;
	IF FOUND THEN
		RETURN NULL;
	END IF;
	SELECT * INTO r FROM plpgsql_idem WHERE key = p_key;
	IF r.fingerprint IS DISTINCT FROM p_fp THEN
		RAISE EXCEPTION 'idempotency key reused for another request' USING ERRCODE = 'YC001';
	END IF;
	IF r.state = 'completed' THEN
		RETURN r.response;
	END IF;
	RAISE EXCEPTION 'request % is in progress', p_key USING ERRCODE = 'YC006';
END $$;
CREATE FUNCTION plpgsql_idem_finish(p_key text, p_response jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE plpgsql_idem SET state = 'completed', response = p_response,
		   expires_at = now() + interval '24 hours'
	 WHERE key = p_key AND state = 'in_progress';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'idempotency key % is not claimed', p_key;
	END IF;
	RETURN p_response;
END $$;

-- 100k completed keys for the replay runs, in both implementations.  (Written directly:
-- claiming them through idem_begin in one transaction would hold 100k key locks at once.)
INSERT INTO consistency.idempotency_keys
	(scope, key, fingerprint, state, response, created_at, completed_at, expires_at)
SELECT '', 'r-' || i, 'fp', 'completed', jsonb_build_object('order_id', i, 'status', 'created'),
	   now(), now(), now() + interval '24 hours'
  FROM generate_series(1, 100000) i;
INSERT INTO plpgsql_idem
SELECT 'r-' || i, 'fp', 'completed', jsonb_build_object('order_id', i, 'status', 'created'),
	   now(), now() + interval '24 hours'
  FROM generate_series(1, 100000) i;
VACUUM ANALYZE;

-- The same handler as one server-side call (one round trip), plain and idempotent.
CREATE FUNCTION create_order(p_customer int, p_pid int, p_qty int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_id bigint;
BEGIN
	UPDATE products SET stock = stock - p_qty, sold = sold + p_qty WHERE id = p_pid;
	INSERT INTO orders (customer, product_id, qty) VALUES (p_customer, p_pid, p_qty)
	RETURNING id INTO v_id;
	RETURN jsonb_build_object('order_id', v_id, 'status', 'created');
END $$;
-- Idempotent: create_order's statements with idem_claim before and idem_finish after, as
-- the guide writes a handler (doc/guides/idempotent-http-endpoints.md, "The handler as one
-- server-side function"): three expressions (PL/pgSQL evaluates an expression without the
-- executor) in the handler itself, not a wrapper calling create_order(), whose nested
-- PL/pgSQL call (about 12k instructions, 4-5% of an order) is no part of what idempotency
-- costs.  The same with the extension and with the hand-written layer.
CREATE FUNCTION create_order_idem(p_key text, p_customer int, p_pid int, p_qty int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_response jsonb;
	v_id bigint;
BEGIN
	v_response := consistency.idem_claim(p_key, 'fp');
	IF v_response IS NOT NULL THEN
		RETURN v_response;
	END IF;
	UPDATE products SET stock = stock - p_qty, sold = sold + p_qty WHERE id = p_pid;
	INSERT INTO orders (customer, product_id, qty) VALUES (p_customer, p_pid, p_qty)
	RETURNING id INTO v_id;
	RETURN consistency.idem_finish(p_key, jsonb_build_object('order_id', v_id, 'status', 'created'));
END $$;
CREATE FUNCTION create_order_idem_plpgsql(p_key text, p_customer int, p_pid int, p_qty int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_response jsonb;
	v_id bigint;
BEGIN
	v_response := plpgsql_idem_claim(p_key, 'fp');
	IF v_response IS NOT NULL THEN
		RETURN v_response;
	END IF;
	UPDATE products SET stock = stock - p_qty, sold = sold + p_qty WHERE id = p_pid;
	INSERT INTO orders (customer, product_id, qty) VALUES (p_customer, p_pid, p_qty)
	RETURNING id INTO v_id;
	RETURN plpgsql_idem_finish(p_key, jsonb_build_object('order_id', v_id, 'status', 'created'));
END $$;
-- The floor of any layer that stores the key with the write: create_order's statements and
-- then the one row idem_finish stores (key, fingerprint, the response, completed), inserted by
-- hand into consistency.idempotency_keys itself, with no claim before: no lock, no look for
-- the key, no check.  Whatever a layer does to answer a retry comes on top of this.  (Into the
-- extension's own table, not a copy of it: every idempotent variant adds rows to that table,
-- and a copy that only the floor's runs grew had smaller indexes, so after the CHECKPOINT
-- before each run the floor's inserts wrote fewer full-page images: 0.06 to 0.07 per order
-- against 0.08 to 0.09, measured.)
CREATE FUNCTION create_order_floor(p_key text, p_customer int, p_pid int, p_qty int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_response jsonb;
	v_id bigint;
BEGIN
	UPDATE products SET stock = stock - p_qty, sold = sold + p_qty WHERE id = p_pid;
	INSERT INTO orders (customer, product_id, qty) VALUES (p_customer, p_pid, p_qty)
	RETURNING id INTO v_id;
	v_response := jsonb_build_object('order_id', v_id, 'status', 'created');
	INSERT INTO consistency.idempotency_keys
		(key, fingerprint, state, response, created_at, completed_at, expires_at)
	VALUES (p_key, 'fp', 'completed', v_response, now(), now(), now() + interval '24 hours');
	RETURN v_response;
END $$;
-- The same handler with idem_begin and idem_complete, two queries (a function scan and a
-- PERFORM): its instructions only, to show what the expression form saves.
CREATE FUNCTION create_order_idem_begin(p_key text, p_customer int, p_pid int, p_qty int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_status text;
	v_response jsonb;
	v_id bigint;
BEGIN
	SELECT status, response INTO v_status, v_response FROM consistency.idem_begin(p_key, 'fp');
	IF v_status = 'replay' THEN
		RETURN v_response;
	ELSIF v_status = 'in_progress' THEN
		RAISE EXCEPTION 'request % is in progress', p_key USING ERRCODE = 'YC006';
	END IF;
	UPDATE products SET stock = stock - p_qty, sold = sold + p_qty WHERE id = p_pid;
	INSERT INTO orders (customer, product_id, qty) VALUES (p_customer, p_pid, p_qty)
	RETURNING id INTO v_id;
	v_response := jsonb_build_object('order_id', v_id, 'status', 'created');
	PERFORM consistency.idem_complete(p_key, v_response);
	RETURN v_response;
END $$;
