/*-------------------------------------------------------------------------
 *
 * router_example.c
 *	  Example program for the read-your-writes router (src/client/): write on
 *	  the primary, read your write back from a standby, count stale reads.
 *
 *	  router_example --primary CONNINFO [--standby CONNINFO]... [--cycles N]
 *					 [--budget-ms MS] [--pipeline] [--probe]
 *					 [--until FILE [--failover-ms MS]] [--steps]
 *
 * Cycle mode (default): N times, "UPDATE rw_counter SET v = i" through
 * crouter_write(), then "SELECT v FROM rw_counter" through crouter_read(); a
 * read that returns anything but i is stale.  Prints one summary line:
 *	  cycles=N stale=0 primary=P standby=S waited=W standby0=A standby1=B
 *	  tokens_from_parameter_status=T tokens_from_query=Q
 * and exits 1 if any read was stale or failed.
 *
 * Pipeline mode (--pipeline): three writes sent in libpq pipeline mode, each
 * its own implicit transaction (one Sync each), in one round trip; the token
 * arrives in the ParameterStatus messages before the last ReadyForQuery.  It
 * must equal consistency.write_token(), and a routed read must see the last
 * write.  Prints "pipeline ok ..." or exits 1.
 *
 * Probe mode (--probe): two reads before any write, so without a token;
 * prints where each was served ("probe served_by=1,1"; p is the primary).
 *
 * Follow mode (--until FILE, with --failover-ms MS for the router's failover
 * timeout): cycles until FILE exists, across switchovers and failovers.  Cycle
 * i writes "INSERT INTO rw_log VALUES (i); UPDATE rw_counter SET v = i" (one
 * statement) until it is acknowledged, then reads rw_counter.v, which must
 * be i.  One line per event, flushed at once:
 *	  ack I TOKEN MS        write i acknowledged; TOKEN is the router's token after it
 *	  lost I TOKEN MS       a call returned YC303: the write TOKEN names was lost
 *	  stale I GOT MS        a read returned an older value (must never happen)
 *	  retry I SQLSTATE MS   a write failed (connection lost, read-only) and is sent again
 * (MS: the wall clock in milliseconds since the epoch, for the test's timings)
 * then the summary: "follow cycles=N stale=S failed=F lost=L reconnects=R
 * standby=S primary=P max_gap_ms=G" (reads served by standbys and by the
 * primary; G: the longest time between two acknowledged writes).
 *
 * Steps mode (--steps, for tests that change the servers between two router
 * calls): connects even if the primary cannot be reached (printing "connect
 * ok=0|1"), then runs one command per line of stdin and prints one line per
 * command, flushed at once:
 *	  merge TOKEN  -> "merge rc=R token=T"      crouter_merge_token(), the token after
 *	  write SQL    -> "write ok|error SQLSTATE token=T"
 *	  read SQL     -> "read ok VALUE served_by=p|N" or "read error SQLSTATE served_by=..."
 *	  state        -> "state ok=0|1 token=T reconnects=N lost_writes=N error=E"
 *	  quit         -> (nothing) ends, as the end of stdin does; a test that started
 *	                  servers meanwhile cannot rely on that end: they inherit its end
 *	                  of the pipe, and keep it open
 * (T: crouter_token(), "-" if empty; VALUE: the first column of the first
 * row, "-" if none; E: crouter_error() on one line, "-" if empty).
 *
 * IDENTIFICATION
 *	  test/router_example.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consistency_router.h"

#define MAX_STANDBYS 8

static void
die(const char *msg, PGconn *conn)
{
	fprintf(stderr, "router_example: %s%s%s\n", msg, conn ? ": " : "",
			conn ? PQerrorMessage(conn) : "");
	exit(2);
}

static int
run_cycles(CRouter *r, int cycles)
{
	long		per_standby[MAX_STANDBYS] = {0};
	int			stale = 0;
	int			failed = 0;
	int			i;
	CRouterStats st;

	for (i = 1; i <= cycles; i++)
	{
		char		value[16];
		const char *params[1] = {value};
		PGresult   *res;
		int			served;

		snprintf(value, sizeof(value), "%d", i);
		res = crouter_write(r, "UPDATE rw_counter SET v = $1 WHERE id = 1", 1, params);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("write failed", crouter_primary(r));
		PQclear(res);

		res = crouter_read(r, "SELECT v FROM rw_counter WHERE id = 1", 0, NULL, &served);
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		{
			fprintf(stderr, "cycle %d: read failed: %s\n", i,
					res ? PQresultErrorMessage(res) : "out of memory");
			failed++;
		}
		else if (atoi(PQgetvalue(res, 0, 0)) != i)
		{
			fprintf(stderr, "cycle %d: STALE read from %s%d: got %s\n", i,
					served == CROUTER_PRIMARY ? "primary" : "standby",
					served, PQgetvalue(res, 0, 0));
			stale++;
		}
		if (served >= 0 && served < MAX_STANDBYS)
			per_standby[served]++;
		PQclear(res);
	}

	st = crouter_stats(r);
	printf("cycles=%d stale=%d failed=%d primary=%ld standby=%ld waited=%ld",
		   cycles, stale, failed, st.reads_primary, st.reads_standby, st.reads_after_wait);
	for (i = 0; i < crouter_nstandbys(r) && i < MAX_STANDBYS; i++)
		printf(" standby%d=%ld", i, per_standby[i]);
	printf(" tokens_from_parameter_status=%ld tokens_from_query=%ld\n",
		   st.tokens_from_parameter_status, st.tokens_from_query);
	return stale == 0 && failed == 0 ? 0 : 1;
}

/*
 * Probe mode (--probe): two reads before any write (no token), printing where
 * each was served: "probe served_by=<p|0..n-1>,<...>".
 */
