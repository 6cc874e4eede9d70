/*-------------------------------------------------------------------------
 *
 * reserve.c
 *	  Inventory reservation in C through libpq: reserve, confirm, release.
 *
 *	  reserve CONNINFO		(a role granted consistency_admin: it sets the stock)
 *
 * A shop holds stock for an order with consistency.reserve(sku, qty, order id),
 * takes the payment outside the database, then confirm()s the hold (sold) or
 * release()s it (back on sale).  The order id is the reservation id, so a
 * request retried after a lost response holds stock once; the same id for
 * another quantity is refused (YC202); a request that does not fit is told
 * 'insufficient' and holds nothing.  Runs on SKU "c-lamp" (stock 5).
 *
 * The connection gets an empty search_path and every name is qualified; values
 * travel as parameters.  Prints one line per check ("ok ..." or "not ok ...");
 * exits 1 if one failed, 2 if it could not run.
 *
 * IDENTIFICATION
 *	  examples/c/reserve.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

static int	failed = 0;
static PGconn *conn;

static void
check(const char *name, int ok, const char *got)
{
	printf("%s %s%s%s\n", ok ? "ok" : "not ok", name, ok ? "" : ": got ", ok ? "" : got);
	fflush(stdout);
	if (!ok)
		failed++;
}

static void
expect(const char *name, const char *got, const char *want)
{
	check(name, strcmp(got, want) == 0, got);
}

/*
 * Run a one-value query with text parameters.  Returns its value (a static
 * buffer), or "ERROR <sqlstate>" if it failed.
 */
static const char *
value(const char *sql, int nparams, const char *const *params)
{
	static char out[256];
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 1)
		snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
	else if (PQresultStatus(res) == PGRES_FATAL_ERROR)
		snprintf(out, sizeof(out), "ERROR %s", PQresultErrorField(res, PG_DIAG_SQLSTATE));
	else
	{
		fprintf(stderr, "reserve: unexpected result of %s: %s\n", sql, PQresultErrorMessage(res));
		exit(2);
	}
	PQclear(res);
	return out;
}

/* ---- the application's calls --------------------------------------------------------------- */
static const char *
reserve(const char *sku, const char *qty, const char *order_id)
{
	const char *p[3] = {sku, qty, order_id};

	return value("SELECT consistency.reserve($1, $2::pg_catalog.int8, $3, '10 minutes')", 3, p);
}

static const char *
confirm(const char *order_id)
{
	const char *p[1] = {order_id};

	return value("SELECT consistency.confirm($1)", 1, p);
}

static const char *
release(const char *order_id)
{
	const char *p[1] = {order_id};

	return value("SELECT consistency.release($1)", 1, p);
}

static const char *
available(const char *sku)
{
	const char *p[1] = {sku};

	return value("SELECT consistency.available($1)", 1, p);
}
/* ---------------------------------------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	const char *sku[1] = {"c-lamp"};

	if (argc != 2)
	{
		fprintf(stderr, "usage: reserve CONNINFO\n");
		return 2;
	}
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "reserve: %s", PQerrorMessage(conn));
		return 2;
	}
	/* Like pg_dump: nothing a database user created may stand in for what we call. */
	expect("the search_path is emptied", value("SELECT pg_catalog.set_config('search_path', '', false)", 0, NULL), "");

	value("SELECT consistency.stock_set($1, 5)", 1, sku);
	printf("stock: c-lamp 5\n");

	/* An order holds 2 lamps; its retry (a lost response) holds them once. */
	expect("an order reserves 2", reserve("c-lamp", "2", "c-order-1"), "reserved");
	expect("its retry answers reserved", reserve("c-lamp", "2", "c-order-1"), "reserved");
	expect("and holds stock once: 3 available", available("c-lamp"), "3");
	expect("the same order id for another quantity is refused (YC202)", reserve("c-lamp", "3", "c-order-1"),
		   "ERROR YC202");

	/* Paid: confirm sells the hold, and a retried confirm answers the same. */
	expect("confirm sells 2", confirm("c-order-1"), "2");
	expect("a retried confirm answers 2", confirm("c-order-1"), "2");

	/* An order that does not fit holds nothing. */
	expect("an order of 4 is insufficient", reserve("c-lamp", "4", "c-order-2"), "insufficient");
	expect("and holds nothing: 3 available", available("c-lamp"), "3");

	/* A declined payment: release gives the hold back. */
	expect("an order reserves 3", reserve("c-lamp", "3", "c-order-3"), "reserved");
	expect("sold out: 0 available", available("c-lamp"), "0");
	expect("release gives 3 back", release("c-order-3"), "3");
	expect("3 available again", available("c-lamp"), "3");
	expect("a released hold cannot be confirmed (YC204)", confirm("c-order-3"), "ERROR YC204");

	PQfinish(conn);
	return failed ? 1 : 0;
}
