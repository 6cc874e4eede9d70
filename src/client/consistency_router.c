/*-------------------------------------------------------------------------
 *
 * consistency_router.c
 *	  A small read-your-writes router on libpq: writes to the primary, reads
 *	  to a standby that has replayed the session's token, else the primary.
 *
 * The token comes from the ParameterStatus message the server sends with
 * each commit (consistency.last_commit_token, libpq keeps the latest in
 * PQparameterStatus()).  If the primary does not report it -- the library is
 * not preloaded there -- the router asks consistency.write_token() instead,
 * one extra round trip per write.  The reported token is kept after a failed
 * statement too (a procedure may commit, then raise).  When the router cannot
 * learn a commit's token (that query fails, or a statement that may have
 * committed failed in a session that reports nothing), reads go to the
 * primary until a later write's token arrives.
 *
 * A token merged from elsewhere must name the primary's cluster; one merged
 * before the router knew that cluster is replaced by the primary's own token,
 * or dropped when a new primary calls it another cluster's (YC302).
 *
 * At connect, each standby is asked about a token of the primary's cluster
 * (its system identifier): a server of another cluster is never used, not
 * even for reads without a token.
 *
 * A read with a token first tries the standbys in turn without waiting:
 * "SET consistency.read_after_timeout = 0; SET consistency.read_after = '<token>'"
 * succeeds only if that standby has replayed the token (and from then on the
 * standby refuses any query that would read older data); SQLSTATE YC304
 * means "behind".  The SET is skipped while the standby's read_after already
 * holds the token.  If no standby is ready and a wait budget is set, the
 * router waits (same SET, timeout = budget) on the behind standby that is
 * neither paused nor delayed and has replayed the most; if that fails too,
 * the primary answers.
 *
 * With a failover timeout set, a lost primary connection (or a primary that
 * turned read-only) is replaced at the next call through the same conninfo,
 * which lists every node with target_session_attrs=read-write, so libpq
 * finds the new primary; the session's token is then checked there with
 * consistency.wait_for_token(token, 0): YC303 means the write was lost in the
 * failover, and that error is what the call returns (see the header).
 *
 * The connections serve the application's own SQL, so their search_path is
 * the application's (the router leaves it alone).  Every statement the
 * router sends itself qualifies each function, operator and type it names,
 * so no search_path -- not even one that lists a schema other roles can
 * create objects in before pg_catalog -- changes what it runs.
 *
 * IDENTIFICATION
 *	  src/client/consistency_router.c
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consistency_router.h"

#define TOKEN_PARAMETER "consistency.last_commit_token"

typedef struct Standby
{
	PGconn	   *conn;
	char	   *conninfo;
	int			usable;			/* connected and the extension is loaded */
	int64_t		tried_ms;		/* last connection attempt (monotonic ms) */
	char		read_after[CROUTER_TOKEN_SIZE];	/* token its read_after holds */
} Standby;

struct CRouter
{
	PGconn	   *primary;
	char	   *primary_conninfo;
	int			primary_lost;	/* reconnect before the next call */
	Standby    *standbys;
	int			nstandbys;
	int			next;			/* round-robin start */
	int			budget_ms;
	int			failover_ms;	/* 0: never reconnect */
	char		sysid[32];		/* the primary's system identifier, "" if unknown */
	char		token[CROUTER_TOKEN_SIZE];
	int			token_unknown;	/* a commit of the session may be past token */
	char		lost_token[CROUTER_TOKEN_SIZE];
	char		error[512];
	long		reconnects;
	long		lost_writes;
	CRouterStats stats;
};

#define STANDBY_RETRY_MS 1000
#define RECONNECT_PAUSE_MS 100

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* A parsed token; the text must be exactly the canonical spelling. */
typedef struct Token
{
	uint64_t	sysid;
	unsigned int tli;
	uint64_t	lsn;
} Token;

