-- examples/http_idempotency/schema.sql: the tables of the example service (app.py).
-- Run once, by the role the service connects as (it needs CREATE on the database), in a
-- database where a superuser ran CREATE EXTENSION consistency and granted that role
-- consistency_user.

-- The shop.  orders and payments record the Idempotency-Key of the request that made them;
-- there is deliberately no unique constraint on it: "one order per key" is what
-- consistency.idem_begin / idem_lease guarantee, and the test checks it.
CREATE SCHEMA shop;
CREATE TABLE shop.orders (
	id              pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	idempotency_key pg_catalog.text NOT NULL,
	customer        pg_catalog.text NOT NULL,
	item            pg_catalog.text NOT NULL,
	qty             pg_catalog.int4 NOT NULL,
	created_at      pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE shop.payments (
	id              pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	idempotency_key pg_catalog.text NOT NULL,
	order_id        pg_catalog.int8 NOT NULL REFERENCES shop.orders,
	amount_cents    pg_catalog.int8 NOT NULL,
	charge_id       pg_catalog.text NOT NULL,
	attempt         pg_catalog.int4 NOT NULL    -- the lease attempt that finished the payment
);

-- Stands in for an external payment provider: reached on a connection of its own, so a
-- charge commits independently of the handler's transaction, as an API call would.  Like
-- real providers it takes the merchant's idempotency key and counts the calls it got.
CREATE SCHEMA provider;
CREATE TABLE provider.charges (
	charge_id    pg_catalog.text PRIMARY KEY,
	merchant_key pg_catalog.text NOT NULL UNIQUE,
	amount_cents pg_catalog.int8 NOT NULL,
	calls        pg_catalog.int4 NOT NULL DEFAULT 1
);
