-- Benchmark schema for single-row version-checked updates: one table per variant, so that
-- each variant's HOT ratio can be read from pg_stat_user_tables.  100,000 rows each;
-- fillfactor 90 leaves room on each page for HOT updates; the version column is not indexed.
CREATE FUNCTION make_items(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, sku text NOT NULL, price int NOT NULL,
				   note text, version bigint NOT NULL DEFAULT 1) WITH (fillfactor = 90)', name);
	EXECUTE format('INSERT INTO %I (id, sku, price, note)
				   SELECT g, ''sku-'' || g, 100, repeat(''x'', 40) FROM generate_series(1, 100000) g', name);
END $$;
SELECT make_items('items_plain');			-- hand-written UPDATE ... WHERE id = $1 AND version = $2
SELECT make_items('items_c');				-- consistency.version_guard trigger
SELECT make_items('items_plpgsql');			-- the same check as a PL/pgSQL trigger
SELECT make_items('items_fn');				-- consistency.update_versioned, no trigger
SELECT make_items('items_noop');			-- a no-op C BEFORE UPDATE trigger (CPU floor only)

SELECT consistency.enable_versioning('items_c');

-- What teams write without the extension: the same semantics in PL/pgSQL.
CREATE FUNCTION plpgsql_version_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.version IS DISTINCT FROM OLD.version THEN
		RAISE EXCEPTION 'version conflict on table "%"', TG_TABLE_NAME
			USING ERRCODE = '40001',
				  DETAIL = format('expected version %s, found %s', NEW.version, OLD.version);
	END IF;
	NEW.version := OLD.version + 1;
	RETURN NEW;
END $$;
CREATE TRIGGER plpgsql_version_guard BEFORE UPDATE ON items_plpgsql
	FOR EACH ROW EXECUTE FUNCTION plpgsql_version_guard();
-- PostgreSQL's own cost of any BEFORE ROW UPDATE trigger (it locks the row before calling
-- it), measured with the cheapest built-in C trigger.
CREATE TRIGGER noop BEFORE UPDATE ON items_noop
	FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();

-- CPU cost, without commits: run stmt in a subtransaction that is rolled back; milliseconds.
CREATE FUNCTION time_rolled_back(stmt text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	ms float8;
BEGIN
	BEGIN
		t0 := clock_timestamp();
		EXECUTE stmt;
		ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
		RAISE EXCEPTION 'roll back' USING ERRCODE = 'YCB00';
	EXCEPTION WHEN SQLSTATE 'YCB00' THEN
		NULL;
	END;
	RETURN ms;
END $$;
-- n single-row read-then-update calls, hand-written and through update_versioned.
CREATE FUNCTION loop_handwritten(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	v bigint;
BEGIN
	FOR i IN 1..n LOOP
		SELECT version INTO v FROM items_plain WHERE id = i;
		UPDATE items_plain SET price = i, version = version + 1 WHERE id = i AND version = v;
	END LOOP;
END $$;
CREATE FUNCTION loop_update_versioned(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	v bigint;
BEGIN
	FOR i IN 1..n LOOP
		SELECT version INTO v FROM items_fn WHERE id = i;
		PERFORM consistency.update_versioned('items_fn', jsonb_build_object('id', i), v,
											 jsonb_build_object('price', i));
	END LOOP;
END $$;
VACUUM ANALYZE;
