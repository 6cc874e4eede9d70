-- test/fuzz/fixture.sql: a database where every feature of the extension holds data, for the
-- fuzzers (test/fuzz/sqlsmith.sh, test/fuzz/functions.sh).  Run by a superuser in database
-- "fuzz" of a server with the library preloaded and max_prepared_transactions > 0.
\set ON_ERROR_STOP 1
CREATE EXTENSION consistency;

-- The fuzzers connect as these roles: neither is a superuser, so a random statement cannot
-- terminate other backends, change server settings or read files.
CREATE ROLE fuzz_admin LOGIN;
GRANT consistency_admin TO fuzz_admin;
CREATE ROLE fuzz_user LOGIN;
GRANT consistency_user TO fuzz_user;
GRANT ALL ON SCHEMA public TO fuzz_admin, fuzz_user;
-- Let random SQL run for a while but never hang the harness on a lock.
ALTER ROLE fuzz_admin SET lock_timeout = '200ms';
ALTER ROLE fuzz_user SET lock_timeout = '200ms';
ALTER ROLE fuzz_admin SET statement_timeout = '5s';
ALTER ROLE fuzz_user SET statement_timeout = '5s';
ALTER ROLE fuzz_admin SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE fuzz_user SET idle_in_transaction_session_timeout = '60s';

SET ROLE fuzz_admin;

-- Versioning: a plain table, a strict one, a composite key with an integer version, a
-- partitioned one, and a table with odd column names and types.
CREATE TABLE public.products (id int PRIMARY KEY, name text, price numeric(10, 2), stock int,
	tags text[], doc jsonb);
INSERT INTO public.products
	SELECT i, 'product ' || i, i * 1.5, i, ARRAY['t' || i], pg_catalog.jsonb_build_object('n', i)
	  FROM pg_catalog.generate_series(1, 50) AS i;
