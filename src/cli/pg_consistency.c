/*-------------------------------------------------------------------------
 *
 * pg_consistency.c
 *	  The DBA's command-line tool for in-doubt two-phase commit (libpq).
 *
 *	  pg_consistency in-doubt [--older-than AGE] [--warning AGE] [--critical AGE]
 *							  [--decisions-from CONNINFO] [CONNINFO]
 *	  pg_consistency resolve [--execute] [--older-than AGE] [--grace AGE]
 *							 [--decisions-from CONNINFO] [CONNINFO]
 *	  pg_consistency stats [CONNINFO]
 *
 * stats prints what the Prometheus queries file (monitoring/) exports, for a
 * terminal: the counters of consistency.stats for every database, the
 * in-doubt transactions of the cluster (how many, the oldest, whether one
 * pins the xmin horizon) and, on a standby, its replay position.  Exits 0,
 * or 3 if it could not connect or query.
 *
 * in-doubt prints consistency.prepared_xacts() of the cluster CONNINFO
 * points at (every database of it: prepared transactions are cluster-wide),
 * and exits like a monitoring check: 0 ok, 1 if a prepared transaction is
 * older than --warning (default 5min), 2 if older than --critical (default
 * 30min), 3 if it could not tell.
 *
 * resolve resolves every prepared transaction older than --older-than
 * (default 10min) with the resolver's rules, as a dry run unless --execute:
 * without --decisions-from through consistency.resolve_stale(); with it, the
 * decision log and transaction status are read from the coordinator
 * CONNINFO (in another cluster), in the same order as the server does
 * (status first, then the decision), and each decided transaction is
 * finished through consistency.resolve_prepared(gid, 'commit'|'rollback'),
 * so the participant's resolution log records it.  Exit codes: 0 nothing
 * left in doubt, 1 something was left (coordinator still running, unknown
 * gid, or a transaction the caller may not finish -- not its owner nor a
 * superuser -- printed as skipped), 2 an action failed or was busy, 3 could
 * not connect or query (the coordinator included), or an option that does
 * not apply (--warning and --critical are in-doubt's, --grace is resolve's
 * with --decisions-from).
 *
 * CONNINFO is a libpq connection string or URI; the database it names must
 * have the consistency extension.
 *
 * Run by a DBA, often a superuser, against databases where other roles can
 * create objects: like pg_dump, it empties search_path right after
 * connecting (and stops if it cannot) and qualifies every function,
 * operator, type and table it names, so nothing a database user created --
 * a better-matching array_to_string() in a schema named after the DBA, say
 * -- runs with the DBA's rights.
 *
 * Gids of format 2 carry their coordinator transaction's nonce: a decision
 * counts only for gids of the same nonce, so that a coordinator xid handed
 * out again (a failover, a point-in-time recovery) does not decide for the
 * lost transaction's participants.  Format 1 (1.0, no nonce) keeps 1.0's
 * rule: any format-1 gid of the same xid.
 *
 * IDENTIFICATION
 *	  src/cli/pg_consistency.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpq-fe.h"

#define EXIT_OK			0
#define EXIT_WARNING	1
#define EXIT_CRITICAL	2
#define EXIT_UNKNOWN	3

static const char *progname = "pg_consistency";

static void
usage(FILE *f)
{
	fprintf(f,
			"%s: list and resolve in-doubt (prepared) transactions\n\n"
			"Usage:\n"
			"  %s in-doubt [--older-than AGE] [--warning AGE] [--critical AGE]\n"
			"              [--decisions-from CONNINFO] [CONNINFO]\n"
			"  %s resolve [--execute] [--older-than AGE] [--grace AGE]\n"
			"             [--decisions-from CONNINFO] [CONNINFO]\n"
			"  %s stats [CONNINFO]\n\n"
			"AGE is a PostgreSQL interval (10min, '1 hour').  in-doubt exits 0 (ok), 1 (a\n"
			"transaction older than --warning, default 5min), 2 (older than --critical,\n"
			"default 30min) or 3 (unknown).  resolve is a dry run unless --execute; it exits\n"
			"0 (nothing left in doubt), 1 (some left), 2 (an action failed or was busy) or 3.\n"
			"stats prints the counters of consistency.stats, the in-doubt summary and the\n"
			"replay position; it exits 0, or 3 if it could not tell.\n",
			progname, progname, progname, progname);
}

static void die(int code, const char *fmt,...) __attribute__((format(printf, 2, 3), noreturn));

static void
die(int code, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static PGconn *
connect_to(const char *conninfo)
{
	PGconn	   *conn = PQconnectdb(conninfo ? conninfo : "");
	PGresult   *res;

	if (PQstatus(conn) != CONNECTION_OK)
		die(EXIT_UNKNOWN, "could not connect: %s", PQerrorMessage(conn));
	/* nothing in the database's schemas may stand in for what we call */
	res = PQexec(conn, "SELECT pg_catalog.set_config('search_path', '', false)");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die(EXIT_UNKNOWN, "could not clear search_path: %s", PQerrorMessage(conn));
	PQclear(res);
	return conn;
}

