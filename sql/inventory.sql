-- Inventory reservations: every function, every error path; bad input changes nothing.
-- Errors are shown as users see them, followed by their SQLSTATE.
\set VERBOSITY default
CREATE FUNCTION stock(p_sku text) RETURNS TABLE (slot int, on_hand bigint, reserved bigint)
	LANGUAGE sql AS $$ SELECT slot, on_hand, reserved FROM consistency.inventory
					   WHERE sku = p_sku ORDER BY slot $$;
CREATE FUNCTION totals() RETURNS TABLE (sku text, on_hand numeric, reserved numeric, slots bigint)
	LANGUAGE sql AS $$ SELECT sku, sum(on_hand), sum(reserved), count(*)
					   FROM consistency.inventory GROUP BY sku ORDER BY sku $$;
CREATE FUNCTION res() RETURNS TABLE (reservation_id text, line int, sku text, qty bigint,
									 status consistency.reservation_status, ttl interval)
	LANGUAGE sql AS $$ SELECT reservation_id, line, sku, qty, status, expires_at - created_at
					   FROM consistency.reservations ORDER BY 1, 2 $$;

-- 1. Stock: one slot by default; slots = 4 spreads it evenly.  (Which slot a buyer lands on
--    depends on a per-backend random start, so slots are shown only where that cannot matter.)
SELECT consistency.stock_set('mug', 10);
SELECT consistency.stock_set('lamp', 10, slots => 4);
SELECT * FROM stock('lamp');
SELECT consistency.available('mug'), consistency.available('lamp');

-- 2. A reservation takes stock; its retry (same id, same request) answers the same and
--    takes nothing more; the row has the ttl given.
SELECT consistency.reserve('mug', 3, 'r-1');
SELECT consistency.reserve('mug', 3, 'r-1');
SELECT consistency.reserve('mug', 3, 'r-1', ttl => '1 hour', wait => false);
SELECT * FROM stock('mug');
SELECT * FROM res();
SELECT consistency.reserve('mug', 2, 'r-2', ttl => '1 hour');
SELECT * FROM res() WHERE reservation_id = 'r-2';

-- 3. The same id for another quantity or SKU: its own SQLSTATE, nothing changes.
SELECT consistency.reserve('mug', 4, 'r-1');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('lamp', 3, 'r-1');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('r-1', ARRAY['mug', 'lamp'], ARRAY[3, 1]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stock('mug');

-- 4. Not enough: 'insufficient', and no reservation is stored, so a retry after a restock
--    reserves.
SELECT consistency.reserve('mug', 6, 'r-3');
SELECT count(*) AS r3_rows FROM consistency.reservations WHERE reservation_id = 'r-3';
SELECT consistency.stock_add('mug', 1);
SELECT consistency.reserve('mug', 6, 'r-3');
SELECT consistency.available('mug');
SELECT consistency.reserve('mug', 1, 'r-4');

-- 5. Slots: no single slot of 'lamp' holds 7 units, but the SKU does: the stock is
--    rebalanced under the locks of every slot and the reservation succeeds.  What stays
--    available is spread evenly again.
SELECT consistency.reserve('lamp', 7, 'r-5');
SELECT * FROM stock('lamp');
SELECT consistency.reserve('lamp', 4, 'r-6');
SELECT consistency.reserve('lamp', 3, 'r-6b');
SELECT * FROM stock('lamp');

-- 6. reserve_all: all or nothing, duplicate SKUs summed, lines stored in lock order.
SELECT consistency.stock_set('pen', 5);
SELECT consistency.stock_set('ink', 5, 2);
SELECT consistency.reserve_all('basket-1', ARRAY['pen', 'ink', 'pen'], ARRAY[2, 1, 2]);
SELECT reservation_id, sku, qty, status FROM res() WHERE reservation_id = 'basket-1' ORDER BY sku;
SELECT consistency.available('pen') AS pen, consistency.available('ink') AS ink;
-- a retry, in any order and with the duplicates already summed, is the same request
SELECT consistency.reserve_all('basket-1', ARRAY['ink', 'pen'], ARRAY[1, 4]);
SELECT consistency.available('pen') AS pen, consistency.available('ink') AS ink;
-- one SKU short: nothing is reserved, nothing stored
SELECT consistency.reserve_all('basket-2', ARRAY['ink', 'pen'], ARRAY[4, 2]);
SELECT consistency.available('pen') AS pen, consistency.available('ink') AS ink;
SELECT * FROM totals() WHERE sku = 'ink';
SELECT count(*) AS basket2_rows FROM consistency.reservations WHERE reservation_id = 'basket-2';
-- a single-SKU reserve_all is the same request as reserve()
SELECT consistency.reserve_all('r-2', ARRAY['mug'], ARRAY[2]);

-- 7. confirm sells: on_hand and reserved drop; confirming again answers the same.
SELECT consistency.confirm('r-1');
SELECT consistency.confirm('r-1');
SELECT * FROM stock('mug');
SELECT consistency.confirm('basket-1');
SELECT * FROM totals();
-- a retry of the reservation still answers 'reserved': it was made (and sold)
SELECT consistency.reserve('mug', 3, 'r-1');
-- a confirmed reservation cannot be released
SELECT consistency.release('r-1');
\echo :LAST_ERROR_SQLSTATE

-- 8. release returns the stock once; the reservation cannot then be confirmed, and a
--    retry of it is refused (the client must reserve anew).
SELECT consistency.release('r-2');
SELECT consistency.release('r-2');
SELECT consistency.available('mug');
SELECT consistency.confirm('r-2');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 2, 'r-2');
\echo :LAST_ERROR_SQLSTATE