static int
parse_token(const char *s, Token *t)
{
	unsigned long long sysid;
	unsigned int tli,
				hi,
				lo;
	char		again[CROUTER_TOKEN_SIZE];

	if (s == NULL || strlen(s) >= CROUTER_TOKEN_SIZE ||
		sscanf(s, "v1:%llu:%u:%X/%X", &sysid, &tli, &hi, &lo) != 4)
		return -1;
	snprintf(again, sizeof(again), "v1:%llu:%u:%X/%X", sysid, tli, hi, lo);
	if (strcmp(again, s) != 0 || sysid == 0 || tli == 0)
		return -1;
	t->sysid = sysid;
	t->tli = tli;
	t->lsn = ((uint64_t) hi << 32) | lo;
	return 0;
}

int
crouter_token_max(const char *a, const char *b, char *out)
{
	Token		ta,
				tb;
	const char *later;

	if (parse_token(a, &ta) != 0 || parse_token(b, &tb) != 0 || ta.sysid != tb.sysid)
		return -1;
	/* same rule as consistency.token_max(): no write never wins, then timeline, then LSN */
	if (ta.lsn == 0)
		later = b;
	else if (tb.lsn == 0)
		later = a;
	else if (ta.tli != tb.tli)
		later = ta.tli > tb.tli ? a : b;
	else
		later = ta.lsn >= tb.lsn ? a : b;
	memmove(out, later, strlen(later) + 1);
	return 0;
}

/* Does the token name the cluster of system identifier sysid (decimal digits)? */
static int
token_of_cluster(const Token *t, const char *sysid)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, t->sysid);
	return strcmp(buf, sysid) == 0;
}

/*
 * A token from elsewhere: it must name the primary's cluster.  Before the
 * router knows that cluster (the primary could not be reached, or its system
 * identifier read) the token is kept; the primary's own token replaces it if
 * it turns out to be another cluster's (crouter_write), and so does the check
 * on a newly reached primary (check_token_on_new_primary).
 */
int
crouter_merge_token(CRouter *r, const char *token)
{
	Token		t;

	if (parse_token(token, &t) != 0)
		return -1;
	if (r->sysid[0] != '\0' && !token_of_cluster(&t, r->sysid))
		return -1;
	if (r->token[0] == '\0')
	{
		snprintf(r->token, sizeof(r->token), "%s", token);
		return 0;
	}
	return crouter_token_max(r->token, token, r->token);
}

static void
set_error(CRouter *r, const char *what, PGconn *conn)
{
	snprintf(r->error, sizeof(r->error), "%s: %s", what,
			 conn ? PQerrorMessage(conn) : "out of memory");
}

/*
 * The primary's system identifier (decimal digits) into buf; 0 if unknown.
 * pg_control_system() is executable by PUBLIC unless revoked; the token of a
 * session that has not written names the cluster too.
 */
static int
primary_sysid(CRouter *r, char *buf, size_t buflen)
{
	static const char *const queries[] = {
		"SELECT system_identifier::pg_catalog.text FROM pg_catalog.pg_control_system()",
		"SELECT pg_catalog.split_part(consistency.write_token(), ':', 2)",
	};
	int			q;

	for (q = 0; q < 2; q++)
	{
		PGresult   *res = PQexec(r->primary, queries[q]);
		const char *v;

		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			(v = PQgetvalue(res, 0, 0))[0] != '\0' &&
			strspn(v, "0123456789") == strlen(v) && strlen(v) < buflen)
		{
			memcpy(buf, v, strlen(v) + 1);
			PQclear(res);
			return 1;
		}
		PQclear(res);
	}
	set_error(r, "primary: cannot read its system identifier", r->primary);
	return 0;
}