/* Run a query with text parameters; exit 3 on failure. */
static PGresult *
query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		die(EXIT_UNKNOWN, "query failed: %s", PQerrorMessage(conn));
	return res;
}

/*
 * A gid of consistency.tpc_gid(): cy2:<sysid>:<dboid>:<xid8>:<nonce>[:label],
 * or 1.0's cy1:<sysid>:<dboid>:<xid8>[:label] (nonce "").
 */
#define NONCE_CHARS 16
typedef struct Gid
{
	char		sysid[32];
	char		dboid[16];
	char		xid[32];
	char		nonce[NONCE_CHARS + 1];
} Gid;

static int
take_digits(const char **p, char *out, size_t outsize)
{
	size_t		n = 0;

	while (**p >= '0' && **p <= '9')
	{
		if (n + 1 >= outsize)
			return 0;
		out[n++] = *(*p)++;
	}
	out[n] = '\0';
	return n > 0 && !(n > 1 && out[0] == '0');
}

/*
 * Whether the xid8 in digits names a transaction: its 32-bit xid is normal
 * (at least 3, FirstNormalTransactionId) in every epoch.  The xid of 2^32 + 1,
 * say, is the bootstrap transaction's, which pg_xact_status() calls committed.
 */
static int
xid_is_normal(const char *digits)
{
	unsigned long long v;
	char	   *end;

	errno = 0;
	v = strtoull(digits, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	return (v & 0xFFFFFFFFULL) >= 3;
}

static int
parse_gid(const char *gid, Gid *g)
{
	const char *p = gid;
	int			v2;
	int			i;

	if (strncmp(p, "cy2:", 4) == 0)
		v2 = 1;
	else if (strncmp(p, "cy1:", 4) == 0)
		v2 = 0;
	else
		return 0;
	p += 4;
	if (!take_digits(&p, g->sysid, sizeof(g->sysid)) || *p++ != ':')
		return 0;
	if (!take_digits(&p, g->dboid, sizeof(g->dboid)) || *p++ != ':')
		return 0;
	if (!take_digits(&p, g->xid, sizeof(g->xid)) || !xid_is_normal(g->xid))
		return 0;
	g->nonce[0] = '\0';
	if (v2)
	{
		if (*p++ != ':')
			return 0;
		for (i = 0; i < NONCE_CHARS; i++)
		{
			if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
				return 0;
			g->nonce[i] = p[i];
		}
		g->nonce[NONCE_CHARS] = '\0';
		p += NONCE_CHARS;
	}
	return *p == '\0' || *p == ':';
}

/* Whether a decision logged for gid row_gid decides for gid (same coordinator transaction). */
static int
same_transaction(const char *gid, const Gid *g, const char *row_gid)
{
	Gid			r;

	if (strcmp(gid, row_gid) == 0)
		return 1;
	return parse_gid(row_gid, &r) && strcmp(r.sysid, g->sysid) == 0 &&
		strcmp(r.dboid, g->dboid) == 0 && strcmp(r.xid, g->xid) == 0 &&
		strcmp(r.nonce, g->nonce) == 0;
}

/* The coordinator's identity: cluster and database, and the rules to decide with. */
typedef struct Coordinator
{
	PGconn	   *conn;
	char		sysid[32];
	char		dboid[16];
} Coordinator;

static void
coordinator_open(Coordinator *c, const char *conninfo)
{
	PGresult   *res;

	c->conn = connect_to(conninfo);
	res = query(c->conn,
				"SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system()),"
				" (SELECT oid FROM pg_catalog.pg_database"
				"   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())",
				0, NULL);
	/*
	 * pg_control_system() shows the system identifier as a signed bigint; a
	 * gid carries it unsigned (UINT64_FORMAT, as the server prints it), which
	 * differs from 2^63 on (an initdb after January 2038).
	 */
	snprintf(c->sysid, sizeof(c->sysid), "%llu",
			 (unsigned long long) strtoll(PQgetvalue(res, 0, 0), NULL, 10));
	snprintf(c->dboid, sizeof(c->dboid), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
}

/*
 * The verdict for gid from the coordinator's log: "commit", "rollback",
 * "in_progress" or "unknown", with a reason.  Status first, then the
 * decision in a later statement (a fresh snapshot in autocommit mode).
 */
static const char *
coordinator_decide(Coordinator *c, const char *gid, int older_than_grace,
				   char *reason, size_t reasonsize)
{
	Gid			g;
	PGresult   *res;
	const char *params[3];
	char		status[32] = "";
	char		sysid_signed[32];
	int			status_known;
	const char *verdict;
	int			row = -1;
	int			i;

	if (!parse_gid(gid, &g))
	{
		snprintf(reason, reasonsize, "gid not made by consistency.tpc_gid()");
		return "unknown";
	}
	if (strcmp(g.sysid, c->sysid) != 0 || strcmp(g.dboid, c->dboid) != 0)
	{
		snprintf(reason, reasonsize, "coordinated by cluster %s database %s, not by --decisions-from",
				 g.sysid, g.dboid);
		return "unknown";
	}
	params[0] = g.xid;
	res = PQexecParams(c->conn,
					   "SELECT pg_catalog.pg_xact_status($1::pg_catalog.xid8)",
					   1, NULL, params, NULL, NULL, 0);
	/* no verdict can come from a coordinator that went away: exit 3, not "unknown" */
	if (PQstatus(c->conn) != CONNECTION_OK ||
		(PQresultStatus(res) == PGRES_FATAL_ERROR &&
		 PQresultErrorField(res, PG_DIAG_SQLSTATE) == NULL))
		die(EXIT_UNKNOWN, "lost the connection to the coordinator (--decisions-from): %s",
			PQerrorMessage(c->conn));
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(reason, reasonsize, "coordinator cannot tell the status of transaction %s: %s",
				 g.xid, PQerrorMessage(c->conn));
		PQclear(res);
		return "unknown";
	}
	status_known = !PQgetisnull(res, 0, 0);
	if (status_known)
		snprintf(status, sizeof(status), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (status_known && strcmp(status, "in progress") == 0)
	{
		snprintf(reason, reasonsize, "coordinator transaction %s is still running", g.xid);
		return "in_progress";
	}

	/* tpc_decisions keeps the system identifier as the bigint of the same bits */
	snprintf(sysid_signed, sizeof(sysid_signed), "%lld",
			 (long long) strtoull(g.sysid, NULL, 10));
	params[0] = gid;
	params[1] = sysid_signed;
	params[2] = g.xid;
	/* the gid's own decision first, a sibling's only under the same nonce */
	res = query(c->conn,
				"SELECT decision, gid FROM consistency.tpc_decisions"
				" WHERE gid OPERATOR(pg_catalog.=) $1::pg_catalog.text"
				"  OR (coordinator_sysid OPERATOR(pg_catalog.=) $2::pg_catalog.int8"
				"      AND coordinator_xid OPERATOR(pg_catalog.=) $3::pg_catalog.xid8)"
				" ORDER BY gid OPERATOR(pg_catalog.=) $1::pg_catalog.text DESC, gid",
				3, params);
	for (i = 0; i < PQntuples(res) && row < 0; i++)
		if (same_transaction(gid, &g, PQgetvalue(res, i, 1)))
			row = i;
	if (row >= 0)
	{
		verdict = strcmp(PQgetvalue(res, row, 0), "commit") == 0 ? "commit" : "rollback";
		snprintf(reason, reasonsize, "coordinator logged decision %s (transaction %s %s)",
				 PQgetvalue(res, row, 0), g.xid, status_known ? status : "status no longer known");
	}
	else if (status_known)
	{
		verdict = "rollback";
		snprintf(reason, reasonsize, "coordinator transaction %s %s without a commit decision: presumed abort",
				 g.xid, status);
	}
	else if (older_than_grace)
	{
		verdict = "rollback";
		snprintf(reason, reasonsize, "coordinator transaction %s too old to know, no decision, past --grace: presumed abort",
				 g.xid);
	}
	else
	{
		verdict = "unknown";
		snprintf(reason, reasonsize, "coordinator transaction %s too old to know and no decision; waiting for --grace",
				 g.xid);
	}
	PQclear(res);
	return verdict;
}

static int
worst(int a, int b)
{
	return a > b ? a : b;
}

static int
cmd_in_doubt(PGconn *conn, const char *older_than, const char *warning,
			 const char *critical, Coordinator *coord)
{
	const char *params[3] = {older_than, warning, critical};
	PGresult   *res;
	int			i;
	int			code = EXIT_OK;
	int			n;

	res = query(conn,
				"SELECT gid, database, owner,"
				" pg_catalog.date_trunc('second', age)::pg_catalog.text, xid_age,"
				" pins_xmin_horizon, lock_count, pg_catalog.array_to_string(relations, ','),"
				" pg_catalog.array_to_string(blocked_pids, ','), verdict, evidence,"
				" age OPERATOR(pg_catalog.>=) $2::pg_catalog.interval,"
				" age OPERATOR(pg_catalog.>=) $3::pg_catalog.interval"
				" FROM consistency.prepared_xacts($1::pg_catalog.interval) ORDER BY prepared_at",
				3, params);
	n = PQntuples(res);
	printf("%-40s %-14s %-10s %-9s %8s %4s %6s %-8s %-12s %s\n",
		   "gid", "database", "owner", "age", "xid_age", "pin", "locks", "blocked", "verdict", "evidence");
	for (i = 0; i < n; i++)
	{
		const char *verdict = PQgetvalue(res, i, 9);
		const char *evidence = PQgetvalue(res, i, 10);
		char		reason[1024];

		if (coord != NULL && strcmp(verdict, "unknown") == 0)
		{
			verdict = coordinator_decide(coord, PQgetvalue(res, i, 0), 0, reason, sizeof(reason));
			evidence = reason;
		}
		printf("%-40s %-14s %-10s %-9s %8s %4s %6s %-8s %-12s %s%s%s\n",
			   PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
			   PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
			   strcmp(PQgetvalue(res, i, 5), "t") == 0 ? "yes" : "no",
			   PQgetvalue(res, i, 6), PQgetvalue(res, i, 8)[0] ? PQgetvalue(res, i, 8) : "-",
			   verdict, evidence,
			   PQgetvalue(res, i, 7)[0] ? "; relations " : "", PQgetvalue(res, i, 7));
		if (strcmp(PQgetvalue(res, i, 12), "t") == 0)
			code = worst(code, EXIT_CRITICAL);
		else if (strcmp(PQgetvalue(res, i, 11), "t") == 0)
			code = worst(code, EXIT_WARNING);
	}
	printf("%s: %d prepared transaction%s; %s\n", code == EXIT_OK ? "OK" : code == EXIT_WARNING ? "WARNING" : "CRITICAL",
		   n, n == 1 ? "" : "s",
		   code == EXIT_OK ? "none past the thresholds" :
		   code == EXIT_WARNING ? "some older than --warning" : "some older than --critical");
	PQclear(res);
	return code;
}

/* stats: the figures monitoring/consistency-queries.yaml exports. */
static int
cmd_stats(PGconn *conn)
{
	PGresult   *res;
	int			i;
	int			n;

	res = query(conn,
				"SELECT s.datname::pg_catalog.text, s.capability, s.counter, s.value,"
				" pg_catalog.to_char(s.stats_reset, 'YYYY-MM-DD HH24:MI:SS TZ'), s.reason"
				" FROM consistency.stats s"
				" ORDER BY s.datname, s.capability, s.counter",
				0, NULL);
	n = PQntuples(res);
	if (n == 1 && !PQgetisnull(res, 0, 5))
		printf("counters: none: %s\n", PQgetvalue(res, 0, 5));
	else
	{
		const char *last_db = "";

		for (i = 0; i < n; i++)
		{
			if (!PQgetisnull(res, i, 5))
			{
				/* a database the server keeps no counters for (every slot taken) */
				printf("database %s: no counters: %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 5));
				continue;
			}
			if (strcmp(PQgetvalue(res, i, 0), last_db) != 0)
			{
				last_db = PQgetvalue(res, i, 0);
				/* counters survive clean restarts: only a reset or a crash zeroes them */
				if (PQgetisnull(res, i, 4))
					printf("database %s (counters never reset)\n", last_db);
				else
					printf("database %s (counters since %s)\n", last_db, PQgetvalue(res, i, 4));
				printf("  %-12s %-20s %20s\n", "capability", "counter", "value");
			}
			printf("  %-12s %-20s %20s\n",
				   PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
		}
	}
	PQclear(res);

	res = query(conn,
				"SELECT pg_catalog.count(*),"
				" COALESCE(pg_catalog.date_trunc('second', pg_catalog.max(p.age))::pg_catalog.text, '-'),"
				" COALESCE(pg_catalog.bool_or(p.pins_xmin_horizon), false),"
				" pg_catalog.count(*) FILTER (WHERE p.verdict OPERATOR(pg_catalog.=) ANY"
				"   (ARRAY['commit', 'rollback']::pg_catalog.text[]))"
				" FROM consistency.prepared_xacts() p",
				0, NULL);
	printf("in-doubt: %s prepared transaction%s, oldest %s, pins the xmin horizon: %s, resolvable now: %s\n",
		   PQgetvalue(res, 0, 0), strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? "" : "s",
		   PQgetvalue(res, 0, 1), strcmp(PQgetvalue(res, 0, 2), "t") == 0 ? "yes" : "no",
		   PQgetvalue(res, 0, 3));
	PQclear(res);

	res = query(conn,
				"SELECT pg_catalog.pg_is_in_recovery(),"
				" COALESCE(pg_catalog.pg_last_wal_replay_lsn()::pg_catalog.text, '-'),"
				" COALESCE(pg_catalog.date_trunc('second', pg_catalog.now() OPERATOR(pg_catalog.-)"
				"   pg_catalog.pg_last_xact_replay_timestamp())::pg_catalog.text, '-')",
				0, NULL);
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		printf("replay: standby, replayed up to %s, last replayed commit %s ago\n",
			   PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	else
		printf("replay: primary (not in recovery)\n");
	PQclear(res);
	return EXIT_OK;
}

/*
 * Whether the caller may finish a prepared transaction (its row of
 * prepared_xacts() in scope): its owner or a superuser, PostgreSQL's rule,
 * which resolve_stale() applies too.
 */
#define CALLER_MAY_FINISH_SQL \
	"(owner OPERATOR(pg_catalog.=) CURRENT_USER" \
	" OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r" \
	"     WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER))"

/* The line of a transaction the caller may not finish: left in doubt. */
static void
print_not_callers(const char *gid, const char *database, const char *owner)
{
	printf("%-40s %-14s %-9s %-8s %-16s not the caller's to finish: prepared by %s"
		   " (only its owner or a superuser may finish it)\n",
		   gid, database, "skip", "f", "skipped", owner);
}

static int
outcome_code(const char *planned, const char *outcome)
{
	if (strcmp(outcome, "failed") == 0 || strcmp(outcome, "busy") == 0)
		return EXIT_CRITICAL;
	if (strcmp(planned, "skip") == 0)
		return EXIT_WARNING;
	return EXIT_OK;
}

static int
cmd_resolve(PGconn *conn, int execute, const char *older_than, const char *grace,
			Coordinator *coord)
{
	PGresult   *res;
	int			code = EXIT_OK;
	int			i;

	printf("%-40s %-14s %-9s %-8s %-16s %s\n", "gid", "database", "planned", "executed", "outcome", "reason");
	if (coord == NULL)
	{
		const char *params[2] = {older_than, execute ? "false" : "true"};
		PGresult   *left;
		int			j;

		res = query(conn,
					"SELECT gid, database, planned, executed, outcome, reason"
					" FROM consistency.resolve_stale($1::pg_catalog.interval,"
					"                                dry_run => $2::pg_catalog.bool)",
					2, params);
		for (i = 0; i < PQntuples(res); i++)
		{
			printf("%-40s %-14s %-9s %-8s %-16s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				   PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
				   PQgetvalue(res, i, 5));
			code = worst(code, outcome_code(PQgetvalue(res, i, 2), PQgetvalue(res, i, 4)));
		}

		/*
		 * resolve_stale() leaves out what the caller may not finish (another
		 * role's transaction, for a non-superuser): those are left in doubt
		 * too.  (Gids are unique in the cluster.)  Chosen by the same rule,
		 * not as what resolve_stale() did not list: this statement's clock
		 * is later, and a transaction of the caller's that became old enough
		 * meanwhile is not one it may not finish.
		 */
		left = query(conn,
					 "SELECT gid, database, owner"
					 " FROM consistency.prepared_xacts($1::pg_catalog.interval)"
					 " WHERE NOT " CALLER_MAY_FINISH_SQL
					 " ORDER BY prepared_at",
					 1, params);
		for (j = 0; j < PQntuples(left); j++)
		{
			for (i = 0; i < PQntuples(res); i++)
				if (strcmp(PQgetvalue(res, i, 0), PQgetvalue(left, j, 0)) == 0)
					break;
			if (i < PQntuples(res))
				continue;
			print_not_callers(PQgetvalue(left, j, 0), PQgetvalue(left, j, 1),
							  PQgetvalue(left, j, 2));
			code = worst(code, EXIT_WARNING);
		}
		PQclear(left);
		PQclear(res);
		return code;
	}

	/* decisions from the coordinator, actions on this cluster */
	{
		const char *params[2] = {older_than, grace};

		/*
		 * With whether the caller may finish it: a resolve_prepared() of
		 * another role's transaction would fail, and its dry run would not
		 * say so.
		 */
		res = query(conn,
					"SELECT gid, database, age OPERATOR(pg_catalog.>=) $2::pg_catalog.interval,"
					" verdict, evidence, owner, " CALLER_MAY_FINISH_SQL
					" FROM consistency.prepared_xacts($1::pg_catalog.interval) ORDER BY prepared_at",
					2, params);
	}
	for (i = 0; i < PQntuples(res); i++)
	{
		const char *gid = PQgetvalue(res, i, 0);
		const char *verdict = PQgetvalue(res, i, 3);
		const char *reason = PQgetvalue(res, i, 4);
		char		buf[1024];
		const char *action;
		PGresult   *r;
		const char *p[3];

		if (strcmp(PQgetvalue(res, i, 6), "t") != 0)
		{
			print_not_callers(gid, PQgetvalue(res, i, 1), PQgetvalue(res, i, 5));
			code = worst(code, EXIT_WARNING);
			continue;
		}
		/* a gid this cluster can decide itself keeps its own verdict */
		if (strcmp(verdict, "unknown") == 0)
		{
			verdict = coordinator_decide(coord, gid, strcmp(PQgetvalue(res, i, 2), "t") == 0,
										 buf, sizeof(buf));
			reason = buf;
		}
		if (strcmp(verdict, "commit") != 0 && strcmp(verdict, "rollback") != 0)
		{
			printf("%-40s %-14s %-9s %-8s %-16s %s\n", gid, PQgetvalue(res, i, 1), "skip", "f",
				   "skipped", reason);
			code = worst(code, EXIT_WARNING);
			continue;
		}
		action = verdict;
		p[0] = reason;
		r = PQexecParams(conn, "SELECT pg_catalog.set_config('consistency.tpc_caller_evidence',"
						 " $1::pg_catalog.text, false)",
						 1, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			/* acting now would log the previous gid's evidence for this one */
			char	   *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

			printf("%-40s %-14s %-9s %-8s %-16s could not record the evidence, nothing done: %s (%s)\n",
				   gid, PQgetvalue(res, i, 1), action, "f", "failed",
				   msg ? msg : PQerrorMessage(conn), reason);
			code = worst(code, EXIT_CRITICAL);
			PQclear(r);
			continue;
		}
		PQclear(r);
		p[0] = gid;
		p[1] = action;
		p[2] = execute ? "false" : "true";
		r = PQexecParams(conn,
						 "SELECT database, planned, executed, outcome, reason"
						 " FROM consistency.resolve_prepared($1::pg_catalog.text, $2::pg_catalog.text,"
						 "                                   dry_run => $3::pg_catalog.bool)",
						 3, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			char	   *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

			printf("%-40s %-14s %-9s %-8s %-16s %s (%s)\n", gid, PQgetvalue(res, i, 1), action, "f",
				   "failed", msg ? msg : PQerrorMessage(conn), reason);
			code = worst(code, EXIT_CRITICAL);
		}
		else
		{
			printf("%-40s %-14s %-9s %-8s %-16s %s\n", gid, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
				   PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3), reason);
			code = worst(code, outcome_code(PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 3)));
		}
		PQclear(r);
	}
	PQclear(res);
	return code;
}

int
main(int argc, char **argv)
{
	const char *cmd;
	const char *conninfo = NULL;
	const char *older_than = NULL;
	const char *warning = NULL;
	const char *critical = NULL;
	const char *grace = NULL;
	const char *decisions_from = NULL;
	int			execute = 0;
	int			i;
	int			code;
	PGconn	   *conn;
	Coordinator coord;

	if (argc < 2)
	{
		usage(stderr);
		return EXIT_UNKNOWN;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
	{
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "in-doubt") != 0 && strcmp(cmd, "resolve") != 0 && strcmp(cmd, "stats") != 0)
	{
		usage(stderr);
		die(EXIT_UNKNOWN, "unknown command \"%s\"", cmd);
	}
	for (i = 2; i < argc; i++)
	{
		const char *a = argv[i];

		if (strcmp(cmd, "stats") == 0 && a[0] == '-' && a[1] == '-')
			die(EXIT_UNKNOWN, "unknown option \"%s\" for %s", a, cmd);
#define OPTARG(name, var) \
		if (strcmp(a, name) == 0) \
		{ \
			if (i + 1 >= argc) \
				die(EXIT_UNKNOWN, "option %s needs a value", name); \
			var = argv[++i]; \
			continue; \
		}
		OPTARG("--older-than", older_than);
		OPTARG("--warning", warning);
		OPTARG("--critical", critical);
		OPTARG("--grace", grace);
		OPTARG("--decisions-from", decisions_from);
#undef OPTARG
		if (strcmp(a, "--execute") == 0 && strcmp(cmd, "resolve") == 0)
		{
			execute = 1;
			continue;
		}
		if (a[0] == '-' && a[1] == '-')
			die(EXIT_UNKNOWN, "unknown option \"%s\" for %s", a, cmd);
		if (conninfo != NULL)
			die(EXIT_UNKNOWN, "more than one connection string given");
		conninfo = a;
	}
	/* an option that would change nothing is a mistake to say, not to ignore */
	if (strcmp(cmd, "in-doubt") != 0 && (warning != NULL || critical != NULL))
		die(EXIT_UNKNOWN, "option %s is for in-doubt, not %s", warning ? "--warning" : "--critical", cmd);
	if (grace != NULL && (strcmp(cmd, "resolve") != 0 || decisions_from == NULL))
		die(EXIT_UNKNOWN, "option --grace is for resolve with --decisions-from");
	if (older_than == NULL)
		older_than = strcmp(cmd, "resolve") == 0 ? "10min" : "0";
	if (warning == NULL)
		warning = "5min";
	if (critical == NULL)
		critical = "30min";
	if (grace == NULL)
		grace = "5min";

	conn = connect_to(conninfo);
	if (decisions_from != NULL)
		coordinator_open(&coord, decisions_from);
	if (strcmp(cmd, "stats") == 0)
		code = cmd_stats(conn);
	else if (strcmp(cmd, "in-doubt") == 0)
		code = cmd_in_doubt(conn, older_than, warning, critical, decisions_from ? &coord : NULL);
	else
		code = cmd_resolve(conn, execute, older_than, grace, decisions_from ? &coord : NULL);
	if (decisions_from != NULL)
		PQfinish(coord.conn);
	PQfinish(conn);
	return code;
}