static int
run_probe(CRouter *r)
{
	char		where[2][16];
	int			k;

	for (k = 0; k < 2; k++)
	{
		int			served;
		PGresult   *res = crouter_read(r, "SELECT 1", 0, NULL, &served);

		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "probe: read failed: %s\n",
					res ? PQresultErrorMessage(res) : "out of memory");
			PQclear(res);
			return 1;
		}
		PQclear(res);
		if (served == CROUTER_PRIMARY)
			snprintf(where[k], sizeof(where[k]), "p");
		else
			snprintf(where[k], sizeof(where[k]), "%d", served);
	}
	printf("probe served_by=%s,%s\n", where[0], where[1]);
	if (crouter_error(r)[0] != '\0')
		fprintf(stderr, "router_example: %s\n", crouter_error(r));
	return 0;
}

static double
elapsed_ms(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

static long long
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
is_lost(const PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return st != NULL && strcmp(st, "YC303") == 0;
}

static int
run_follow(CRouter *r, const char *until)
{
	long		i = 0;
	long		stale = 0,
				failed = 0,
				lost = 0;
	double		max_gap = 0;
	struct timespec last_ack,
				now;

	setvbuf(stdout, NULL, _IOLBF, 0);
	clock_gettime(CLOCK_MONOTONIC, &last_ack);
	while (access(until, F_OK) != 0)
	{
		char		value[24];
		const char *params[1] = {value};
		PGresult   *res;
		int			served;
		int			tries;

		i++;
		snprintf(value, sizeof(value), "%ld", i);
		for (tries = 0;; tries++)
		{
			const char *st;

			res = crouter_write(r, "WITH l AS (INSERT INTO rw_log VALUES ($1::bigint) ON CONFLICT DO NOTHING)"
								" UPDATE rw_counter SET v = $1::bigint WHERE id = 1", 1, params);
			if (PQresultStatus(res) == PGRES_COMMAND_OK)
				break;
			st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
			if (is_lost(res))
			{
				printf("lost %ld %s %lld\n", i, crouter_lost_token(r), wall_ms());
				lost++;
			}
			else
				printf("retry %ld %s %lld\n", i, st ? st : "-", wall_ms());
			PQclear(res);
			if (tries >= 1000)
			{
				fprintf(stderr, "router_example: cycle %ld: write not acknowledged after %d tries: %s\n",
						i, tries, PQerrorMessage(crouter_primary(r)));
				return 1;
			}
		}
		PQclear(res);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (elapsed_ms(&last_ack, &now) > max_gap)
			max_gap = elapsed_ms(&last_ack, &now);
		last_ack = now;
		printf("ack %ld %s %lld\n", i, crouter_token(r), wall_ms());

		res = crouter_read(r, "SELECT v FROM rw_counter WHERE id = 1", 0, NULL, &served);
		if (is_lost(res))
		{
			printf("lost %ld %s %lld\n", i, crouter_lost_token(r), wall_ms());
			lost++;
		}
		else if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		{
			fprintf(stderr, "cycle %ld: read failed: %s\n", i,
					res ? PQresultErrorMessage(res) : "out of memory");
			failed++;
		}
		else if (atol(PQgetvalue(res, 0, 0)) != i)
		{
			printf("stale %ld %s %lld\n", i, PQgetvalue(res, 0, 0), wall_ms());
			stale++;
		}
		PQclear(res);
	}
	printf("follow cycles=%ld stale=%ld failed=%ld lost=%ld reconnects=%ld standby=%ld primary=%ld max_gap_ms=%.0f\n",
		   i, stale, failed, lost, crouter_reconnects(r), crouter_stats(r).reads_standby,
		   crouter_stats(r).reads_primary, max_gap);
	return stale == 0 && failed == 0 ? 0 : 1;
}

static int
run_pipeline(CRouter *r)
{
	PGconn	   *p = crouter_primary(r);
	const char *reported;
	char		token[CROUTER_TOKEN_SIZE];
	PGresult   *res;
	int			i;
	int			served;
	int			syncs = 0;

	if (!PQenterPipelineMode(p))
		die("cannot enter pipeline mode", p);
	for (i = 1; i <= 3; i++)
	{
		char		value[16];
		const char *params[1] = {value};

		snprintf(value, sizeof(value), "%d", 1000 + i);
		if (!PQsendQueryParams(p, "UPDATE rw_counter SET v = $1 WHERE id = 1",
							   1, NULL, params, NULL, NULL, 0) ||
			!PQpipelineSync(p))
			die("cannot send in pipeline mode", p);
	}
	/* results: (command result, NULL) per query, then PGRES_PIPELINE_SYNC, three times */
	while (syncs < 3)
	{
		res = PQgetResult(p);
		if (res == NULL)
			continue;
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC)
			syncs++;
		else if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("pipelined write failed", p);
		PQclear(res);
	}
	if (!PQexitPipelineMode(p))
		die("cannot leave pipeline mode", p);

	reported = PQparameterStatus(p, "consistency.last_commit_token");
	if (reported == NULL || reported[0] == '\0')
		die("no token reported in pipeline mode (is the library preloaded?)", NULL);
	snprintf(token, sizeof(token), "%s", reported);

	res = PQexec(p, "SELECT consistency.write_token()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || strcmp(PQgetvalue(res, 0, 0), token) != 0)
	{
		fprintf(stderr, "pipeline: reported token %s differs from write_token() %s\n",
				token, PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?");
		return 1;
	}
	PQclear(res);

	if (crouter_merge_token(r, token) != 0)
		die("malformed token", NULL);
	res = crouter_read(r, "SELECT v FROM rw_counter WHERE id = 1", 0, NULL, &served);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || atoi(PQgetvalue(res, 0, 0)) != 1003)
	{
		fprintf(stderr, "pipeline: read did not see the last pipelined write\n");
		return 1;
	}
	printf("pipeline ok token=%s value=%s served_by=%s\n", token, PQgetvalue(res, 0, 0),
		   served == CROUTER_PRIMARY ? "primary" : "standby");
	PQclear(res);
	return 0;
}

/* crouter_error() on one line, "-" if empty. */
static const char *
one_line_error(CRouter *r, char *buf, size_t size)
{
	char	   *c;

	snprintf(buf, size, "%s", crouter_error(r)[0] ? crouter_error(r) : "-");
	for (c = buf; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	return buf;
}

/* "ok", or "error SQLSTATE" ("error -" without one). */
static const char *
result_state(const PGresult *res, char *buf, size_t size)
{
	const char *st;

	if (res != NULL &&
		(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK))
		return "ok";
	st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(buf, size, "error %s", st ? st : "-");
	return buf;
}

static int
run_steps(CRouter *r)
{
	char		line[4096];
	char		err[1024];

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("connect ok=%d error=%s\n", crouter_ok(r), one_line_error(r, err, sizeof(err)));
	while (fgets(line, sizeof(line), stdin) != NULL)
	{
		char	   *arg;
		PGresult   *res;
		char		st[32];
		int			served;

		line[strcspn(line, "\n")] = '\0';
		arg = strchr(line, ' ');
		if (arg != NULL)
			*arg++ = '\0';
		else
			arg = line + strlen(line);
		if (strcmp(line, "merge") == 0)
		{
			int			rc = crouter_merge_token(r, arg);

			printf("merge rc=%d token=%s\n", rc, crouter_token(r)[0] ? crouter_token(r) : "-");
		}
		else if (strcmp(line, "write") == 0)
		{
			res = crouter_write(r, arg, 0, NULL);
			printf("write %s token=%s\n", result_state(res, st, sizeof(st)),
				   crouter_token(r)[0] ? crouter_token(r) : "-");
			PQclear(res);
		}
		else if (strcmp(line, "read") == 0)
		{
			res = crouter_read(r, arg, 0, NULL, &served);
			if (strcmp(result_state(res, st, sizeof(st)), "ok") == 0)
				printf("read ok %s", PQntuples(res) > 0 && PQnfields(res) > 0 ? PQgetvalue(res, 0, 0) : "-");
			else
				printf("read %s", st);
			if (served == CROUTER_PRIMARY)
				printf(" served_by=p\n");
			else
				printf(" served_by=%d\n", served);
			PQclear(res);
		}
		else if (strcmp(line, "quit") == 0)
			break;
		else if (strcmp(line, "state") == 0)
			printf("state ok=%d token=%s reconnects=%ld lost_writes=%ld error=%s\n",
				   crouter_ok(r), crouter_token(r)[0] ? crouter_token(r) : "-",
				   crouter_reconnects(r), crouter_lost_writes(r), one_line_error(r, err, sizeof(err)));
		else
		{
			fprintf(stderr, "router_example: unknown step \"%s\"\n", line);
			return 2;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *primary = NULL;
	const char *standbys[MAX_STANDBYS];
	int			nstandbys = 0;
	int			cycles = 100;
	int			budget_ms = 0;
	int			pipeline = 0;
	int			probe = 0;
	int			steps = 0;
	int			failover_ms = 0;
	const char *until = NULL;
	int			i;
	int			rc;
	CRouter    *r;
	struct timespec t0,
				t1;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--primary") == 0 && i + 1 < argc)
			primary = argv[++i];
		else if (strcmp(argv[i], "--standby") == 0 && i + 1 < argc && nstandbys < MAX_STANDBYS)
			standbys[nstandbys++] = argv[++i];
		else if (strcmp(argv[i], "--cycles") == 0 && i + 1 < argc)
			cycles = atoi(argv[++i]);
		else if (strcmp(argv[i], "--budget-ms") == 0 && i + 1 < argc)
			budget_ms = atoi(argv[++i]);
		else if (strcmp(argv[i], "--pipeline") == 0)
			pipeline = 1;
		else if (strcmp(argv[i], "--probe") == 0)
			probe = 1;
		else if (strcmp(argv[i], "--steps") == 0)
			steps = 1;
		else if (strcmp(argv[i], "--until") == 0 && i + 1 < argc)
			until = argv[++i];
		else if (strcmp(argv[i], "--failover-ms") == 0 && i + 1 < argc)
			failover_ms = atoi(argv[++i]);
		else
		{
			fprintf(stderr, "usage: %s --primary CONNINFO [--standby CONNINFO]... [--cycles N] [--budget-ms MS] [--pipeline] [--probe] [--until FILE [--failover-ms MS]] [--steps]\n",
					argv[0]);
			return 2;
		}
	}
	if (primary == NULL || cycles < 1)
	{
		fprintf(stderr, "router_example: --primary is required and --cycles must be positive\n");
		return 2;
	}

	r = crouter_connect(primary, standbys, nstandbys);
	if (r == NULL)
		die("out of memory", NULL);
	if (!crouter_ok(r) && !steps)
	{
		fprintf(stderr, "router_example: %s\n", crouter_error(r));
		return 2;
	}
	crouter_set_wait_budget(r, budget_ms);
	crouter_set_failover_timeout(r, failover_ms);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = steps ? run_steps(r) : until ? run_follow(r, until) : probe ? run_probe(r) : pipeline ? run_pipeline(r) : run_cycles(r, cycles);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "router_example: %.0f ms\n",
			(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	crouter_finish(r);
	return rc;
}
