-- Idempotency keys: every function, every error path, bad input changes nothing.
-- Errors are shown as users see them, followed by their SQLSTATE.
\set VERBOSITY default
CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, qty int NOT NULL);
CREATE FUNCTION key_count() RETURNS bigint LANGUAGE sql
	AS $$ SELECT count(*) FROM consistency.idempotency_keys $$;

-- 1. First request runs; the response is stored in the same transaction.
BEGIN;
SELECT * FROM consistency.idem_begin('order-1', 'fp-a');
INSERT INTO orders (item, qty) VALUES ('widget', 2);
SELECT consistency.idem_complete('order-1', '{"order_id": 1, "total": 20}');
COMMIT;
SELECT scope, key, fingerprint, state, response, attempt, recovery_point,
	   completed_at IS NOT NULL AS completed, expires_at > completed_at AS expires_later,
	   lease_expires_at IS NULL AS no_lease
  FROM consistency.idempotency_keys;

-- 2. A retry is answered from the stored response and writes nothing.
SELECT * FROM consistency.idem_begin('order-1', 'fp-a');
SELECT * FROM consistency.idem_begin('order-1');		-- no fingerprint: not compared
SELECT count(*) AS orders FROM orders;

-- 3. Same key, different request: its own SQLSTATE, nothing written.
SELECT * FROM consistency.idem_begin('order-1', 'fp-b');
\echo :LAST_ERROR_SQLSTATE
SELECT key_count();

-- 4. Scopes are separate key spaces: same key, another scope is a new request,
--    and each scope replays only its own response.
BEGIN;
SELECT * FROM consistency.idem_begin('order-1', 'fp-b', scope => 'tenant-b');
SELECT consistency.idem_complete('order-1', '{"order_id": 99}', scope => 'tenant-b');
COMMIT;
SELECT * FROM consistency.idem_begin('order-1', 'fp-a');
SELECT * FROM consistency.idem_begin('order-1', 'fp-b', scope => 'tenant-b');
SELECT * FROM consistency.idem_begin('order-1', 'fp-a', scope => 'tenant-b');
\echo :LAST_ERROR_SQLSTATE

-- 5. A rolled-back attempt leaves no key: the retry is new.
BEGIN;
SELECT * FROM consistency.idem_begin('order-2', 'fp');
INSERT INTO orders (item, qty) VALUES ('gadget', 1);
ROLLBACK;
SELECT count(*) AS order_2_keys FROM consistency.idempotency_keys WHERE key = 'order-2';
BEGIN;
SELECT * FROM consistency.idem_begin('order-2', 'fp');
-- begun again in the same transaction: still ours
SELECT * FROM consistency.idem_begin('order-2', 'fp');
SELECT consistency.idem_complete('order-2', '{"order_id": 2}');
-- after completing, the same transaction sees the replay
SELECT * FROM consistency.idem_begin('order-2', 'fp');
COMMIT;

-- 6. Committing a claim without its response is refused, and the business write goes too.
BEGIN;
SELECT * FROM consistency.idem_begin('order-3');
INSERT INTO orders (item, qty) VALUES ('lost', 1);
COMMIT;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS order_3_keys FROM consistency.idempotency_keys WHERE key = 'order-3';
SELECT count(*) AS lost_orders FROM orders WHERE item = 'lost';
-- PREPARE TRANSACTION is refused the same way
BEGIN;
SELECT * FROM consistency.idem_begin('order-3');
PREPARE TRANSACTION 'idem-incomplete';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'idem-incomplete';

-- 7. idem_release gives a claim up; the transaction may then commit.
BEGIN;
SELECT * FROM consistency.idem_begin('order-4');
SELECT consistency.idem_release('order-4');
COMMIT;
SELECT count(*) AS order_4_keys FROM consistency.idempotency_keys WHERE key = 'order-4';