/* (Re)connect standby i and check that it belongs to the primary's cluster. */
static void
standby_connect(CRouter *r, int i)
{
	Standby    *s = &r->standbys[i];
	PGresult   *res;
	char		sql[96];
	const char *sysid = r->sysid;

	PQfinish(s->conn);
	s->usable = 0;
	s->read_after[0] = '\0';
	s->tried_ms = now_ms();
	s->conn = PQconnectdb(s->conninfo);
	if (PQstatus(s->conn) != CONNECTION_OK)
	{
		set_error(r, "standby", s->conn);
		return;
	}
	/* without the primary's identity, a read could go to any cluster */
	if (sysid[0] == '\0')
		return;

	/*
	 * A token without a write, of the primary's cluster: "ready" on its
	 * standbys, "wrong_cluster" on a server of another cluster, which must
	 * never answer a read (not even one without a token).  The call also
	 * loads the extension's library in this session: without it, SET
	 * consistency.read_after would only create a placeholder and check
	 * nothing.
	 */
	snprintf(sql, sizeof(sql), "SELECT consistency.token_status('v1:%s:1:0/0')", sysid);
	res = PQexec(s->conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		set_error(r, "standby", s->conn);
	else if (strcmp(PQgetvalue(res, 0, 0), "ready") == 0 ||
			 strcmp(PQgetvalue(res, 0, 0), "primary") == 0)
		s->usable = 1;
	else
		snprintf(r->error, sizeof(r->error),
				 "standby %d: not a server of the primary's cluster (token_status: %s); not used",
				 i, PQgetvalue(res, 0, 0));
	PQclear(res);
}

CRouter *
crouter_connect(const char *primary_conninfo, const char *const *standby_conninfos,
				int nstandbys)
{
	CRouter    *r = calloc(1, sizeof(CRouter));
	int			i;

	if (r == NULL)
		return NULL;
	r->standbys = calloc(nstandbys > 0 ? nstandbys : 1, sizeof(Standby));
	r->primary_conninfo = strdup(primary_conninfo);
	if (r->standbys == NULL || r->primary_conninfo == NULL)
	{
		free(r->standbys);
		free(r->primary_conninfo);
		free(r);
		return NULL;
	}
	r->nstandbys = nstandbys;
	for (i = 0; i < nstandbys; i++)
	{
		if ((r->standbys[i].conninfo = strdup(standby_conninfos[i])) == NULL)
		{
			while (--i >= 0)
				free(r->standbys[i].conninfo);
			free(r->standbys);
			free(r->primary_conninfo);
			free(r);
			return NULL;
		}
	}

	r->primary = PQconnectdb(primary_conninfo);
	if (PQstatus(r->primary) != CONNECTION_OK)
		set_error(r, "primary", r->primary);
	else
		(void) primary_sysid(r, r->sysid, sizeof(r->sysid));

	for (i = 0; i < nstandbys; i++)
		standby_connect(r, i);
	return r;
}

int
crouter_ok(const CRouter *r)
{
	return r != NULL && PQstatus(r->primary) == CONNECTION_OK;
}

const char *
crouter_error(const CRouter *r)
{
	return r->error;
}

void
crouter_finish(CRouter *r)
{
	int			i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nstandbys; i++)
	{
		PQfinish(r->standbys[i].conn);
		free(r->standbys[i].conninfo);
	}
	PQfinish(r->primary);
	free(r->primary_conninfo);
	free(r->standbys);
	free(r);
}

void
crouter_set_wait_budget(CRouter *r, int milliseconds)
{
	r->budget_ms = milliseconds > 0 ? milliseconds : 0;
}

const char *
crouter_token(const CRouter *r)
{
	return r->token;
}

void
crouter_set_failover_timeout(CRouter *r, int milliseconds)
{
	r->failover_ms = milliseconds > 0 ? milliseconds : 0;
}

const char *
crouter_lost_token(const CRouter *r)
{
	return r->lost_token;
}

long
crouter_reconnects(const CRouter *r)
{
	return r->reconnects;
}

long
crouter_lost_writes(const CRouter *r)
{
	return r->lost_writes;
}

PGconn *
crouter_primary(CRouter *r)
{
	return r->primary;
}

PGconn *
crouter_standby(CRouter *r, int i)
{
	return (i >= 0 && i < r->nstandbys) ? r->standbys[i].conn : NULL;
}

