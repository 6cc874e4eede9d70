/*-------------------------------------------------------------------------
 *
 * ryw.c
 *	  Read-your-writes in C: libpq and the consistency router library
 *	  (consistency_router.h, libconsistency_router).
 *
 *	  ryw --primary CONNINFO --standby CONNINFO [--standby-admin CONNINFO] [--writes N]
 *
 * Writes a note on the primary through crouter_write() (the router keeps the
 * commit's token, from the consistency.last_commit_token ParameterStatus when
 * the primary preloads the library) and reads it back through crouter_read(),
 * which sends the read to the standby if it has replayed the token and to the
 * primary otherwise: never a stale read.  With --standby-admin (a superuser on
 * the standby) it pauses the standby's replay to show the fallback to the
 * primary, then resumes it.  The table is public.ryw_notes (id bigint
 * generated always as identity primary key, body text not null).
 *
 * Every connection gets an empty search_path and every name is qualified.
 * Prints one line per check ("ok ..." or "not ok ..."); exits 1 if one failed,
 * 2 if it could not run.
 *
 * IDENTIFICATION
 *	  examples/c/ryw.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "consistency_router.h"

static int	failed = 0;

static void
check(const char *name, int ok, const char *why)
{
	printf("%s %s%s%s\n", ok ? "ok" : "not ok", name, ok ? "" : ": ", ok ? "" : why);
	fflush(stdout);
	if (!ok)
		failed++;
}

static void
die(const char *what, PGconn *conn)
{
	fprintf(stderr, "ryw: %s%s%s\n", what, conn ? ": " : "", conn ? PQerrorMessage(conn) : "");
	exit(2);
}

/* Run a command that returns no rows the caller wants; die on failure. */
static void
run(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		die(sql, conn);
	PQclear(res);
}

/* Like pg_dump: nothing a database user created may stand in for what we call. */
static void
empty_search_path(PGconn *conn)
{
	run(conn, "SELECT pg_catalog.set_config('search_path', '', false)");
}

/* Write a note through the router; returns its id (in buf). */
static void
write_note(CRouter *r, const char *body, char *id, size_t idsize)
{
	const char *params[1] = {body};
	PGresult   *res = crouter_write(r, "INSERT INTO public.ryw_notes (body) VALUES ($1) RETURNING id",
									1, params);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		die("write failed", crouter_primary(r));
	snprintf(id, idsize, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
}

/* Read a note back through the router: 1 if it has body; *served_by as crouter_read's. */
static int
read_note(CRouter *r, const char *id, const char *body, int *served_by)
{
	const char *params[1] = {id};
	PGresult   *res = crouter_read(r, "SELECT body FROM public.ryw_notes WHERE id OPERATOR(pg_catalog.=) $1",
								   1, params, served_by);
	int			ok;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "ryw: read failed: %s\n", res ? PQresultErrorMessage(res) : "out of memory");
		PQclear(res);
		return 0;
	}
	ok = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), body) == 0;
	PQclear(res);
	return ok;
}

int
main(int argc, char **argv)
{
	const char *primary = NULL;
	const char *standby = NULL;
	const char *standby_admin = NULL;
	int			writes = 50;
	CRouter    *r;
	CRouterStats st;
	int			stale = 0;
	int			by_standby = 0;
	int			by_primary = 0;
	int			i;
	char		why[128];
	char		id[32];
	char		body[64];
	int			served;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--primary") == 0 && i + 1 < argc)
			primary = argv[++i];
		else if (strcmp(argv[i], "--standby") == 0 && i + 1 < argc)
			standby = argv[++i];
		else if (strcmp(argv[i], "--standby-admin") == 0 && i + 1 < argc)
			standby_admin = argv[++i];
		else if (strcmp(argv[i], "--writes") == 0 && i + 1 < argc)
			writes = atoi(argv[++i]);
		else
		{
			fprintf(stderr, "usage: ryw --primary CONNINFO --standby CONNINFO "
					"[--standby-admin CONNINFO] [--writes N]\n");
			return 2;
		}
	}
	if (primary == NULL || standby == NULL || writes < 1)
		die("--primary and --standby are required, --writes at least 1", NULL);

	r = crouter_connect(primary, &standby, 1);
	if (r == NULL || !crouter_ok(r))
		die(r ? crouter_error(r) : "out of memory", NULL);
	if (crouter_standby(r, 0) == NULL || PQstatus(crouter_standby(r, 0)) != CONNECTION_OK)
		die("the standby is not usable", NULL);
	empty_search_path(crouter_primary(r));
	empty_search_path(crouter_standby(r, 0));
	crouter_set_wait_budget(r, 2000);	/* a read may wait up to 2 s for the standby */

	/* 1. Write, then read it back: never stale, from the standby whenever it has caught up. */
	for (i = 1; i <= writes; i++)
	{
		snprintf(body, sizeof(body), "note %d", i);
		write_note(r, body, id, sizeof(id));
		if (!read_note(r, id, body, &served))
			stale++;
		else if (served == CROUTER_PRIMARY)
			by_primary++;
		else
			by_standby++;
	}
	st = crouter_stats(r);
	printf("served: %d reads by the standby, %d by the primary\n", by_standby, by_primary);
	snprintf(why, sizeof(why), "%ld from ParameterStatus, %ld by query",
			 st.tokens_from_parameter_status, st.tokens_from_query);
	check("the commit's token arrives as a ParameterStatus",
		  st.tokens_from_parameter_status == writes && strncmp(crouter_token(r), "v1:", 3) == 0, why);
	snprintf(why, sizeof(why), "%d stale reads", stale);
	check("no read is stale", stale == 0, why);
	check("the standby serves reads", by_standby > 0, "every read went to the primary");

	/* 2. The standby falls behind (replay paused): the read goes to the primary, still fresh. */
	if (standby_admin)
	{
		PGconn	   *admin = PQconnectdb(standby_admin);

		if (PQstatus(admin) != CONNECTION_OK)
			die("could not connect to the standby as its superuser", admin);
		empty_search_path(admin);
		run(admin, "SELECT pg_catalog.pg_wal_replay_pause()");
		for (;;)				/* a pause is a request: wait until replay has stopped */
		{
			PGresult   *res = PQexec(admin, "SELECT pg_catalog.pg_get_wal_replay_pause_state()");
			int			paused;

			if (PQresultStatus(res) != PGRES_TUPLES_OK)
				die("could not read the replay pause state", admin);
			paused = strcmp(PQgetvalue(res, 0, 0), "paused") == 0;
			PQclear(res);
			if (paused)
				break;
			PQclear(PQexec(admin, "SELECT pg_catalog.pg_sleep(0.01)"));
		}
		crouter_set_wait_budget(r, 0);
		write_note(r, "while paused", id, sizeof(id));
		check("the primary's answer has the write", read_note(r, id, "while paused", &served),
			  "stale or failed");
		check("a standby behind the token sends the read to the primary", served == CROUTER_PRIMARY,
			  "served by the standby");
		run(admin, "SELECT pg_catalog.pg_wal_replay_resume()");
		crouter_set_wait_budget(r, 60000);
		check("once replay resumes the standby serves the read again",
			  read_note(r, id, "while paused", &served) && served == 0, "stale, failed or primary");
		PQfinish(admin);
	}

	crouter_finish(r);
	return failed ? 1 : 0;
}
