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
VACUUM ANALYZE;