-- 9. Expiry: past its expires_at a reservation cannot be confirmed even before
--    expire_reservations() ran; expire_reservations() returns its stock in batches.
SELECT consistency.stock_set('cup', 6, 2);
SELECT consistency.reserve('cup', 1, 'e-1', ttl => '1 microsecond');
SELECT consistency.reserve('cup', 2, 'e-2', ttl => '1 microsecond');
SELECT consistency.reserve_all('e-3', ARRAY['cup', 'pen'], ARRAY[1, 1], ttl => '1 microsecond');
SELECT consistency.reserve('cup', 1, 'e-4', ttl => '1 hour');
SELECT pg_sleep(0.01);
SELECT consistency.confirm('e-1');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('cup', 1, 'e-1');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.available('cup') AS cup, consistency.available('pen') AS pen;
SELECT consistency.expire_reservations(batch_size => 2);
SELECT consistency.expire_reservations();
SELECT consistency.expire_reservations();
SELECT consistency.available('cup') AS cup, consistency.available('pen') AS pen;
SELECT reservation_id, sku, status FROM res() WHERE reservation_id LIKE 'e-%';
SELECT consistency.confirm('e-2');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.release('e-2');
-- an active reservation past its expiry may still be released
SELECT consistency.reserve('cup', 1, 'e-5', ttl => '1 microsecond');
SELECT pg_sleep(0.01);
SELECT consistency.release('e-5');
SELECT consistency.expire_reservations();