int
crouter_nstandbys(const CRouter *r)
{
	return r->nstandbys;
}

CRouterStats
crouter_stats(const CRouter *r)
{
	return r->stats;
}

static int
result_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static const char *
sqlstate(const PGresult *res)
{
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return s ? s : "";
}

/*
 * Did a failed call lose the connection?  PQstatus() alone cannot tell: when
 * the server ends the session after sending a message of its own (an
 * immediate shutdown, a crash of another backend: a WARNING, then the
 * socket closes), libpq reports "server closed the connection unexpectedly"
 * while PQstatus() can still say CONNECTION_OK.  Every error a server sends
 * carries a SQLSTATE; one without is libpq's own (the connection, or out of
 * memory), after which the connection is not to be trusted either.
 */
static int
connection_lost(PGconn *conn, const PGresult *res)
{
	return PQstatus(conn) != CONNECTION_OK || res == NULL ||
		(PQresultStatus(res) == PGRES_FATAL_ERROR && sqlstate(res)[0] == '\0');
}

/*
 * After a failed call on the primary: does the connection need replacing?
 * Lost, or the server became read-only (a demoted primary: 25006).
 */
static void
note_primary_failure(CRouter *r, const PGresult *res)
{
	if (r->failover_ms > 0 &&
		(connection_lost(r->primary, res) || strcmp(sqlstate(res), "25006") == 0))
		r->primary_lost = 1;
}

static void mark_token_unknown(CRouter *r, const char *why, const PGresult *res);

/*
 * The session's token on a new primary: NULL if its write is there (or there
 * is no token), else the server's error (YC303: lost in the failover), after
 * which the session starts afresh with no token -- and reads go to the
 * primary until its next write's token: the writes of the session that did
 * survive come before the lost one, and a standby is not known to have them
 * (an empty token would let any standby answer, one still behind them too).
 */
static PGresult *
check_token_on_new_primary(CRouter *r)
{
	const char *params[1] = {r->token};
	PGresult   *res;

	if (r->token[0] == '\0')
		return NULL;
	res = PQexecParams(r->primary,
					   "SELECT consistency.wait_for_token($1::pg_catalog.text, '0'::pg_catalog.interval)",
					   1, NULL, params, NULL, NULL, 0);
	if (result_ok(res))
	{
		PQclear(res);
		return NULL;
	}
	if (strcmp(sqlstate(res), "YC303") == 0)
	{
		snprintf(r->lost_token, sizeof(r->lost_token), "%s", r->token);
		r->token[0] = '\0';
		r->token_unknown = 1;
		r->lost_writes++;
		return res;
	}
	if (strcmp(sqlstate(res), "YC302") == 0)
	{
		/*
		 * Another cluster's token, merged before the router knew its cluster:
		 * it names no write of this one.  Drop it; the connection is fine.
		 */
		snprintf(r->error, sizeof(r->error),
				 "token %s is from another cluster than the primary's; dropped", r->token);
		r->token[0] = '\0';
		PQclear(res);
		return NULL;
	}
	if (connection_lost(r->primary, res))
	{
		/* cannot tell (connection lost again): try again at the next call */
		r->primary_lost = 1;
		PQclear(res);
		return NULL;
	}

	/*
	 * The server refused the check (no privilege on the function, say): the
	 * connection is fine, and reconnecting would only fail the same way.  The
	 * call goes on unchecked, and reads go to the primary until a later
	 * write's token, so no read can miss a surviving write; a lost one goes
	 * unreported.
	 */
	mark_token_unknown(r, "cannot check the session's token on the new primary, so a write lost in the failover goes unreported", res);
	PQclear(res);
	return NULL;
}

/*
 * Replace a lost primary connection, for at most failover_ms: the conninfo
 * (every node, target_session_attrs=read-write) leads libpq to the primary of
 * the moment; a server of another cluster is not taken.  Then every standby
 * is reconnected (each may have restarted to follow the new primary).
 * Returns the YC303 result if the session's last write was lost, else NULL.
 */
