-- Benchmark schema for the Redis comparison: one hot SKU with 16 slots, and a reset between
-- runs (no reservations, fresh stock).
CREATE PROCEDURE redis_bench_reset(p_stock bigint) LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE consistency.reservations;
	DELETE FROM consistency.inventory;
	PERFORM consistency.stock_set('hot16', p_stock, 16);
END $$;
CALL redis_bench_reset(1000000000);