-- 8. Savepoints: a claim or completion rolled back to a savepoint is forgotten with it.
BEGIN;
SAVEPOINT s1;
SELECT * FROM consistency.idem_begin('order-5');
ROLLBACK TO SAVEPOINT s1;
COMMIT;
SELECT count(*) AS order_5_keys FROM consistency.idempotency_keys WHERE key = 'order-5';
BEGIN;
SELECT * FROM consistency.idem_begin('order-5');
SAVEPOINT s1;
SELECT consistency.idem_complete('order-5', '{"order_id": 5}');
ROLLBACK TO SAVEPOINT s1;
COMMIT;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT * FROM consistency.idem_begin('order-5');
SAVEPOINT s1;
SELECT consistency.idem_complete('order-5', '{"order_id": 5}');
RELEASE SAVEPOINT s1;
COMMIT;
SELECT key, state, response FROM consistency.idempotency_keys WHERE key = 'order-5';

-- 9. idem_complete needs a claim, and only completes once.
SELECT consistency.idem_complete('never-begun', '{}');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT * FROM consistency.idem_begin('order-6');
SELECT consistency.idem_complete('order-6', '{"order_id": 6}');
SELECT consistency.idem_complete('order-6', '{"order_id": 7}');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT consistency.idem_complete('order-1', '{}');		-- completed long ago
\echo :LAST_ERROR_SQLSTATE

