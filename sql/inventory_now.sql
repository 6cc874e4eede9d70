-- reserve_now(): reserve() outside any transaction block, committed before it returns.
-- With shared_preload_libraries, concurrent calls share one transaction (TAP 022 runs them
-- concurrently); a lone call leads a batch of one, so every answer below is the same in
-- both configurations.  Errors are shown as users see them, followed by their SQLSTATE.
\set VERBOSITY default
CREATE FUNCTION now_stock(p_sku text) RETURNS TABLE (on_hand numeric, reserved numeric)
	LANGUAGE sql AS $$ SELECT sum(on_hand), sum(reserved) FROM consistency.inventory
					   WHERE sku = p_sku $$;
CREATE FUNCTION now_res() RETURNS TABLE (reservation_id text, sku text, qty bigint,
										 status consistency.reservation_status, ttl interval)
	LANGUAGE sql AS $$ SELECT reservation_id, sku, qty, status, expires_at - created_at
					   FROM consistency.reservations ORDER BY 1, 2 $$;

-- 1. Answers as reserve() answers: reserved, a retry of the same request, insufficient,
--    busy never (nothing else holds the slots), a ttl kept.
SELECT consistency.stock_set('now-mug', 5);
SELECT consistency.stock_set('now-lamp', 10, slots => 4);
SELECT consistency.reserve_now('now-mug', 3, 'n-1');
SELECT consistency.reserve_now('now-mug', 3, 'n-1');
SELECT consistency.reserve_now('now-mug', 3, 'n-2');
SELECT consistency.reserve_now('now-mug', 2, 'n-3', ttl => '1 hour', wait => false);
SELECT consistency.reserve_now('now-lamp', 4, 'n-4');
SELECT * FROM now_stock('now-mug');
SELECT * FROM now_stock('now-lamp');
SELECT * FROM now_res();

-- 2. The errors of reserve(): an id reused for another request, an unknown SKU, bad
--    arguments.  Nothing changes.
SELECT consistency.reserve_now('now-mug', 1, 'n-1');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_now('now-nope', 1, 'n-5');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_now('now-mug', 0, 'n-5');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_now(NULL, 1, 'n-5');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_now('now-mug', 1, '', '1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_now('now-mug', 1, 'n-5', '-1 hour');
\echo :LAST_ERROR_SQLSTATE

-- 3. Not inside a transaction block (25001), explicit or implicit (several statements in
--    one query string), nor in a subtransaction (a PL/pgSQL block with EXCEPTION): it
--    commits before it returns, which the block could not undo.
BEGIN;
SELECT consistency.reserve_now('now-lamp', 1, 'n-6');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT 1 AS first \; SELECT consistency.reserve_now('now-lamp', 1, 'n-6');
\echo :LAST_ERROR_SQLSTATE
DO $$
BEGIN
	PERFORM consistency.reserve_now('now-lamp', 1, 'n-6');
EXCEPTION WHEN division_by_zero THEN
	NULL;
END $$;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM now_res() WHERE reservation_id = 'n-6';

-- 4. Alone in autocommit it is the statement's own transaction: a statement that fails
--    after the call takes the reservation back (a call combined with concurrent ones is
--    committed by their leader before it returns: README, "reserve_now()").
SELECT consistency.reserve_now('now-lamp', 1, 'n-7'), 1 / 0;
SELECT * FROM now_res() WHERE reservation_id = 'n-7';
SELECT consistency.reserve_now('now-lamp', 1, 'n-7');

-- 5. Under REPEATABLE READ (the session's default) and SERIALIZABLE it is reserve() in the
--    statement's own transaction.
SET default_transaction_isolation = 'repeatable read';
SELECT consistency.reserve_now('now-lamp', 1, 'n-8');
SET default_transaction_isolation = 'serializable';
SELECT consistency.reserve_now('now-lamp', 1, 'n-9');
RESET default_transaction_isolation;
SELECT * FROM now_stock('now-lamp');
SELECT * FROM consistency.check_inventory();

-- 6. In a read-only transaction it is never batched: 25006, as from reserve(), and no row
--    (test/t/023_inventory_reserve_now_settings.pl runs such calls among writers).
SET default_transaction_read_only = on;
SELECT consistency.reserve_now('now-lamp', 1, 'n-10');
\echo :LAST_ERROR_SQLSTATE
RESET default_transaction_read_only;
SELECT count(*) AS read_only_rows FROM now_res() WHERE reservation_id = 'n-10';

DELETE FROM consistency.reservations;
DELETE FROM consistency.inventory;
DROP FUNCTION now_stock(text), now_res();