SELECT consistency.enable_versioning('public.products');
CREATE TABLE public.accounts (id bigint PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
INSERT INTO public.accounts SELECT i, i * 100 FROM pg_catalog.generate_series(1, 20) AS i;
SELECT consistency.enable_versioning('public.accounts', strict => true);
CREATE TABLE public.stock_levels (warehouse text, sku text, qty int, rev int NOT NULL DEFAULT 1,
	PRIMARY KEY (warehouse, sku));
INSERT INTO public.stock_levels SELECT 'w' || (i % 3), 'sku-' || i, i FROM pg_catalog.generate_series(1, 30) AS i;
SELECT consistency.enable_versioning('public.stock_levels', 'rev');
CREATE TABLE public.events (id int, region text, payload text, PRIMARY KEY (id, region))
	PARTITION BY LIST (region);
CREATE TABLE public.events_eu PARTITION OF public.events FOR VALUES IN ('eu');
CREATE TABLE public.events_us PARTITION OF public.events FOR VALUES IN ('us');
INSERT INTO public.events SELECT i, CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END, 'e' || i
  FROM pg_catalog.generate_series(1, 20) AS i;
SELECT consistency.enable_versioning('public.events');
CREATE TABLE public."Odd ""Table""" ("Key" text PRIMARY KEY, "select" int, gen int GENERATED ALWAYS AS ("select" * 2) STORED,
	version bigint NOT NULL DEFAULT 1);
INSERT INTO public."Odd ""Table""" ("Key", "select") VALUES ('a', 1), ('b', 2), ('', 3);
SELECT consistency.enable_versioning('public."Odd ""Table"""');
-- no primary key, and a view: things a regclass argument may name
CREATE TABLE public.nokey (a int, version bigint NOT NULL DEFAULT 1);
INSERT INTO public.nokey VALUES (1), (2);
CREATE VIEW public.products_view AS SELECT id, name FROM public.products;
CREATE SEQUENCE public.some_seq;
UPDATE public.products SET price = price + 1, version = version WHERE id <= 10;

-- Idempotency: completed keys in two scopes, a live lease, an expired lease with a recovery
-- point, and keys already past their expiry (for idem_purge).
BEGIN;
SELECT consistency.idem_begin('order-' || i, 'fp-' || i) FROM pg_catalog.generate_series(1, 20) AS i;
SELECT consistency.idem_complete('order-' || i, pg_catalog.jsonb_build_object('order', i)) FROM pg_catalog.generate_series(1, 20) AS i;
COMMIT;
BEGIN;
SELECT * FROM consistency.idem_begin('order-1', NULL, '1 hour', 'tenant-b');
SELECT consistency.idem_complete('order-1', '"other scope"', 'tenant-b');
SELECT * FROM consistency.idem_begin('short-lived', NULL, '1 millisecond');
SELECT consistency.idem_complete('short-lived', 'null');
COMMIT;
SELECT * FROM consistency.idem_lease('pay-live', 'sha256:1', lease => '1 hour');
SELECT consistency.idem_checkpoint('pay-live', 'authorised', attempt => 1);
SELECT * FROM consistency.idem_lease('pay-expired', 'sha256:2', lease => '1 millisecond');
SELECT consistency.idem_checkpoint('pay-expired', 'step 1', attempt => 1);
SELECT * FROM consistency.idem_lease('pay-done', NULL, lease => '1 hour', scope => 'tenant-b');
SELECT consistency.idem_complete('pay-done', '{"paid": true}', 'tenant-b', 1);

-- Inventory: one-slot and multi-slot SKUs, reservations active, confirmed, released and
-- expired, a multi-SKU reservation.
RESET ROLE;
SELECT consistency.stock_set('sku-' || i, 100, CASE WHEN i % 5 = 0 THEN 8 ELSE 1 END)
  FROM pg_catalog.generate_series(1, 20) AS i;
SELECT consistency.stock_set('hot', 1000, 16);
SELECT consistency.stock_set('empty', 0);
SET ROLE fuzz_admin;
SELECT consistency.reserve('sku-' || (i % 20 + 1), 1 + i % 3, 'res-' || i) FROM pg_catalog.generate_series(1, 40) AS i;
SELECT consistency.reserve('hot', 2, 'hot-' || i) FROM pg_catalog.generate_series(1, 30) AS i;
SELECT consistency.confirm('res-' || i) FROM pg_catalog.generate_series(1, 10) AS i;
SELECT consistency.release('res-' || i) FROM pg_catalog.generate_series(11, 15) AS i;
SELECT consistency.reserve_all('cart-' || i, ARRAY['sku-1', 'sku-5', 'hot'], ARRAY[1, 2, 3]::bigint[])
  FROM pg_catalog.generate_series(1, 5) AS i;
SELECT consistency.reserve('sku-2', 1, 'lapsed-' || i, '1 millisecond') FROM pg_catalog.generate_series(1, 5) AS i;
SELECT consistency.reserve('hot', 1, 'lapsed-hot-' || i, '1 millisecond') FROM pg_catalog.generate_series(1, 5) AS i;
SELECT pg_catalog.pg_sleep(0.01);
SELECT consistency.expire_reservations(3);

-- Two-phase commit: decisions logged (commit and abort), participants prepared with those
-- gids, one with no decision, a hand-made gid, and resolutions in the log.
CREATE TABLE public.ledger (id serial PRIMARY KEY, note text);
BEGIN;
SELECT consistency.tpc_gid('stock') AS gid_commit \gset
SELECT consistency.tpc_log_decision(:'gid_commit');
COMMIT;
BEGIN;
SELECT consistency.tpc_gid('billing') AS gid_abort \gset
SELECT consistency.tpc_log_decision(:'gid_abort', 'abort');
COMMIT;
BEGIN;
SELECT consistency.tpc_gid('lost') AS gid_none \gset
COMMIT;
BEGIN;
SELECT consistency.tpc_gid('resolved') AS gid_resolved \gset
SELECT consistency.tpc_log_decision(:'gid_resolved');
COMMIT;
BEGIN; INSERT INTO public.ledger (note) VALUES ('commit decision'); PREPARE TRANSACTION :'gid_commit';
BEGIN; INSERT INTO public.ledger (note) VALUES ('abort decision'); PREPARE TRANSACTION :'gid_abort';
BEGIN; INSERT INTO public.ledger (note) VALUES ('no decision'); PREPARE TRANSACTION :'gid_none';
BEGIN; INSERT INTO public.ledger (note) VALUES ('hand-made'); PREPARE TRANSACTION 'hand-made gid';
BEGIN; INSERT INTO public.ledger (note) VALUES ('resolved'); PREPARE TRANSACTION :'gid_resolved';
SELECT * FROM consistency.resolve_prepared(:'gid_resolved', dry_run => false);
RESET ROLE;

-- Read privileges for the fuzz roles' random SELECTs (sqlsmith picks tables it can read).
GRANT SELECT ON ALL TABLES IN SCHEMA public TO fuzz_user;
GRANT ALL ON ALL TABLES IN SCHEMA public TO fuzz_admin;
ANALYZE;
