/* consistency--1.0.sql: the SQL surface of the consistency extension, version 1.0. */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION consistency" to load this file. \quit

/*
 * Roles.  consistency_user may call the application functions; consistency_admin may also
 * call the maintenance and resolution functions.  Roles are cluster-wide and outlive the
 * extension, so they are created only when missing and never dropped.
 */
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'consistency_user') THEN
		CREATE ROLE consistency_user NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'consistency_admin') THEN
		CREATE ROLE consistency_admin NOLOGIN;
	END IF;
END
$roles$;
GRANT consistency_user TO consistency_admin;

GRANT USAGE ON SCHEMA @extschema@ TO consistency_user;

/* ------------------------------------------------------------------------------------------
 * Idempotency keys (src/idempotency.c)
 * ------------------------------------------------------------------------------------------
 */

CREATE TABLE @extschema@.idempotency_keys (
	scope            pg_catalog.text        NOT NULL DEFAULT '',
	key              pg_catalog.text        NOT NULL,
	fingerprint      pg_catalog.text,
	state            pg_catalog.text        NOT NULL,
	response         pg_catalog.jsonb,
	recovery_point   pg_catalog.text,
	attempt          pg_catalog.int4        NOT NULL DEFAULT 1,
	lease_duration   pg_catalog.interval,
	lease_expires_at pg_catalog.timestamptz,
	created_at       pg_catalog.timestamptz NOT NULL,
	completed_at     pg_catalog.timestamptz,
	expires_at       pg_catalog.timestamptz NOT NULL,
	PRIMARY KEY (scope, key),
	CONSTRAINT idempotency_keys_state_check
		CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['in_progress', 'completed'])),
	CONSTRAINT idempotency_keys_completed_check
		CHECK ((state OPERATOR(pg_catalog.=) 'completed') OPERATOR(pg_catalog.=)
			   (response IS NOT NULL AND completed_at IS NOT NULL)),
	CONSTRAINT idempotency_keys_lease_check
		CHECK ((lease_expires_at IS NULL) OPERATOR(pg_catalog.=) (lease_duration IS NULL)
			   AND (lease_expires_at IS NULL OR state OPERATOR(pg_catalog.=) 'in_progress')),
	CONSTRAINT idempotency_keys_key_check
		CHECK (pg_catalog.octet_length(key) OPERATOR(pg_catalog.>=) 1
			   AND pg_catalog.octet_length(key) OPERATOR(pg_catalog.<=) 255
			   AND pg_catalog.octet_length(scope) OPERATOR(pg_catalog.<=) 255)
);
CREATE INDEX idempotency_keys_expires_at_idx ON @extschema@.idempotency_keys (expires_at);
COMMENT ON TABLE @extschema@.idempotency_keys IS
	'idempotency keys: one row per (scope, key) with its request fingerprint and stored response';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.idempotency_keys', '');

CREATE FUNCTION @extschema@.idem_begin(
	key pg_catalog.text,
	fingerprint pg_catalog.text DEFAULT NULL,
	ttl pg_catalog.interval DEFAULT '24 hours',
	scope pg_catalog.text DEFAULT '',
	wait pg_catalog.bool DEFAULT true)
