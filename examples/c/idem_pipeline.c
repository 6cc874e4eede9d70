/*-------------------------------------------------------------------------
 *
 * idem_pipeline.c
 *	  An idempotent request through libpq pipeline mode: the idempotency key
 *	  costs no round trip of its own.
 *
 *	  idem_pipeline CONNINFO	(a role granted consistency_user, with INSERT on
 *								 public.c_orders (id identity, item text))
 *
 * A request made idempotent one statement at a time makes two more round
 * trips than the plain transaction: idem_begin and idem_complete.  In
 * pipeline mode (libpq 14 and later) the client sends BEGIN and idem_begin
 * together and reads both results after one round trip, then, after the
 * business statements, sends idem_complete and COMMIT together: the request
 * makes as many round trips as the plain transaction.  A replay needs one
 * more, the COMMIT of the transaction that only read the stored response.
 *
 * Runs request "c-order-1" (item "lamp") twice: the first creates the order,
 * the second is answered from the stored response and creates nothing.  The
 * connection gets an empty search_path and every name is qualified; values
 * travel as parameters.  Prints one line per check ("ok ..." or "not ok
 * ..."); exits 1 if one failed, 2 if it could not run.
 *
 * IDENTIFICATION
 *	  examples/c/idem_pipeline.c
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
die(const char *what)
{
	fprintf(stderr, "idem_pipeline: %s: %s", what, PQerrorMessage(conn));
	exit(2);
}

/* Queue one statement with text parameters (nothing is sent before pipeline_sync()). */
static void
queue(const char *sql, int nparams, const char *const *params)
{
	if (!PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0))
		die(sql);
}

/* Send what is queued, with a synchronisation point: one round trip. */
static void
pipeline_sync(void)
{
	if (!PQpipelineSync(conn))
		die("PQpipelineSync");
}

/*
 * The result of the next queued statement (the caller PQclear()s it), after
 * which libpq returns NULL to end that statement's results.
 */
static PGresult *
next_result(ExecStatusType want)
{
	PGresult   *res = PQgetResult(conn);
	PGresult   *end;

	if (res == NULL || PQresultStatus(res) != want)
	{
		fprintf(stderr, "idem_pipeline: expected %s, got %s: %s", PQresStatus(want),
				res ? PQresStatus(PQresultStatus(res)) : "nothing",
				res ? PQresultErrorMessage(res) : "\n");
		exit(2);
	}
	if ((end = PQgetResult(conn)) != NULL)
	{
		fprintf(stderr, "idem_pipeline: more than one result for a statement\n");
		exit(2);
	}
	return res;
}

/* The synchronisation point that ends a round trip's results. */
static void
end_of_round_trip(void)
{
	PGresult   *res = PQgetResult(conn);

	if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC)
	{
		fprintf(stderr, "idem_pipeline: expected the end of the pipeline\n");
		exit(2);
	}
	PQclear(res);
}

/*
 * The handler: create an order for item under the request's key, unless the
 * key was used already.  Returns the response (a static buffer): the stored
 * one for a retry.  Counts its round trips in *trips.
 */
static const char *
create_order(const char *key, const char *item, int *trips)
{
	static char response[256];
	char		fingerprint[64];
	const char *begin_params[2] = {key, fingerprint};
	PGresult   *res;
	char		status[32];

	snprintf(fingerprint, sizeof(fingerprint), "item=%s", item);

	/* round trip 1: BEGIN and idem_begin together */
	queue("BEGIN", 0, NULL);
	queue("SELECT status, response FROM consistency.idem_begin($1, $2)", 2, begin_params);
	pipeline_sync();
	(*trips)++;
	PQclear(next_result(PGRES_COMMAND_OK));
	res = next_result(PGRES_TUPLES_OK);
	snprintf(status, sizeof(status), "%s", PQgetvalue(res, 0, 0));
	snprintf(response, sizeof(response), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	end_of_round_trip();

	if (strcmp(status, "new") != 0)
	{
		/* a retry (replay), or the same request running elsewhere (in_progress) */
		queue("COMMIT", 0, NULL);
		pipeline_sync();
		(*trips)++;
		PQclear(next_result(PGRES_COMMAND_OK));
		end_of_round_trip();
		if (strcmp(status, "replay") != 0)
			snprintf(response, sizeof(response), "%s", status);
		return response;
	}

	/* round trip 2: the business statement */
	{
		const char *p[1] = {item};
		char		order_id[32];

		queue("INSERT INTO public.c_orders (item) VALUES ($1) RETURNING id", 1, p);
		pipeline_sync();
		(*trips)++;
		res = next_result(PGRES_TUPLES_OK);
		snprintf(order_id, sizeof(order_id), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		end_of_round_trip();

		/* round trip 3: idem_complete and COMMIT together */
		{
			const char *cp[2] = {key, order_id};

			queue("SELECT consistency.idem_complete($1,"
				 " pg_catalog.jsonb_build_object('order_id', $2::pg_catalog.int8))", 2, cp);
			queue("COMMIT", 0, NULL);
			pipeline_sync();
			(*trips)++;
			PQclear(next_result(PGRES_TUPLES_OK));
			PQclear(next_result(PGRES_COMMAND_OK));
			end_of_round_trip();
		}
		snprintf(response, sizeof(response), "{\"order_id\": %s}", order_id);
	}
	return response;
}

int
main(int argc, char **argv)
{
	PGresult   *res;
	char		first[256];
	const char *second;
	int			trips = 0;

	if (argc != 2)
	{
		fprintf(stderr, "usage: idem_pipeline CONNINFO\n");
		return 2;
	}
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
		die("connect");
	res = PQexec(conn, "SELECT pg_catalog.set_config('search_path', '', false)");
	check("the search_path is emptied", PQresultStatus(res) == PGRES_TUPLES_OK &&
		  strcmp(PQgetvalue(res, 0, 0), "") == 0, PQresultErrorMessage(res));
	PQclear(res);

	if (!PQenterPipelineMode(conn))
		die("PQenterPipelineMode");
	snprintf(first, sizeof(first), "%s", create_order("c-order-1", "lamp", &trips));
	check("the first request creates an order", strncmp(first, "{\"order_id\": ", 13) == 0, first);
	check("in 3 round trips, as many as BEGIN; INSERT; COMMIT", trips == 3, first);
	trips = 0;
	second = create_order("c-order-1", "lamp", &trips);
	check("its retry is answered with the same response", strcmp(second, first) == 0, second);
	check("in 2 round trips", trips == 2, second);
	if (!PQexitPipelineMode(conn))
		die("PQexitPipelineMode");

	res = PQexec(conn, "SELECT pg_catalog.count(*) FROM public.c_orders");
	check("one order exists", PQresultStatus(res) == PGRES_TUPLES_OK &&
		  strcmp(PQgetvalue(res, 0, 0), "1") == 0, PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(conn);
	return failed ? 1 : 0;
}