-- 10. stock_add and stock_set never take stock below what is reserved.
SELECT * FROM stock('lamp');
SELECT consistency.stock_add('lamp', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('lamp', 9);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('lamp', 10);		-- exactly what is reserved: allowed
SELECT consistency.stock_set('lamp', 20, 3);		-- fewer slots: reserved units are spread
SELECT * FROM stock('lamp');
SELECT consistency.stock_set('lamp', 11, 6);
SELECT * FROM stock('lamp');
SELECT consistency.reserve('lamp', 1, 'r-7');
SELECT consistency.reserve('lamp', 1, 'r-8');
SELECT consistency.stock_add('lamp', 5);
SELECT * FROM stock('lamp');

-- 11. wait => false with nobody else holding a slot reserves as usual.
SELECT consistency.reserve('lamp', 1, 'r-9', wait => false);
SELECT consistency.reserve('lamp', 100, 'r-10', wait => false);

-- 12. Every invariant holds.
SELECT * FROM consistency.check_inventory();
SELECT * FROM totals();

-- 13. Bad input: a clear error with a documented SQLSTATE, and nothing changed.
CREATE TEMP TABLE before AS
	SELECT (SELECT count(*) FROM consistency.reservations) AS reservations,
		   (SELECT sum(on_hand) FROM consistency.inventory) AS on_hand,
		   (SELECT sum(reserved) FROM consistency.inventory) AS reserved;
SELECT consistency.reserve(NULL, 1, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 1, 'x', ttl => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 1, 'x', wait => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('', 1, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 1, '');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve(repeat('s', 256), 1, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 1, repeat('é', 128));	-- 256 bytes
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 0, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', -5, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', '9223372036854775808', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 9223372036854775807, 'x');
SELECT consistency.reserve('mug', 1, 'x', ttl => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('mug', 1, 'x', ttl => '-1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve('no-such-sku', 1, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all(NULL, ARRAY['mug'], ARRAY[1]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', NULL, ARRAY[1]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug'], NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug', 'pen'], ARRAY[1]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', '{}', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug', NULL], ARRAY[1, 1]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug', 'pen'], ARRAY[1, NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY[['mug'], ['pen']], ARRAY[[1], [1]]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug', ''], ARRAY[1, 1]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug', repeat('s', 256)], ARRAY[1, 1]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug', 'pen'], ARRAY[1, 0]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug', 'mug'], ARRAY[9223372036854775807, 1]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', array_fill('mug'::text, ARRAY[1001]), array_fill(1::bigint, ARRAY[1001]));
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug', 'no-such-sku'], ARRAY[1, 1]);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('x', ARRAY['mug'], ARRAY[1], ttl => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.confirm(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.confirm('');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.confirm('no-such-reservation');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.release(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.release(repeat('r', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.release('no-such-reservation');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.expire_reservations(0);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.expire_reservations(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.available(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.available('');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.available('no-such-sku');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set(NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('mug', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('mug', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('mug', 100, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('mug', 100, 65);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set(repeat('s', 256), 1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_add(NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_add('mug', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_add('mug', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_add('mug', 9223372036854775807);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_add('no-such-sku', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT (SELECT count(*) FROM consistency.reservations) = reservations AS same_reservations,
	   (SELECT sum(on_hand) FROM consistency.inventory) = on_hand AS same_on_hand,
	   (SELECT sum(reserved) FROM consistency.inventory) = reserved AS same_reserved
  FROM before;
SELECT count(*) AS unknown_skus FROM consistency.inventory WHERE sku IN ('no-such-sku', '');

-- 14. The CHECK constraint refuses oversell even from code that bypasses the functions.
--     (Terse: the failing row shows resized_at, a time.)
\set VERBOSITY terse
UPDATE consistency.inventory SET reserved = on_hand + 1 WHERE sku = 'mug';
\echo :LAST_ERROR_SQLSTATE
UPDATE consistency.inventory SET on_hand = -1, reserved = 0 WHERE sku = 'mug';
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
INSERT INTO consistency.inventory (sku, slot, on_hand) VALUES ('mug', 64, 1);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO consistency.reservations (reservation_id, sku, qty, created_at, expires_at)
	VALUES ('bad', 'mug', 0, now(), now());
\echo :LAST_ERROR_SQLSTATE

-- 15. check_inventory() reports what such code can still break.
UPDATE consistency.inventory SET reserved = reserved + 1 WHERE sku = 'pen';
UPDATE consistency.inventory SET slot = 7 WHERE sku = 'ink' AND slot = 1;
UPDATE consistency.reservations SET status = 'released' WHERE reservation_id = 'e-3' AND sku = 'pen';
INSERT INTO consistency.reservations (reservation_id, line, sku, qty, status, created_at, expires_at)
	VALUES ('ghost', 0, 'gone', 2, 'active', now(), now()),
		   ('gap', 1, 'mug', 1, 'released', now(), now());
SELECT * FROM consistency.check_inventory();