static PGresult *
ensure_primary(CRouter *r)
{
	int64_t		deadline;
	int			i;

	if (r->failover_ms == 0)
		return NULL;
	if (!r->primary_lost && PQstatus(r->primary) == CONNECTION_OK)
		return NULL;
	deadline = now_ms() + r->failover_ms;
	for (;;)
	{
		char		sysid[32] = "";

		PQfinish(r->primary);
		r->primary = PQconnectdb(r->primary_conninfo);
		if (PQstatus(r->primary) == CONNECTION_OK &&
			primary_sysid(r, sysid, sizeof(sysid)) &&
			(r->sysid[0] == '\0' || strcmp(sysid, r->sysid) == 0))
		{
			memcpy(r->sysid, sysid, sizeof(r->sysid));
			break;
		}
		if (PQstatus(r->primary) != CONNECTION_OK)
			set_error(r, "primary", r->primary);
		else if (sysid[0] != '\0')
			snprintf(r->error, sizeof(r->error),
					 "primary: reached a server of another cluster (system identifier %s); not used", sysid);
		if (now_ms() >= deadline)
		{
			/* the call fails; try again at the next.  Never use another cluster. */
			if (PQstatus(r->primary) == CONNECTION_OK)
			{
				PQfinish(r->primary);
				r->primary = NULL;
			}
			r->primary_lost = 1;
			return NULL;
		}
		sleep_ms(RECONNECT_PAUSE_MS);
	}
	r->primary_lost = 0;
	r->reconnects++;
	for (i = 0; i < r->nstandbys; i++)
		standby_connect(r, i);
	return check_token_on_new_primary(r);
}

/*
 * Keep a token the primary reported for this session's own commit: the later
 * of it and the router's token, or it alone if the router's token is of
 * another cluster (merged before the router knew its cluster).  -1 if the
 * token is malformed.
 */
static int
merge_own_token(CRouter *r, const char *token)
{
	Token		t;

	if (parse_token(token, &t) != 0)
		return -1;
	if (crouter_merge_token(r, token) == 0)
		return 0;
	if (r->sysid[0] != '\0' && !token_of_cluster(&t, r->sysid))
		return -1;				/* cannot happen: the primary is of r->sysid */
	snprintf(r->error, sizeof(r->error),
			 "token %s is from another cluster than the primary's; replaced by the primary's %s",
			 r->token, token);
	snprintf(r->token, sizeof(r->token), "%s", token);
	return 0;
}

/*
 * The session's token cannot cover a commit it may have made: reads go to the
 * primary until a token of a later commit of the session arrives.
 */
static void
mark_token_unknown(CRouter *r, const char *why, const PGresult *res)
{
	const char *msg = res ? PQresultErrorMessage(res) : "";

	r->token_unknown = 1;
	snprintf(r->error, sizeof(r->error),
			 "primary: %s; reads go to the primary until a later write's token%s%s",
			 why, msg[0] ? ": " : "", msg);
}