RETURNS TABLE (status pg_catalog.text, response pg_catalog.jsonb)
AS 'MODULE_PATHNAME', 'consistency_idem_begin'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_begin(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
	'claim an idempotency key for this transaction: new, replay (with the stored response) or in_progress';

CREATE FUNCTION @extschema@.idem_complete(
	key pg_catalog.text,
	response pg_catalog.jsonb,
	scope pg_catalog.text DEFAULT '',
	attempt pg_catalog.int4 DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'consistency_idem_complete'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_complete(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4) IS
	'store the response of a key claimed in this transaction (or held by a lease), in the caller''s transaction';

CREATE FUNCTION @extschema@.idem_lease(
	key pg_catalog.text,
	fingerprint pg_catalog.text DEFAULT NULL,
	lease pg_catalog.interval DEFAULT '5 minutes',
	scope pg_catalog.text DEFAULT '',
	ttl pg_catalog.interval DEFAULT '24 hours',
	wait pg_catalog.bool DEFAULT true)
RETURNS TABLE (status pg_catalog.text, response pg_catalog.jsonb,
			   recovery_point pg_catalog.text, attempt pg_catalog.int4)
AS 'MODULE_PATHNAME', 'consistency_idem_lease'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_lease(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.interval, pg_catalog.bool) IS
	'take a key for an operation with external side effects: new, replay, in_progress or resume (after an expired lease)';

CREATE FUNCTION @extschema@.idem_checkpoint(
	key pg_catalog.text,
	recovery_point pg_catalog.text,
	scope pg_catalog.text DEFAULT '',
	attempt pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.timestamptz
AS 'MODULE_PATHNAME', 'consistency_idem_checkpoint'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_checkpoint(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
	'record how far a leased operation got and renew the lease; returns the new lease expiry';

CREATE FUNCTION @extschema@.idem_release(
	key pg_catalog.text,
	scope pg_catalog.text DEFAULT '',
	attempt pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'consistency_idem_release'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_release(pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
	'drop an unfinished claim or lease so the operation can be retried; false if there was none';

CREATE FUNCTION @extschema@.idem_purge(batch_size pg_catalog.int4 DEFAULT 10000)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_idem_purge'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.idem_purge(pg_catalog.int4) IS
	'delete up to batch_size expired keys, skipping keys being claimed; returns how many were deleted';

REVOKE ALL ON @extschema@.idempotency_keys FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.idempotency_keys TO consistency_user;
REVOKE ALL ON FUNCTION
	@extschema@.idem_begin(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool),
	@extschema@.idem_complete(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_lease(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.interval, pg_catalog.bool),
	@extschema@.idem_checkpoint(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_release(pg_catalog.text, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_purge(pg_catalog.int4)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.idem_begin(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.bool),
	@extschema@.idem_complete(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_lease(pg_catalog.text, pg_catalog.text, pg_catalog.interval, pg_catalog.text, pg_catalog.interval, pg_catalog.bool),
	@extschema@.idem_checkpoint(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4),
	@extschema@.idem_release(pg_catalog.text, pg_catalog.text, pg_catalog.int4)
	TO consistency_user;
GRANT EXECUTE ON FUNCTION @extschema@.idem_purge(pg_catalog.int4) TO consistency_admin;

/* ------------------------------------------------------------------------------------------
 * Inventory reservations (src/inventory.c, src/inventory_slots.c, src/inventory_stock.c)
 * ------------------------------------------------------------------------------------------
 */

/*
 * One row per (sku, slot): a SKU's stock is the sum over its slots (slots = 1 for most SKUs;
 * a hot SKU spreads its stock over several lock rows).  The CHECKs make oversell impossible
 * even for code that bypasses the functions.  Updates touch only on_hand and reserved (no
 * index on them), and the low fillfactor leaves room on the page, so they are HOT updates.
 * PostgreSQL 15 parses a table's CHECK constraints from their stored text on every statement
 * that writes the table, so the hot tables keep one CHECK each (the one that forbids
 * oversell); value ranges are domains, checked only where a value is assigned (INSERT, or an
 * UPDATE of that column) from a definition cached per backend.
 */
CREATE DOMAIN @extschema@.inventory_slot AS pg_catalog.int4
	CHECK (VALUE OPERATOR(pg_catalog.>=) 0 AND VALUE OPERATOR(pg_catalog.<) 64);
CREATE DOMAIN @extschema@.reservation_qty AS pg_catalog.int8
	CHECK (VALUE OPERATOR(pg_catalog.>) 0);

CREATE TABLE @extschema@.inventory (
	sku      pg_catalog.text NOT NULL,
	slot     @extschema@.inventory_slot NOT NULL DEFAULT 0,
	on_hand  pg_catalog.int8 NOT NULL,
	reserved pg_catalog.int8 NOT NULL DEFAULT 0,
	PRIMARY KEY (sku, slot),
	CONSTRAINT inventory_stock_check
		CHECK (reserved OPERATOR(pg_catalog.>=) 0 AND reserved OPERATOR(pg_catalog.<=) on_hand)
) WITH (fillfactor = 30);
COMMENT ON TABLE @extschema@.inventory IS
	'stock per SKU and slot: available = on_hand - reserved, summed over the slots';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.inventory', '');

/*
 * One row per SKU of a reservation ("line"); reserve() makes line 0 only.  Line 0's primary
 * key is the claim on the reservation id.
 */
CREATE TYPE @extschema@.reservation_status AS ENUM ('active', 'confirmed', 'released', 'expired');

CREATE TABLE @extschema@.reservations (
	reservation_id pg_catalog.text        NOT NULL,
	line           pg_catalog.int4        NOT NULL DEFAULT 0,
	sku            pg_catalog.text        NOT NULL,
	qty            @extschema@.reservation_qty NOT NULL,
	status         @extschema@.reservation_status NOT NULL DEFAULT 'active',
	created_at     pg_catalog.timestamptz NOT NULL,
	expires_at     pg_catalog.timestamptz NOT NULL,
	PRIMARY KEY (reservation_id, line)
);
CREATE INDEX reservations_expiry_idx ON @extschema@.reservations (expires_at)
	WHERE status OPERATOR(pg_catalog.=) 'active' AND line OPERATOR(pg_catalog.=) 0;
COMMENT ON TABLE @extschema@.reservations IS
	'reservations: one row per SKU, status active, confirmed, released or expired';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reservations', '');

CREATE FUNCTION @extschema@.stock_set(
	sku pg_catalog.text,
	on_hand pg_catalog.int8,
	slots pg_catalog.int4 DEFAULT 1)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_stock_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.stock_set(pg_catalog.text, pg_catalog.int8, pg_catalog.int4) IS
	'create a SKU or set its stock on hand, spread over slots lock rows; returns the available units';

CREATE FUNCTION @extschema@.stock_add(sku pg_catalog.text, delta pg_catalog.int8)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_stock_add'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.stock_add(pg_catalog.text, pg_catalog.int8) IS
	'restock (or write off, with a negative delta) a SKU; returns the available units';

CREATE FUNCTION @extschema@.reserve(
	sku pg_catalog.text,
	qty pg_catalog.int8,
	reservation_id pg_catalog.text,
	ttl pg_catalog.interval DEFAULT '15 minutes',
	wait pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_reserve'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.reserve(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool) IS
	'reserve qty units of a SKU under an idempotent reservation id: reserved, insufficient or busy';

CREATE FUNCTION @extschema@.reserve_all(
	reservation_id pg_catalog.text,
	skus pg_catalog.text[],
	qtys pg_catalog.int8[],
	ttl pg_catalog.interval DEFAULT '15 minutes')
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'consistency_reserve_all'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.reserve_all(pg_catalog.text, pg_catalog.text[], pg_catalog.int8[], pg_catalog.interval) IS
	'reserve several SKUs all-or-nothing under one reservation id: reserved or insufficient';

CREATE FUNCTION @extschema@.confirm(reservation_id pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_confirm'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.confirm(pg_catalog.text) IS
	'sell an active reservation: on_hand and reserved drop; returns the units sold';

CREATE FUNCTION @extschema@.release(reservation_id pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_release'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.release(pg_catalog.text) IS
	'give an active reservation''s stock back; returns the units returned (0 if none were held)';

CREATE FUNCTION @extschema@.expire_reservations(batch_size pg_catalog.int4 DEFAULT 1000)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_expire_reservations'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.expire_reservations(pg_catalog.int4) IS
	'expire up to batch_size reservations past their expiry and return their stock; returns how many';

CREATE FUNCTION @extschema@.available(sku pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'consistency_available'
LANGUAGE C STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.available(pg_catalog.text) IS
	'units of a SKU on hand and not reserved (a plain read; works on a standby)';

CREATE FUNCTION @extschema@.check_inventory()
RETURNS TABLE (sku pg_catalog.text, problem pg_catalog.text)
AS 'MODULE_PATHNAME', 'consistency_check_inventory'
LANGUAGE C STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.check_inventory() IS
	'every violated inventory invariant, one row each; empty when all hold';

REVOKE ALL ON @extschema@.inventory, @extschema@.reservations FROM PUBLIC;
REVOKE ALL ON TYPE @extschema@.reservation_status FROM PUBLIC;
GRANT USAGE ON TYPE @extschema@.reservation_status TO consistency_user;
GRANT SELECT, UPDATE ON @extschema@.inventory TO consistency_user;
GRANT INSERT, DELETE ON @extschema@.inventory TO consistency_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.reservations TO consistency_user;
REVOKE ALL ON FUNCTION
	@extschema@.stock_set(pg_catalog.text, pg_catalog.int8, pg_catalog.int4),
	@extschema@.stock_add(pg_catalog.text, pg_catalog.int8),
	@extschema@.reserve(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool),
	@extschema@.reserve_all(pg_catalog.text, pg_catalog.text[], pg_catalog.int8[], pg_catalog.interval),
	@extschema@.confirm(pg_catalog.text),
	@extschema@.release(pg_catalog.text),
	@extschema@.expire_reservations(pg_catalog.int4),
	@extschema@.available(pg_catalog.text),
	@extschema@.check_inventory()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.reserve(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.interval, pg_catalog.bool),
	@extschema@.reserve_all(pg_catalog.text, pg_catalog.text[], pg_catalog.int8[], pg_catalog.interval),
	@extschema@.confirm(pg_catalog.text),
	@extschema@.release(pg_catalog.text),
	@extschema@.available(pg_catalog.text)
	TO consistency_user;
GRANT EXECUTE ON FUNCTION
	@extschema@.stock_set(pg_catalog.text, pg_catalog.int8, pg_catalog.int4),
	@extschema@.stock_add(pg_catalog.text, pg_catalog.int8),
	@extschema@.expire_reservations(pg_catalog.int4),
	@extschema@.check_inventory()
	TO consistency_admin;