-- 16. Stock rows that such code left contradicting the reservations: the operation that
--     finds out raises XX001 (data_corrupted) and changes nothing.
SELECT consistency.stock_add('ink', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('jug', 5);
SELECT consistency.reserve('jug', 2, 'j-1');
UPDATE consistency.inventory SET reserved = 0 WHERE sku = 'jug';
SELECT consistency.release('j-1');
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM consistency.reservations WHERE reservation_id = 'j-1';

-- clean up for the tests that follow
DELETE FROM consistency.reservations;
DELETE FROM consistency.inventory;

-- 17. A reservation line of a SKU with no stock rows (written around the functions, or its
--     SKU deleted), or of a SKU with fewer units reserved than its lines hold:
--     expire_reservations expires them with a warning instead of failing on them in every
--     run, and returns the stock of the other lines.
SELECT consistency.stock_set('cup', 5), consistency.stock_set('bowl', 5);
SELECT consistency.reserve('cup', 2, 'c-2', ttl => '1 microsecond');
SELECT consistency.reserve('bowl', 2, 'b-1', ttl => '1 microsecond');
UPDATE consistency.inventory SET reserved = 1 WHERE sku = 'bowl';
INSERT INTO consistency.reservations (reservation_id, line, sku, qty, status, created_at, expires_at)
	VALUES ('orphan', 0, 'gone', 2, 'active', now() - interval '1 hour', now() - interval '1 hour');
SELECT pg_sleep(0.01);
SELECT consistency.expire_reservations();
SELECT reservation_id, sku, status FROM consistency.reservations ORDER BY 1;
SELECT * FROM totals();
SELECT consistency.expire_reservations();

-- 18. A basket whose multi-slot SKUs have more than 512 slots in all could hold that many
--     slot locks to the end of the transaction: 54000, nothing stored.  512 are allowed.
SELECT sum(consistency.stock_set('wide-' || i, 64, 64)) AS wide_available FROM generate_series(1, 9) i;
SELECT consistency.reserve_all('wide', ARRAY(SELECT 'wide-' || i FROM generate_series(1, 9) i),
							   array_fill(1::bigint, ARRAY[9]));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS wide_rows FROM consistency.reservations WHERE reservation_id = 'wide';
SELECT sum(consistency.available('wide-' || i)) AS wide_available FROM generate_series(1, 9) i;
SELECT consistency.reserve_all('wide', ARRAY(SELECT 'wide-' || i FROM generate_series(1, 8) i),
							   array_fill(1::bigint, ARRAY[8]));

-- 19. A ttl so long that the expiry is past the end of timestamptz (22008), and a total over
--     all SKUs that confirm and release could not return (22003): nothing stored.
SELECT consistency.stock_set('tea', 5);
SELECT consistency.reserve('tea', 1, 't-1', ttl => '1000000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.reserve_all('t-1', ARRAY['tea'], ARRAY[1], ttl => '1000000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_set('big-1', 9223372036854775807), consistency.stock_set('big-2', 9223372036854775807);
SELECT consistency.reserve_all('t-1', ARRAY['big-1', 'big-2'], ARRAY[5000000000000000000, 5000000000000000000]);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS t1_rows FROM consistency.reservations WHERE reservation_id = 't-1';
SELECT consistency.available('tea'), consistency.available('big-1'), consistency.available('big-2');

-- 20. Privileges: the functions write both tables as the tables' owner, so application
--     roles hold no INSERT, UPDATE or DELETE on them.  A login role granted only
--     consistency_user exercises every buyer function and every path that writes (one
--     slot, a slot of several, the rebalance, 'insufficient' on both kinds of SKU, the
--     check after a sell-out, a basket undone), and one granted consistency_admin every
--     stock function.
CREATE ROLE inv_app LOGIN IN ROLE consistency_user;
CREATE ROLE inv_keeper LOGIN IN ROLE consistency_admin;
SET ROLE inv_keeper;
SELECT consistency.stock_set('app-mug', 10) AS mug, consistency.stock_set('app-lamp', 8, 4) AS lamp;
SELECT consistency.stock_add('app-mug', 2);
RESET ROLE;
SET ROLE inv_app;
SELECT consistency.reserve('app-mug', 2, 'app-1');
SELECT consistency.reserve('app-mug', 2, 'app-1');
SELECT consistency.reserve('app-lamp', 1, 'app-2');
SELECT consistency.reserve('app-lamp', 5, 'app-3');
SELECT consistency.reserve('app-lamp', 100, 'app-4');
SELECT consistency.reserve('app-lamp', 100, 'app-4', wait => false);
SELECT consistency.reserve('app-mug', 100, 'app-5');
SELECT consistency.reserve_all('app-6', ARRAY['app-mug', 'app-lamp'], ARRAY[1, 1]);
SELECT consistency.reserve_all('app-7', ARRAY['app-mug', 'app-lamp'], ARRAY[1, 100]);
SELECT consistency.confirm('app-1');
SELECT consistency.confirm('app-1');
SELECT consistency.release('app-6');
SELECT consistency.reserve('app-mug', 1, 'app-8', ttl => '1 microsecond');
SELECT consistency.available('app-mug') AS mug, consistency.available('app-lamp') AS lamp;
-- the documented read: a buyer may look at reservations (not at the slot rows)
SELECT reservation_id, line, sku, qty, status FROM consistency.reservations
 WHERE reservation_id LIKE 'app-%' ORDER BY 1, 2;
SELECT count(*) FROM consistency.inventory;
\echo :LAST_ERROR_SQLSTATE
-- errors keep their own SQLSTATEs; the stock functions are the admin's
SELECT consistency.reserve('app-mug', 3, 'app-1');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.release('app-1');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.stock_add('app-mug', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.expire_reservations();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT pg_sleep(0.01);
SET ROLE inv_keeper;
SELECT consistency.expire_reservations();
SELECT consistency.stock_set('app-lamp', 20, 2);
SELECT * FROM consistency.check_inventory() WHERE sku LIKE 'app-%';
-- the documented read: the stock keeper may look at the slot rows
SELECT sku, slot, on_hand, reserved FROM consistency.inventory WHERE sku LIKE 'app-%' ORDER BY 1, 2;
RESET ROLE;
-- Direct writes, as the buyer and as the stock keeper: 42501, and nothing changes.
CREATE TEMP TABLE inv_before AS SELECT * FROM consistency.inventory;
CREATE TEMP TABLE res_before AS SELECT * FROM consistency.reservations;
SET ROLE inv_app;
INSERT INTO consistency.inventory (sku, slot, on_hand) VALUES ('app-free', 0, 100);
\echo :SQLSTATE
UPDATE consistency.inventory SET on_hand = on_hand + 100 WHERE sku = 'app-mug';
\echo :SQLSTATE
DELETE FROM consistency.inventory WHERE sku = 'app-mug';
\echo :SQLSTATE
INSERT INTO consistency.reservations (reservation_id, sku, qty, created_at, expires_at)
	VALUES ('app-forged', 'app-mug', 1, now(), now() + interval '1 hour');
\echo :SQLSTATE
UPDATE consistency.reservations SET status = 'released' WHERE reservation_id = 'app-3';
\echo :SQLSTATE
DELETE FROM consistency.reservations WHERE reservation_id = 'app-3';
\echo :SQLSTATE
SELECT status FROM consistency.reservations WHERE reservation_id = 'app-3' FOR UPDATE;
\echo :SQLSTATE
RESET ROLE;
SET ROLE inv_keeper;
INSERT INTO consistency.inventory (sku, slot, on_hand) VALUES ('app-free', 0, 100);
\echo :SQLSTATE
UPDATE consistency.inventory SET reserved = 0 WHERE sku = 'app-lamp';
\echo :SQLSTATE
DELETE FROM consistency.inventory WHERE sku = 'app-lamp';
\echo :SQLSTATE
UPDATE consistency.reservations SET status = 'confirmed' WHERE reservation_id = 'app-3';
\echo :SQLSTATE
DELETE FROM consistency.reservations WHERE reservation_id = 'app-3';
\echo :SQLSTATE
RESET ROLE;
SELECT (SELECT count(*) FROM (TABLE consistency.inventory EXCEPT ALL TABLE inv_before) a) +
	   (SELECT count(*) FROM (TABLE inv_before EXCEPT ALL TABLE consistency.inventory) b) AS inventory_changes,
	   (SELECT count(*) FROM (TABLE consistency.reservations EXCEPT ALL TABLE res_before) a) +
	   (SELECT count(*) FROM (TABLE res_before EXCEPT ALL TABLE consistency.reservations) b) AS reservation_changes;
DROP TABLE inv_before, res_before;
DROP ROLE inv_app, inv_keeper;

-- 21. A reservation that fits in one slot is taken from that slot alone: the fast path tries
--     every slot before it falls back to the rebalance under every slot's lock.  The first
--     reservation fills the slot this backend tries first; the second fits only the other
--     one (tried last), which serves it, and nothing moves between the slots.  (Shown in an
--     order that does not depend on which slot is tried first.)
SELECT consistency.stock_set('desk', 10, slots => 2);
SELECT consistency.reserve('desk', 5, 'r-desk-1');
SELECT consistency.reserve('desk', 1, 'r-desk-2');
SELECT on_hand, reserved FROM stock('desk') ORDER BY reserved DESC;

-- 22. Adaptive SKUs.  stock_set without slots (or slots => NULL): adaptive, one slot for a
--     new SKU, the current count for an existing one; slots => N pins.  One session never
--     contends with itself, so however many reservations it makes, the SKU stays at one slot.
CREATE FUNCTION shape(p_sku text) RETURNS TABLE (slots bigint, adaptive bool, resized bool)
	LANGUAGE sql AS $$ SELECT count(*), bool_and(adaptive), bool_or(resized_at IS NOT NULL)
					   FROM consistency.inventory WHERE sku = p_sku $$;
SELECT consistency.stock_set('hot', 100);
SELECT * FROM shape('hot');
SELECT count(*) FILTER (WHERE consistency.reserve('hot', 1, 'r-hot-' || i) = 'reserved') AS reserved
  FROM generate_series(1, 20) AS i;
SELECT * FROM shape('hot');
SELECT consistency.stock_set('hot', 100, slots => 4);
SELECT * FROM shape('hot');
SELECT consistency.stock_set('hot', 100, NULL);
SELECT * FROM shape('hot'), consistency.available('hot');
-- A basket of adaptive one-slot SKUs takes no slot lock (no entry in the shared lock table,
-- however many lines: check_slot_locks counts none for them); a lone reservation tries slot
-- 0's lock, its contention signal, and keeps it to the end of the transaction.
SELECT count(consistency.stock_set('cart-' || i, 10)) AS cart_skus FROM generate_series(1, 20) i;
BEGIN;
SELECT consistency.reserve_all('cart', ARRAY(SELECT 'cart-' || i FROM generate_series(1, 20) i),
							   array_fill(1::bigint, ARRAY[20]));
SELECT count(*) AS basket_slot_locks FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT consistency.reserve('cart-1', 1, 'cart-lone');
SELECT count(*) AS lone_slot_locks FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid();
ROLLBACK;
SELECT sum(consistency.available('cart-' || i)) AS cart_available FROM generate_series(1, 20) i;

-- 23. maintenance's merge: an adaptive SKU left unsplit for inventory_merge_after goes back
--     to one slot with the same totals (the reservations keep holding their units); a
--     pinned SKU is never merged; one resized more recently (hot was created just now) is not
--     merged under the default setting (5 minutes).
SELECT consistency.merge_slots();
SELECT * FROM shape('hot');
SET consistency.inventory_merge_after = 0;
SELECT consistency.stock_set('pinned-4', 8, slots => 4);
SELECT consistency.merge_slots(10);
SELECT * FROM shape('hot'), consistency.available('hot');
SELECT * FROM shape('pinned-4');
SELECT consistency.confirm('r-hot-1'), consistency.release('r-hot-2');
SELECT * FROM totals() WHERE sku IN ('hot', 'pinned-4');
SELECT * FROM consistency.check_inventory() WHERE sku IN ('hot', 'pinned-4');
RESET consistency.inventory_merge_after;

-- 24. Bad input: the settings' bounds (22023), merge_slots's batch_size (22004, 22023);
--     nothing changes.
SET consistency.inventory_max_slots = 0;
\echo :LAST_ERROR_SQLSTATE
SET consistency.inventory_max_slots = 65;
\echo :LAST_ERROR_SQLSTATE
-- (the message of a setting with a unit differs between PostgreSQL 15 and 18: the SQLSTATE only)
DO $$
BEGIN
	SET consistency.inventory_merge_after = -1;
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'inventory_merge_after = -1: %', SQLSTATE;
END $$;
SHOW consistency.inventory_merge_after;
SET consistency.inventory_max_slots = 64;
SET consistency.inventory_merge_after = '1h';
SHOW consistency.inventory_merge_after;
RESET consistency.inventory_max_slots;
RESET consistency.inventory_merge_after;
SELECT consistency.merge_slots(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.merge_slots(0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shape('hot');
DROP FUNCTION shape(text);

-- 25. Under READ COMMITTED reserve() writes line 0 without the executor (the speculative
--     insertion ON CONFLICT DO NOTHING makes) while the table is as the extension made it: the
--     same row as the SQL statement writes, visible at once to the same transaction, in both
--     indexes (amcheck: every heap row is in each index that should have it, the partial
--     expiry index included).  A trigger a DBA added still fires (the SQL statement is used);
--     a constraint a DBA added to the qty domain still holds (23514, nothing written), checked
--     as the tables' owner; REPEATABLE READ uses the SQL statement; a read-only transaction is
--     refused as an INSERT is (25006).
CREATE EXTENSION amcheck;
SELECT consistency.stock_set('direct', 100);
BEGIN;
SELECT consistency.reserve('direct', 2, 'd-1') AS fresh, consistency.reserve('direct', 2, 'd-1') AS retried;
SELECT reservation_id, line, sku, qty, status, expires_at > created_at AS expires_later
  FROM consistency.reservations WHERE reservation_id = 'd-1';
COMMIT;
SELECT consistency.reserve('direct', 3, 'd-1') AS other_qty;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE res_audit (reservation_id text, qty bigint);
CREATE FUNCTION res_audit() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN INSERT INTO public.res_audit VALUES (NEW.reservation_id, NEW.qty); RETURN NEW; END $$;
CREATE TRIGGER res_audit AFTER INSERT ON consistency.reservations
	FOR EACH ROW EXECUTE FUNCTION res_audit();
SELECT consistency.reserve('direct', 1, 'd-audited') AS audited;
DROP TRIGGER res_audit ON consistency.reservations;
SELECT * FROM res_audit;
ALTER DOMAIN consistency.reservation_qty ADD CONSTRAINT qty_at_most_50 CHECK (VALUE <= 50);
SELECT consistency.reserve('direct', 51, 'd-big') AS too_big;
\echo :LAST_ERROR_SQLSTATE
ALTER DOMAIN consistency.reservation_qty DROP CONSTRAINT qty_at_most_50;
-- the domain is checked as the tables' owner, as inside the SQL statement: a CHECK calling a
-- function the buyer may not execute still lets the buyer reserve
CREATE FUNCTION qty_ok(bigint) RETURNS boolean LANGUAGE sql AS 'SELECT $1 <= 50';
REVOKE EXECUTE ON FUNCTION qty_ok(bigint) FROM PUBLIC;
ALTER DOMAIN consistency.reservation_qty ADD CONSTRAINT qty_ok CHECK (public.qty_ok(VALUE));
CREATE ROLE inv_buyer LOGIN IN ROLE consistency_user;
SET ROLE inv_buyer;
SELECT consistency.reserve('direct', 1, 'd-owner-check') AS checked_as_owner;
RESET ROLE;
DROP ROLE inv_buyer;
ALTER DOMAIN consistency.reservation_qty DROP CONSTRAINT qty_ok;
DROP FUNCTION qty_ok(bigint);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT consistency.reserve('direct', 1, 'd-rr') AS repeatable_read;
COMMIT;
BEGIN READ ONLY;
SELECT consistency.reserve('direct', 1, 'd-ro') AS read_only;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT reservation_id, qty, status FROM consistency.reservations
 WHERE reservation_id LIKE 'd-%' ORDER BY reservation_id;
SELECT * FROM stock('direct');
SELECT c.relname, bt_index_parent_check(c.oid, true) AS checked
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'consistency.reservations'::regclass ORDER BY 1;
DROP TABLE res_audit;
DROP FUNCTION res_audit();
DROP EXTENSION amcheck;

-- 26. On a SKU with several slots, the fast path's UPDATE of one slot row is made without the
--     executor (src/inventory_direct.c) while the table is as the extension made it: visible
--     at once to the same transaction, and in every index, a DBA's index on reserved included
--     (the updates are then not heap-only; amcheck: every heap row is in each index).  What a
--     DBA adds to the table is honoured through the SQL statement, also in a session that has
--     used the direct path before: a trigger fires; a rule runs; a CHECK constraint of their
--     own holds (23514, nothing written); so does inventory_stock_check replaced by a stricter
--     one of the same name; with the original constraint back, reserve() takes those units
--     again.  A rule on INSERT to reservations makes the line-0 INSERT of case 25 keep its
--     SQL statement too, which PostgreSQL refuses: ON CONFLICT with rules (0A000).
CREATE EXTENSION amcheck;
SELECT consistency.stock_set('dslots', 200, 4);
BEGIN;
SELECT consistency.reserve('dslots', 5, 'ds-1') AS fresh;
SELECT sum(reserved) AS reserved_in_transaction FROM consistency.inventory WHERE sku = 'dslots';
COMMIT;
SELECT consistency.release('ds-1') AS released;
SELECT consistency.reserve('dslots', 4, 'ds-2') AS reserved;
SELECT consistency.confirm('ds-2') AS confirmed;
SELECT sum(on_hand) AS on_hand, sum(reserved) AS reserved FROM consistency.inventory WHERE sku = 'dslots';
CREATE INDEX inventory_reserved_dba ON consistency.inventory (reserved);
SELECT consistency.reserve('dslots', 6, 'ds-3') AS not_heap_only;
SELECT consistency.release('ds-3') AS released;
SELECT c.relname, bt_index_parent_check(c.oid, true) AS checked
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'consistency.inventory'::regclass ORDER BY 1;
DROP INDEX consistency.inventory_reserved_dba;
CREATE TABLE inv_audit (sku text, reserved bigint);
CREATE FUNCTION inv_audit() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN INSERT INTO public.inv_audit VALUES (NEW.sku, NEW.reserved); RETURN NEW; END $$;
CREATE TRIGGER inv_audit AFTER UPDATE ON consistency.inventory
	FOR EACH ROW EXECUTE FUNCTION inv_audit();
SELECT consistency.reserve('dslots', 7, 'ds-4') AS audited;
DROP TRIGGER inv_audit ON consistency.inventory;
SELECT * FROM inv_audit;
TRUNCATE inv_audit;
CREATE RULE inv_rule AS ON UPDATE TO consistency.inventory
	DO ALSO INSERT INTO public.inv_audit VALUES (NEW.sku, NEW.reserved - OLD.reserved);
SELECT consistency.reserve('dslots', 1, 'ds-r') AS ruled;
DROP RULE inv_rule ON consistency.inventory;
SELECT * FROM inv_audit;
CREATE RULE res_rule AS ON INSERT TO consistency.reservations
	DO ALSO INSERT INTO public.inv_audit VALUES (NEW.reservation_id, NEW.qty);
\set VERBOSITY terse
SELECT consistency.reserve('dslots', 1, 'ds-rr') AS insert_rule;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
DROP RULE res_rule ON consistency.reservations;
\set VERBOSITY terse
ALTER TABLE consistency.inventory
	ADD CONSTRAINT reserved_at_most_10 CHECK (reserved <= 10) NOT VALID;
SELECT consistency.reserve('dslots', 11, 'ds-5') AS over_ten;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE consistency.inventory DROP CONSTRAINT reserved_at_most_10;
ALTER TABLE consistency.inventory DROP CONSTRAINT inventory_stock_check,
	ADD CONSTRAINT inventory_stock_check CHECK (reserved >= 0 AND reserved <= on_hand - 40) NOT VALID;
SELECT consistency.reserve('dslots', 20, 'ds-6') AS over_stricter;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
ALTER TABLE consistency.inventory DROP CONSTRAINT inventory_stock_check,
	ADD CONSTRAINT inventory_stock_check
		CHECK (reserved OPERATOR(pg_catalog.>=) 0 AND reserved OPERATOR(pg_catalog.<=) on_hand);
SELECT consistency.reserve('dslots', 20, 'ds-7') AS restored;
SELECT reservation_id, qty, status FROM consistency.reservations
 WHERE reservation_id LIKE 'ds-%' ORDER BY reservation_id;
SELECT sum(on_hand) AS on_hand, sum(reserved) AS reserved FROM consistency.inventory WHERE sku = 'dslots';
DROP TABLE inv_audit;
DROP FUNCTION inv_audit();
DROP EXTENSION amcheck;

DELETE FROM consistency.reservations;
DELETE FROM consistency.inventory;
DROP FUNCTION stock(text), totals(), res();