PGresult *
crouter_write(CRouter *r, const char *sql, int nparams, const char *const *values)
{
	PGresult   *res;
	const char *reported;
	int			ok;

	if ((res = ensure_primary(r)) != NULL)
		return res;				/* the session's last write was lost */
	res = PQexecParams(r->primary, sql, nparams, NULL, values, NULL, NULL, 0);
	ok = result_ok(res);
	if (ok)
		r->stats.writes++;
	else
		note_primary_failure(r, res);

	/* The token names the last commit: nothing new inside an open transaction. */
	if (ok && PQtransactionStatus(r->primary) != PQTRANS_IDLE)
		return res;

	/*
	 * The reported token names a commit of this session whatever the result:
	 * a statement that failed may have committed before it failed (a
	 * procedure's COMMIT, then an error).  Merging is monotonic.
	 */
	reported = PQparameterStatus(r->primary, TOKEN_PARAMETER);
	if (reported != NULL && reported[0] != '\0')
	{
		if (merge_own_token(r, reported) == 0)
		{
			r->token_unknown = 0;
			if (ok)
				r->stats.tokens_from_parameter_status++;
		}
		return res;
	}

	/* not reported: the library is not loaded in the primary's session */
	if (!ok)
	{
		/*
		 * The failed statement may have committed first.  Asking
		 * write_token() now would replace the error the connection holds
		 * (PQerrorMessage), so read from the primary until the next write's
		 * token instead.  Not inside a transaction block (nothing committed)
		 * or on a lost connection (the outcome is unknown anyway).
		 */
		if (PQtransactionStatus(r->primary) == PQTRANS_IDLE)
			mark_token_unknown(r, "a failed write may have committed before it failed", NULL);
		return res;
	}
	{
		PGresult   *tres = PQexec(r->primary, "SELECT consistency.write_token()");

		if (PQresultStatus(tres) == PGRES_TUPLES_OK && PQntuples(tres) == 1 &&
			merge_own_token(r, PQgetvalue(tres, 0, 0)) == 0)
		{
			r->token_unknown = 0;
			r->stats.tokens_from_query++;
		}
		else
		{
			/* an acknowledged write the token does not cover */
			mark_token_unknown(r, "cannot read the token of an acknowledged write (consistency.write_token())", tres);
			if (PQresultStatus(tres) != PGRES_TUPLES_OK)
				note_primary_failure(r, tres);
		}
		PQclear(tres);
	}
	return res;
}

/*
 * Make standby s's read_after hold the router's token, waiting at most
 * timeout_ms.  Returns 1 if it holds it (the standby has replayed the token),
 * 0 if the standby is behind, -1 if it cannot serve this token at all.
 */
static int
standby_accepts(CRouter *r, Standby *s, int timeout_ms)
{
	char		sql[160];
	PGresult   *res;
	int			ok;

	if (strcmp(s->read_after, r->token) == 0)
		return 1;
	/* the token passed parse_token(): only [v0-9A-F:/], safe to quote */
	snprintf(sql, sizeof(sql),
			 "SET consistency.read_after_timeout = %d; SET consistency.read_after = '%s'",
			 timeout_ms, r->token);
	res = PQexec(s->conn, sql);
	if (result_ok(res))
	{
		snprintf(s->read_after, sizeof(s->read_after), "%s", r->token);
		ok = 1;
	}
	else if (strcmp(sqlstate(res), "YC304") == 0)
		ok = 0;
	else
	{
		if (connection_lost(s->conn, res))
			s->usable = 0;
		ok = -1;
	}
	PQclear(res);
	return ok;
}

/* Run the read on a standby that accepted the token; NULL if it refused. */
static PGresult *
read_on_standby(Standby *s, const char *sql, int nparams,
				const char *const *values)
{
	PGresult   *res = PQexecParams(s->conn, sql, nparams, NULL, values, NULL, NULL, 0);
	const char *st;

	if (result_ok(res))
		return res;
	st = sqlstate(res);
	if (strncmp(st, "YC3", 3) == 0 || connection_lost(s->conn, res))
	{
		/* the standby refused to answer stale, or went away: go elsewhere */
		s->read_after[0] = '\0';
		if (connection_lost(s->conn, res))
			s->usable = 0;
		PQclear(res);
		return NULL;
	}
	return res;					/* an error of the query itself */
}

/*
 * Among the standbys that were behind, the one worth waiting for: not paused,
 * not delayed, and replayed the most.  -1 if none.
 */