-- 10. Bad input: a clear error with a documented SQLSTATE, and nothing written.
SELECT key_count() AS keys_before;
SELECT * FROM consistency.idem_begin(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin('');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin(repeat('k', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin(repeat('é', 128));	-- 256 bytes, 128 characters
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin('k', ttl => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin('k', ttl => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin('k', ttl => '-1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin('k', scope => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin('k', scope => repeat('s', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin('k', wait => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_begin('k', repeat('f', 1025));
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_complete(NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT * FROM consistency.idem_begin('big-response');
SELECT consistency.idem_complete('big-response', NULL);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL consistency.idem_max_response_size = '1kB';
SELECT * FROM consistency.idem_begin('big-response');
SELECT consistency.idem_complete('big-response', jsonb_build_object('blob', repeat('x', 2000)));
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT consistency.idem_complete('k', '{}', attempt => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_purge(0);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_purge(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', lease => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_checkpoint('k', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_checkpoint('k', repeat('r', 8193));
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_release(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT key_count() AS keys_after;
-- the largest key is fine
BEGIN;
SELECT status FROM consistency.idem_begin(repeat('k', 255), scope => repeat('s', 255));
ROLLBACK;

-- 11. An expired key is as good as absent, whatever its fingerprint.
BEGIN;
SELECT * FROM consistency.idem_begin('short-lived', 'fp-1', ttl => '1 millisecond');
SELECT consistency.idem_complete('short-lived', '{"v": 1}');
COMMIT;
SELECT pg_sleep(0.05);
BEGIN;
SELECT * FROM consistency.idem_begin('short-lived', 'fp-2');
SELECT consistency.idem_complete('short-lived', '{"v": 2}');
COMMIT;
SELECT * FROM consistency.idem_begin('short-lived', 'fp-2');
-- ... nor does a fresh request without a fingerprint inherit the expired row's: any
-- fingerprint is then answered from its response (none is compared), not refused (YC001)
CREATE FUNCTION run_request(p_key text, p_fingerprint text, p_ttl interval) RETURNS text
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM consistency.idem_begin(p_key, p_fingerprint, ttl => p_ttl);
	PERFORM consistency.idem_complete(p_key, jsonb_build_object('fp', p_fingerprint));
	RETURN 'done';
END $$;
SELECT run_request('short-lived-2', 'fp-1', '1 millisecond'), pg_sleep(0.05);
SELECT run_request('short-lived-2', NULL, '1 day');
SELECT fingerprint IS NULL AS no_fingerprint FROM consistency.idempotency_keys
 WHERE key = 'short-lived-2';
SELECT * FROM consistency.idem_begin('short-lived-2', 'fp-3');
DELETE FROM consistency.idempotency_keys WHERE key = 'short-lived-2';
DROP FUNCTION run_request(text, text, interval);

-- 12. idem_purge deletes expired keys in bounded batches and leaves live ones.
DO $$
BEGIN
	FOR i IN 1..5 LOOP
		PERFORM consistency.idem_begin('old-' || i, ttl => '1 millisecond');
		PERFORM consistency.idem_complete('old-' || i, '{}');
	END LOOP;
END $$;
SELECT pg_sleep(0.05);
SELECT consistency.idem_purge(2) AS purged;
SELECT consistency.idem_purge() AS purged;
SELECT consistency.idem_purge() AS purged;
SELECT count(*) AS old_left FROM consistency.idempotency_keys WHERE key LIKE 'old-%';
SELECT count(*) AS live_left FROM consistency.idempotency_keys WHERE key LIKE 'order-%';

-- 13. Lease mode: an operation with external side effects.
SELECT status, response, recovery_point, attempt
  FROM consistency.idem_lease('pay-1', 'fp-pay', lease => '1 hour');
-- a duplicate during the live lease
SELECT status, response, recovery_point, attempt
  FROM consistency.idem_lease('pay-1', 'fp-pay');
SELECT * FROM consistency.idem_begin('pay-1', 'fp-pay');
SELECT * FROM consistency.idem_lease('pay-1', 'fp-other');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_checkpoint('pay-1', 'charged card') > now() AS lease_renewed;
-- the worker dies; its lease runs out; the next caller takes over where it stopped
UPDATE consistency.idempotency_keys SET lease_expires_at = now() - interval '1 second'
 WHERE key = 'pay-1';
SELECT status, response, recovery_point, attempt
  FROM consistency.idem_lease('pay-1', 'fp-pay', lease => '1 hour');
-- the old worker comes back: fenced out by its attempt number
SELECT consistency.idem_checkpoint('pay-1', 'charged card again', attempt => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_complete('pay-1', '{"paid": true}', attempt => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_complete('pay-1', '{"paid": true}', attempt => 2);
SELECT status, response, recovery_point, attempt FROM consistency.idem_lease('pay-1', 'fp-pay');
SELECT * FROM consistency.idem_begin('pay-1', 'fp-pay');
SELECT consistency.idem_checkpoint('pay-1', 'too late');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_release('pay-1');
\echo :LAST_ERROR_SQLSTATE
-- a failed attempt is released and can be retried from scratch
SELECT status, attempt FROM consistency.idem_lease('pay-2');
SELECT consistency.idem_checkpoint('pay-2', 'step 1') IS NOT NULL AS checkpointed;
SELECT consistency.idem_release('pay-2', attempt => 7);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_release('pay-2');
SELECT consistency.idem_release('pay-2');
SELECT status, recovery_point, attempt FROM consistency.idem_lease('pay-2');
-- a transactional claim of an abandoned lease takes it over too
UPDATE consistency.idempotency_keys SET lease_expires_at = now() - interval '1 second'
 WHERE key = 'pay-2';
BEGIN;
SELECT * FROM consistency.idem_begin('pay-2');
SELECT consistency.idem_complete('pay-2', '{"paid": "by transaction"}');
COMMIT;
SELECT state, response, attempt FROM consistency.idempotency_keys WHERE key = 'pay-2';
-- a lease past its ttl is as good as absent: a fresh start, not a takeover
SELECT status, attempt FROM consistency.idem_lease('pay-3', ttl => '1 hour');
SELECT consistency.idem_checkpoint('pay-3', 'half done') IS NOT NULL AS checkpointed;
UPDATE consistency.idempotency_keys
   SET lease_expires_at = now() - interval '2 seconds', expires_at = now() - interval '1 second'
 WHERE key = 'pay-3';
BEGIN;
SELECT * FROM consistency.idem_begin('pay-3');
SELECT consistency.idem_complete('pay-3', '{"fresh": true}');
COMMIT;
SELECT state, response, recovery_point, attempt FROM consistency.idempotency_keys WHERE key = 'pay-3';
-- checkpoints are for leases only
SELECT consistency.idem_checkpoint('never-leased', 'x');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT * FROM consistency.idem_begin('claimed-here');
SELECT consistency.idem_checkpoint('claimed-here', 'x');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT * FROM consistency.idem_begin('claimed-here');
SELECT * FROM consistency.idem_lease('claimed-here');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- 14. wait => false on a key nobody holds behaves like the default.
BEGIN;
SELECT * FROM consistency.idem_begin('no-wait', wait => false);
SELECT consistency.idem_complete('no-wait', '"ok"');
COMMIT;
SELECT * FROM consistency.idem_begin('no-wait', wait => false);

-- 15. Savepoints restore exactly the claims as they were before the savepoint: a claim given
--     up and taken again inside a savepoint that rolls back is the claim made before it,
--     still unanswered (its fingerprint, ttl and replaced row included).
-- 15a. The reported case: the order must not commit without its key.
BEGIN;
SELECT * FROM consistency.idem_begin('sp-1', 'fp-1');
INSERT INTO orders (item, qty) VALUES ('sp-1', 1);
SAVEPOINT s;
SELECT consistency.idem_release('sp-1');
SELECT * FROM consistency.idem_begin('sp-1', 'fp-1');
ROLLBACK TO SAVEPOINT s;
COMMIT;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS sp_1_orders FROM orders WHERE item = 'sp-1';
SELECT count(*) AS sp_1_keys FROM consistency.idempotency_keys WHERE key = 'sp-1';
-- 15b. The restored claim is the one made before the savepoint: its fingerprint and ttl.
BEGIN;
SELECT * FROM consistency.idem_begin('sp-2', 'fp-1', ttl => '1 hour');
SAVEPOINT s;
SELECT consistency.idem_release('sp-2');
SELECT * FROM consistency.idem_begin('sp-2', 'fp-2', ttl => '2 days');
ROLLBACK TO SAVEPOINT s;
SELECT * FROM consistency.idem_begin('sp-2', 'fp-2');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT * FROM consistency.idem_begin('sp-2', 'fp-1', ttl => '1 hour');
SAVEPOINT s;
SELECT consistency.idem_release('sp-2');
SELECT * FROM consistency.idem_begin('sp-2', 'fp-2', ttl => '2 days');
SELECT consistency.idem_complete('sp-2', '{"in": "savepoint"}');
ROLLBACK TO SAVEPOINT s;
SELECT * FROM consistency.idem_begin('sp-2', 'fp-1');	-- still open, not completed
SELECT consistency.idem_complete('sp-2', '{"in": "top"}');
COMMIT;
SELECT key, fingerprint, response, expires_at - created_at AS ttl
  FROM consistency.idempotency_keys WHERE key = 'sp-2';
-- 15c. Nested: released in one savepoint, taken again in a released inner one; rolling
--      back the outer one brings the first claim back.
BEGIN;
SELECT * FROM consistency.idem_begin('sp-3', 'fp-1');
SAVEPOINT a;
SELECT consistency.idem_release('sp-3');
SAVEPOINT b;
SELECT * FROM consistency.idem_begin('sp-3', 'fp-2');
RELEASE SAVEPOINT b;
ROLLBACK TO SAVEPOINT a;
COMMIT;
\echo :LAST_ERROR_SQLSTATE
-- 15d. Released in an inner savepoint that is released, taken again in the outer one,
--      then the outer one rolls back: the claim of the transaction is back.
BEGIN;
SELECT * FROM consistency.idem_begin('sp-4', 'fp-1');
SAVEPOINT a;
SAVEPOINT b;
SELECT consistency.idem_release('sp-4');
RELEASE SAVEPOINT b;
SELECT * FROM consistency.idem_begin('sp-4', 'fp-2');
ROLLBACK TO SAVEPOINT a;
SELECT * FROM consistency.idem_begin('sp-4', 'fp-2');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- 15e. A claim made in a savepoint, given up and taken again in an inner one that rolls
--      back: the outer savepoint's claim is back; completed and released, it commits.
BEGIN;
SAVEPOINT a;
SELECT * FROM consistency.idem_begin('sp-5', 'fp-1');
SAVEPOINT b;
SELECT consistency.idem_release('sp-5');
SELECT * FROM consistency.idem_begin('sp-5', 'fp-2');
ROLLBACK TO SAVEPOINT b;
SELECT consistency.idem_complete('sp-5', '{"v": 5}');
RELEASE SAVEPOINT a;
COMMIT;
SELECT key, fingerprint, response FROM consistency.idempotency_keys WHERE key = 'sp-5';
-- 15f. Everything that commits keeps its effect: released and re-claimed in savepoints
--      that are released, the new claim is the one that must be (and is) completed.
BEGIN;
SELECT * FROM consistency.idem_begin('sp-6', 'fp-1');
SAVEPOINT a;
SELECT consistency.idem_release('sp-6');
SAVEPOINT b;
SELECT * FROM consistency.idem_begin('sp-6', 'fp-2');
RELEASE SAVEPOINT b;
RELEASE SAVEPOINT a;
COMMIT;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT * FROM consistency.idem_begin('sp-6', 'fp-1');
SAVEPOINT a;
SELECT consistency.idem_release('sp-6');
SAVEPOINT b;
SELECT * FROM consistency.idem_begin('sp-6', 'fp-2');
SELECT consistency.idem_complete('sp-6', '{"v": 6}');
RELEASE SAVEPOINT b;
RELEASE SAVEPOINT a;
COMMIT;
SELECT key, fingerprint, response FROM consistency.idempotency_keys WHERE key = 'sp-6';
-- 15g. A savepoint that rolls back a release made at several levels: repeated
--      release/claim cycles in one savepoint are all undone.
BEGIN;
SELECT * FROM consistency.idem_begin('sp-7', 'fp-1');
SAVEPOINT a;
SELECT consistency.idem_release('sp-7');
SELECT * FROM consistency.idem_begin('sp-7', 'fp-2');
SELECT consistency.idem_release('sp-7');
SELECT * FROM consistency.idem_begin('sp-7', 'fp-3');
ROLLBACK TO SAVEPOINT a;
SELECT * FROM consistency.idem_begin('sp-7', 'fp-1');
SELECT consistency.idem_release('sp-7');
COMMIT;
SELECT count(*) AS sp_7_keys FROM consistency.idempotency_keys WHERE key LIKE 'sp-7';

-- 16. More bad input: every argument of every function, and nothing is written.
SELECT key_count() AS keys_before;
SELECT * FROM consistency.idem_begin('k', ttl => '1000000 years');	-- past timestamptz
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_complete('', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_complete('k', '{}', scope => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_complete('k', '{}', scope => repeat('s', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_complete('k', '{}', attempt => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease(repeat('k', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', repeat('f', 1025));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', lease => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', lease => '-5 minutes');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', lease => '1000000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', scope => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', scope => repeat('s', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', ttl => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', ttl => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', ttl => '1000000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM consistency.idem_lease('k', wait => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_checkpoint(NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_checkpoint('', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_checkpoint('k', 'x', scope => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_checkpoint('k', 'x', attempt => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_release('');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_release(repeat('k', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_release('k', scope => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_release('k', attempt => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_purge(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT key_count() AS keys_after;
-- a bad argument to a second call leaves the transaction's claim as it was
BEGIN;
SELECT * FROM consistency.idem_begin('bad-2nd', 'fp');
SAVEPOINT s;
SELECT consistency.idem_complete('bad-2nd', '{}', attempt => 0);
ROLLBACK TO SAVEPOINT s;
SELECT * FROM consistency.idem_begin('bad-2nd', 'fp');
SELECT consistency.idem_complete('bad-2nd', '"ok"');
COMMIT;
SELECT key, response FROM consistency.idempotency_keys WHERE key = 'bad-2nd';

-- 17. Privileges: an application login granted only consistency_user uses every function
--     (and reads the table, as documented), but cannot write the table directly: a
--     stored response cannot be forged.  consistency_admin purges without write
--     privileges either.
CREATE ROLE idem_app LOGIN IN ROLE consistency_user;
CREATE ROLE idem_admin LOGIN IN ROLE consistency_admin;
GRANT ALL ON orders, orders_id_seq TO idem_app;
SET ROLE idem_app;
BEGIN;
SELECT * FROM consistency.idem_begin('priv-1', 'fp');
INSERT INTO orders (item, qty) VALUES ('priv-1', 1);
SELECT consistency.idem_complete('priv-1', '{"order": "priv-1"}');
COMMIT;
SELECT * FROM consistency.idem_begin('priv-1', 'fp');
SELECT * FROM consistency.idem_begin('priv-1', 'other');
\echo :LAST_ERROR_SQLSTATE
-- an error raised inside the functions (while they act as the table's owner) and caught by
-- the caller leaves the caller as itself, still unable to write the table
DO $$
BEGIN
	PERFORM consistency.idem_begin('priv-1', 'other');
EXCEPTION WHEN SQLSTATE 'YC001' THEN
	RAISE NOTICE 'caught YC001 as %', current_user;
	BEGIN
		DELETE FROM consistency.idempotency_keys WHERE key = 'priv-1';
	EXCEPTION WHEN insufficient_privilege THEN
		RAISE NOTICE 'and DELETE is still refused';
	END;
END $$;
SELECT current_user;
BEGIN;
SELECT * FROM consistency.idem_begin('priv-2');
SELECT consistency.idem_release('priv-2');
COMMIT;
SELECT status, attempt FROM consistency.idem_lease('priv-3', 'fp', lease => '1 hour');
SELECT consistency.idem_checkpoint('priv-3', 'step 1', attempt => 1) > now() AS renewed;
SELECT consistency.idem_complete('priv-3', '{"paid": true}', attempt => 1);
SELECT status, response FROM consistency.idem_lease('priv-3', 'fp');
SELECT status, attempt FROM consistency.idem_lease('priv-4');
SELECT consistency.idem_release('priv-4', attempt => 1);
SELECT status, attempt FROM consistency.idem_lease('priv-5', lease => '1 hour');
SELECT status, attempt FROM consistency.idem_lease('priv-6', lease => '1 hour');
SELECT consistency.idem_purge();
\echo :LAST_ERROR_SQLSTATE
-- the documented read
SELECT key, state, response, attempt FROM consistency.idempotency_keys
 WHERE key LIKE 'priv-%' ORDER BY key;
-- direct writes are refused
INSERT INTO consistency.idempotency_keys (key, state, response, created_at, expires_at)
VALUES ('forged', 'completed', '{"forged": true}', now(), now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
UPDATE consistency.idempotency_keys SET response = '{"forged": true}' WHERE key = 'priv-1';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM consistency.idempotency_keys WHERE key = 'priv-1';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- expire what the other code paths need: a lease run out (takeover), a key and a lease past
-- their ttl (reclaimed by idem_begin and by idem_lease)
UPDATE consistency.idempotency_keys SET lease_expires_at = now() - interval '1 second'
 WHERE key = 'priv-5';
UPDATE consistency.idempotency_keys
   SET lease_expires_at = now() - interval '2 seconds', expires_at = now() - interval '1 second'
 WHERE key IN ('priv-1', 'priv-6');
SET ROLE idem_app;
SELECT status, attempt FROM consistency.idem_lease('priv-5', lease => '1 hour');
SELECT consistency.idem_complete('priv-5', '{"resumed": true}', attempt => 2);
SELECT status, attempt FROM consistency.idem_lease('priv-6', lease => '1 hour');
SELECT consistency.idem_complete('priv-6', '{"reclaimed": true}', attempt => 1);
BEGIN;
SELECT * FROM consistency.idem_begin('priv-1', 'fp-again');
SELECT consistency.idem_complete('priv-1', '{"order": "again"}');
COMMIT;
RESET ROLE;
SELECT key, fingerprint, state, response, attempt FROM consistency.idempotency_keys
 WHERE key LIKE 'priv-%' OR key = 'forged' ORDER BY key;
UPDATE consistency.idempotency_keys SET expires_at = now() - interval '1 second'
 WHERE key LIKE 'priv-%';
SET ROLE idem_admin;
INSERT INTO consistency.idempotency_keys (key, state, created_at, expires_at)
VALUES ('forged', 'completed', now(), now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
UPDATE consistency.idempotency_keys SET response = '{"forged": true}';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM consistency.idempotency_keys;
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_purge() AS purged;
RESET ROLE;
SELECT count(*) AS priv_left FROM consistency.idempotency_keys WHERE key LIKE 'priv-%';
SELECT has_table_privilege('consistency_user', 'consistency.idempotency_keys', 'SELECT') AS user_select,
	   has_table_privilege('consistency_user', 'consistency.idempotency_keys', 'INSERT, UPDATE, DELETE, TRUNCATE') AS user_write,
	   has_table_privilege('consistency_admin', 'consistency.idempotency_keys', 'INSERT, UPDATE, DELETE, TRUNCATE') AS admin_write;
REVOKE ALL ON orders, orders_id_seq FROM idem_app;
DROP ROLE idem_admin;
DROP ROLE idem_app;

-- 18. idem_complete writes a fresh claim's row without the executor only while the table is
--     as the extension made it: a trigger a DBA added still fires (the SQL statement is used),
--     and the row is the same either way.  A read-only transaction is refused as an INSERT is.
CREATE TABLE keys_audit (key text, state text);
CREATE FUNCTION keys_audit() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN INSERT INTO public.keys_audit VALUES (NEW.key, NEW.state); RETURN NEW; END $$;
CREATE TRIGGER keys_audit AFTER INSERT ON consistency.idempotency_keys
	FOR EACH ROW EXECUTE FUNCTION keys_audit();
BEGIN;
SELECT status FROM consistency.idem_begin('audited', 'fp-x');
SELECT consistency.idem_complete('audited', '{"n": 1}');
COMMIT;
DROP TRIGGER keys_audit ON consistency.idempotency_keys;
BEGIN;
SELECT status FROM consistency.idem_begin('direct', 'fp-x');
SELECT consistency.idem_complete('direct', '{"n": 1}');
-- visible at once to the same transaction, and replayed
SELECT status, response FROM consistency.idem_begin('direct', 'fp-x');
COMMIT;
SELECT * FROM keys_audit;
SELECT key, fingerprint, state, response, attempt, recovery_point, lease_duration,
	   lease_expires_at, completed_at IS NOT NULL AS completed, expires_at > created_at AS expires_later
  FROM consistency.idempotency_keys WHERE key IN ('audited', 'direct') ORDER BY key;
SELECT status, response FROM consistency.idem_begin('direct', 'fp-x');
SELECT * FROM consistency.idem_begin('direct', 'fp-y');
\echo :LAST_ERROR_SQLSTATE
BEGIN READ ONLY;
SELECT status FROM consistency.idem_begin('read-only');
SELECT consistency.idem_complete('read-only', '{}');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT count(*) AS read_only_keys FROM consistency.idempotency_keys WHERE key = 'read-only';
-- every row written directly is in every index (amcheck)
CREATE EXTENSION amcheck;
SELECT c.relname, bt_index_parent_check(c.oid, true) AS checked
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'consistency.idempotency_keys'::regclass ORDER BY 1;
DROP EXTENSION amcheck;
DROP TABLE keys_audit;
DROP FUNCTION keys_audit();
-- 18b. A state column a DBA changed to another type (text): a new session's completion is
--      stored by the statement, which converts the value (the direct write stores the enum),
--      and is replayed.
ALTER TABLE consistency.idempotency_keys ALTER COLUMN state TYPE text;
\c
BEGIN;
SELECT status FROM consistency.idem_begin('as-text', 'fp-x');
SELECT consistency.idem_complete('as-text', '{"n": 1}');
COMMIT;
SELECT key, state, response FROM consistency.idempotency_keys WHERE key = 'as-text';
SELECT status, response FROM consistency.idem_begin('as-text', 'fp-x');
ALTER TABLE consistency.idempotency_keys
	ALTER COLUMN state TYPE consistency.idem_state USING state::consistency.idem_state;
DELETE FROM consistency.idempotency_keys WHERE key = 'as-text';

-- 19. idem_claim and idem_finish: idem_begin's answer as one value (NULL: run it; else the
--     stored response; YC006 while in progress) and idem_complete returning the response, so
--     that a PL/pgSQL handler is three expressions.
CREATE FUNCTION create_order_idem(p_key text, p_item text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_response jsonb;
BEGIN
	v_response := consistency.idem_claim(p_key, md5(p_item));
	IF v_response IS NOT NULL THEN
		RETURN v_response;
	END IF;
	INSERT INTO orders (item, qty) VALUES (p_item, 1);
	RETURN consistency.idem_finish(p_key, jsonb_build_object('item', p_item, 'qty', 1));
END $$;
SELECT create_order_idem('claim-1', 'lamp');
SELECT create_order_idem('claim-1', 'lamp');			-- the retry: replayed, nothing written
SELECT count(*) AS claim_orders FROM orders WHERE item IN ('lamp', 'rug');
SELECT key, state, response FROM consistency.idempotency_keys WHERE key = 'claim-1';
SELECT create_order_idem('claim-1', 'rug');				-- same key, another request
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS claim_orders FROM orders WHERE item IN ('lamp', 'rug');
-- within one transaction: claimed (NULL again), then completed (replayed)
BEGIN;
SELECT consistency.idem_claim('claim-2') IS NULL AS run_it;
SELECT consistency.idem_claim('claim-2') IS NULL AS still_run_it;
SELECT consistency.idem_finish('claim-2', '{"n": 2}');
SELECT consistency.idem_claim('claim-2');
COMMIT;
-- a claim that is never finished cannot commit (YC005), and leaves no key
BEGIN;
SELECT consistency.idem_claim('claim-3') IS NULL AS run_it;
COMMIT;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS claim_3_keys FROM consistency.idempotency_keys WHERE key = 'claim-3';
-- a live lease: YC006 with or without waiting, the lease unchanged; its worker
-- finishes it with idem_finish, and then idem_claim replays
SELECT status, attempt FROM consistency.idem_lease('claim-4', 'fp-4');
BEGIN;
SELECT consistency.idem_claim('claim-4', 'fp-4');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT consistency.idem_claim('claim-4', 'fp-4', wait => false);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT state, attempt FROM consistency.idempotency_keys WHERE key = 'claim-4';
-- the same in a scope: the error names it
SELECT status, attempt FROM consistency.idem_lease('claim-4', 'fp-4', scope => 'jobs');
SELECT consistency.idem_claim('claim-4', 'fp-4', scope => 'jobs');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_finish('claim-4', '{"n": 4}', attempt => 2);	-- not its attempt
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_finish('claim-4', '{"n": 4}', attempt => 1);
SELECT consistency.idem_claim('claim-4', 'fp-4');
-- idem_finish refuses what idem_complete refuses, writing nothing
SELECT consistency.idem_finish('never-claimed', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_finish('claim-2', '{"n": 3}');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT consistency.idem_claim('claim-5') IS NULL AS run_it;
SELECT consistency.idem_finish('claim-5', NULL);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT consistency.idem_claim(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_claim('');
\echo :LAST_ERROR_SQLSTATE
SELECT consistency.idem_claim('claim-6', ttl => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS claim_keys FROM consistency.idempotency_keys WHERE key LIKE 'claim-%' AND scope = '';
DROP FUNCTION create_order_idem(text, text);

-- 20. The registry of claims is emptied when a transaction ends, however it ends and however
--     many keys it held: a claim of the next transaction is a real one (it takes the key's
--     lock, 18755), not an entry left over.
CREATE FUNCTION my_key_locks() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM pg_locks
	 WHERE locktype = 'advisory' AND objsubid = 18755 AND pid = pg_backend_pid() $$;
BEGIN;
SELECT consistency.idem_claim('reg-1') IS NULL AS run_it, my_key_locks();
ROLLBACK;
BEGIN;
SELECT consistency.idem_claim('reg-1') IS NULL AS run_it, my_key_locks();
SELECT consistency.idem_finish('reg-1', '{"n": 1}');
COMMIT;
BEGIN;
DO $$ BEGIN FOR i IN 1..100 LOOP PERFORM consistency.idem_claim('reg-many-' || i); END LOOP; END $$;
SELECT my_key_locks();
ROLLBACK;
BEGIN;
SELECT consistency.idem_claim('reg-many-7') IS NULL AS run_it, my_key_locks();
DO $$ BEGIN FOR i IN 1..100 LOOP
	IF consistency.idem_claim('reg-many-' || i) IS NULL THEN
		PERFORM consistency.idem_finish('reg-many-' || i, jsonb_build_object('n', i));
	END IF;
END LOOP; END $$;
SELECT my_key_locks();
COMMIT;
BEGIN;
SELECT consistency.idem_claim('reg-many-7'), consistency.idem_claim('reg-2') IS NULL AS run_it,
	   my_key_locks();
SELECT consistency.idem_release('reg-2');
COMMIT;
SELECT count(*) AS reg_keys FROM consistency.idempotency_keys WHERE key LIKE 'reg-%';
DROP FUNCTION my_key_locks();

DROP TABLE orders;
DROP FUNCTION key_count();
DELETE FROM consistency.idempotency_keys;
