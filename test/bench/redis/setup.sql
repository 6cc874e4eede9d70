-- Benchmark schema for the Redis comparison: the hot SKU with 16 slots (and one with 64, for
-- the more-slots variant; a run uses one of them), and a reset between runs (no
-- reservations, fresh stock).
CREATE PROCEDURE redis_bench_reset(p_stock bigint) LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE consistency.reservations;
	DELETE FROM consistency.inventory;
	PERFORM consistency.stock_set('hot16', p_stock, 16);
	PERFORM consistency.stock_set('hot64', p_stock, 64);
END $$;
CALL redis_bench_reset(1000000000);