static int
best_to_wait_for(CRouter *r, const int *behind)
{
	int			best = -1;
	uint64_t	best_lsn = 0;
	int			i;

	for (i = 0; i < r->nstandbys; i++)
	{
		PGresult   *res;
		unsigned int hi,
					lo;

		if (!behind[i] || !r->standbys[i].usable)
			continue;
		res = PQexec(r->standbys[i].conn,
					 "SELECT pg_catalog.pg_last_wal_replay_lsn(),"
					 " pg_catalog.pg_get_wal_replay_pause_state() OPERATOR(pg_catalog.=) 'not paused'"
					 " AND pg_catalog.current_setting('recovery_min_apply_delay') OPERATOR(pg_catalog.=) '0'");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			strcmp(PQgetvalue(res, 0, 1), "t") == 0 &&
			sscanf(PQgetvalue(res, 0, 0), "%X/%X", &hi, &lo) == 2)
		{
			uint64_t	lsn = ((uint64_t) hi << 32) | lo;

			if (best < 0 || lsn > best_lsn)
			{
				best = i;
				best_lsn = lsn;
			}
		}
		PQclear(res);
	}
	return best;
}

PGresult *
crouter_read(CRouter *r, const char *sql, int nparams, const char *const *values,
			 int *served_by)
{
	int		   *behind;
	int			k;
	PGresult   *res;
	PGTransactionStatusType tx;

	if (served_by)
		*served_by = CROUTER_PRIMARY;
	if ((res = ensure_primary(r)) != NULL)
		return res;				/* the session's last write was lost */

	/*
	 * In a transaction block the application opened on the primary, a read
	 * belongs to that transaction: it must see its uncommitted writes, and
	 * its locks (FOR UPDATE) are taken there.
	 */
	tx = PQtransactionStatus(r->primary);
	if (tx == PQTRANS_INTRANS || tx == PQTRANS_INERROR)
	{
		res = PQexecParams(r->primary, sql, nparams, NULL, values, NULL, NULL, 0);
		if (!result_ok(res))
			note_primary_failure(r, res);	/* never repeated elsewhere: the transaction is gone */
		r->stats.reads_primary++;
		return res;
	}
	behind = calloc(r->nstandbys > 0 ? r->nstandbys : 1, sizeof(int));
	if (behind == NULL)
		return NULL;

	/* with a commit the token may not cover, only the primary is sure to have it */
	for (k = 0; k < r->nstandbys && !r->token_unknown; k++)
	{
		int			i = (r->next + k) % r->nstandbys;
		Standby    *s = &r->standbys[i];
		int			acc;

		/* a standby that went away is tried again now and then */
		if (!s->usable && r->failover_ms > 0 && now_ms() - s->tried_ms >= STANDBY_RETRY_MS)
			standby_connect(r, i);
		if (!s->usable)
			continue;
		acc = r->token[0] == '\0' ? 1 : standby_accepts(r, s, 0);
		if (acc == 0)
			behind[i] = 1;
		if (acc != 1)
			continue;
		if ((res = read_on_standby(s, sql, nparams, values)) != NULL)
		{
			r->next = (i + 1) % r->nstandbys;
			r->stats.reads_standby++;
			if (served_by)
				*served_by = i;
			free(behind);
			return res;
		}
	}

	if (r->budget_ms > 0 && r->token[0] != '\0' && !r->token_unknown)
	{
		int			i = best_to_wait_for(r, behind);

		if (i >= 0 && standby_accepts(r, &r->standbys[i], r->budget_ms) == 1 &&
			(res = read_on_standby(&r->standbys[i], sql, nparams, values)) != NULL)
		{
			r->stats.reads_standby++;
			r->stats.reads_after_wait++;
			if (served_by)
				*served_by = i;
			free(behind);
			return res;
		}
	}
	free(behind);

	res = PQexecParams(r->primary, sql, nparams, NULL, values, NULL, NULL, 0);
	if (!result_ok(res) && r->failover_ms > 0 && connection_lost(r->primary, res))
	{
		/* a read is safe to repeat: once, on the new primary */
		PQclear(res);
		r->primary_lost = 1;
		if ((res = ensure_primary(r)) != NULL)
			return res;
		res = PQexecParams(r->primary, sql, nparams, NULL, values, NULL, NULL, 0);
	}
	if (!result_ok(res))
		note_primary_failure(r, res);
	r->stats.reads_primary++;
	return res;
}
