-- Benchmark schema for the flash sale: one hot SKU.  The extension's SKUs ('hot1' pinned at one
-- slot, 'hot16' at 16, 'hotA' adaptive: one slot at the start of every run) and the
-- baselines' table: what teams write without the extension.
CREATE TABLE plain_stock (sku text PRIMARY KEY, on_hand bigint NOT NULL,
						  reserved bigint NOT NULL DEFAULT 0,
						  CHECK (reserved >= 0 AND reserved <= on_hand));
CREATE TABLE plain_res (id text PRIMARY KEY, sku text NOT NULL, qty bigint NOT NULL,
						created_at timestamptz NOT NULL DEFAULT clock_timestamp());
-- A shop's other SKUs, so that the baselines find the hot row by its primary key as they
-- would in a real stock table.  With only the hot row and the 64 uncontended ones (two
-- pages) the planner chose a sequential scan as soon as autovacuum had analyzed the table,
-- and an index scan before: the PL/pgSQL baseline took 319k or 247k instructions per
-- reservation (callgrind) depending on when autovacuum came by during a section.
INSERT INTO plain_stock SELECT 'sku-' || g, 1000, 0 FROM generate_series(1, 10000) g;
ANALYZE plain_stock;

-- Baseline 1: PL/pgSQL, SELECT ... FOR UPDATE + UPDATE + INSERT.
CREATE FUNCTION plpgsql_reserve(p_sku text, p_qty bigint, p_id text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	avail bigint;
BEGIN
	SELECT on_hand - reserved INTO avail FROM plain_stock WHERE sku = p_sku FOR UPDATE;
	IF avail IS NULL THEN
		RAISE EXCEPTION 'unknown SKU %', p_sku;
	END IF;
	IF avail < p_qty THEN
		RETURN 'insufficient';
	END IF;
	UPDATE plain_stock SET reserved = reserved + p_qty WHERE sku = p_sku;
	INSERT INTO plain_res (id, sku, qty) VALUES (p_id, p_sku, p_qty);
	RETURN 'reserved';
END $$;

-- Reset a run: empty reservations, fresh stock.
CREATE PROCEDURE bench_reset(p_stock bigint) LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE plain_res, consistency.reservations;
	DELETE FROM plain_stock WHERE sku = 'hot' OR sku LIKE 'own%';
	INSERT INTO plain_stock VALUES ('hot', p_stock, 0);
	-- one row per pgbench client (client_id 0 to 63), for the uncontended baseline
	INSERT INTO plain_stock SELECT 'own' || g, p_stock, 0 FROM generate_series(0, 63) g;
	DELETE FROM consistency.inventory;
	PERFORM consistency.stock_set('hot1', p_stock, 1);
	PERFORM consistency.stock_set('hot16', p_stock, 16);
	PERFORM consistency.stock_set('hotA', p_stock);
END $$;
