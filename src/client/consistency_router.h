/*-------------------------------------------------------------------------
 *
 * consistency_router.h
 *	  A small read-your-writes router on libpq for the consistency extension.
 *
 * Connect to a primary and N streaming standbys.  Writes go to the primary,
 * and the router keeps the session's token, which the server reports in the
 * consistency.last_commit_token parameter at each commit (no extra round
 * trip when the library is preloaded on the primary).  Reads go to a
 * standby that has replayed the token -- or that replays it within the wait
 * budget -- and otherwise to the primary.  A read is never answered from a
 * standby that has not replayed the token: the standby checks it
 * (SET consistency.read_after) and refuses.
 *
 *	  CRouter *r = crouter_connect("host=p dbname=shop", standbys, 2);
 *	  PQclear(crouter_write(r, "UPDATE ...", 0, NULL));
 *	  PGresult *res = crouter_read(r, "SELECT ...", 0, NULL, &served_by);
 *
 * Not thread-safe: use one router per thread, like a PGconn.
 *
 * IDENTIFICATION
 *	  src/client/consistency_router.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_ROUTER_H
#define CONSISTENCY_ROUTER_H

#include <libpq-fe.h>

#ifdef __cplusplus
extern "C"
{
#endif

/* Where a read was served: the primary, or standby number 0..n-1. */
#define CROUTER_PRIMARY (-1)

/* Longest token the extension mints, plus its terminator. */
#define CROUTER_TOKEN_SIZE 64

typedef struct CRouter CRouter;

/*
 * Connect to the primary and to each standby.  Returns NULL only when out of
 * memory; otherwise check crouter_ok().  A standby that cannot be reached, or
 * that belongs to another cluster than the primary (another system
 * identifier), is left out of routing (reads go elsewhere) rather than
 * failing the router; crouter_error() says why.  So are all standbys if the
 * primary cannot be reached or its system identifier cannot be read.
 */
extern CRouter *crouter_connect(const char *primary_conninfo,
								const char *const *standby_conninfos,
								int nstandbys);
extern int	crouter_ok(const CRouter *r);	/* primary connected? */
extern const char *crouter_error(const CRouter *r);
extern void crouter_finish(CRouter *r);

/* How long a read may wait for a standby to replay the token (default 0). */
extern void crouter_set_wait_budget(CRouter *r, int milliseconds);

/*
 * Run a write (any statement) on the primary and keep the token of the
 * session's last commit -- also when the statement fails after committing (a
 * procedure that commits, then raises).  Returns the result; the caller
 * PQclear()s it.
 *
 * If the router cannot learn the token of a commit of the session -- the
 * library is not loaded in the primary's session and the write's
 * consistency.write_token() query fails, or a statement failed there and may
 * have committed first -- crouter_error() says so and every read goes to the
 * primary until a later write's token arrives (crouter_token() meanwhile
 * names the last token known, which does not cover that commit).
 */
extern PGresult *crouter_write(CRouter *r, const char *sql, int nparams,
							   const char *const *values);

/*
 * Run a read.  *served_by (if not NULL) is set to CROUTER_PRIMARY or the
 * standby's index.  The caller PQclear()s the result.  Inside a transaction
 * block opened on the primary (crouter_write(r, "BEGIN", ...)) every read
 * goes to the primary, in that transaction, so that it sees the
 * transaction's own writes; if that connection is lost, the read is not
 * repeated elsewhere (the transaction is gone).
 */
extern PGresult *crouter_read(CRouter *r, const char *sql, int nparams,
							  const char *const *values, int *served_by);

/* The session's token ("" before the first write; see crouter_write()). */
extern const char *crouter_token(const CRouter *r);

/*
 * Merge a token obtained elsewhere (another connection, another process,
 * an HTTP header): the router keeps the later of the two.  Returns 0, or -1
 * if the token is malformed or from another cluster than the primary's.
 * Until the router knows the primary's cluster (its primary could not be
 * reached at connect, or its system identifier not read) a well-formed token
 * is kept, and dropped, crouter_error() saying why, once the primary shows
 * that it names another cluster (at the next write or reconnection).
 */
extern int	crouter_merge_token(CRouter *r, const char *token);

/* The later of two tokens into out (CROUTER_TOKEN_SIZE bytes); -1 if they cannot be compared. */
extern int	crouter_token_max(const char *a, const char *b, char *out);

/*
 * Following a new primary (a Patroni switchover or failover) without a
 * restart.  Give crouter_connect() a primary conninfo that lists every node
 * of the HA cluster with target_session_attrs=read-write (libpq multi-host:
 * "host=a,b,c port=5432,5432,5432 target_session_attrs=read-write") and one
 * standby conninfo per node with target_session_attrs=standby, then set a
 * failover timeout: when the primary's connection is lost (or it has become
 * read-only), the next crouter_write() or crouter_read() reconnects through
 * the same conninfo, retrying every 100 ms for at most that long, and so
 * reaches whichever node is the primary now; standbys that went away are
 * reconnected at most once a second.  0 (the default) never reconnects.
 *
 * A write that was cut off returns its error (its outcome is unknown, as
 * with any lost connection).  On the new primary the router first checks the
 * session's token: if the write it names is not in the new primary's
 * history (lost with an asynchronous standby), the call returns the
 * server's YC303 error instead of running, crouter_lost_token() names the
 * lost token, and the session's token starts afresh: until its next write's
 * token, reads go to the primary (the session's writes that survived came
 * before the lost one, and no standby is known to have them).  So a lost
 * write is reported, never read back as older data -- except a commit whose
 * token the router could not learn (see crouter_write()), which cannot be
 * checked: if the primary is replaced before a later write's token arrives,
 * such a commit lost with the old primary goes unnoticed.  So does a lost
 * write when the new primary refuses the check itself (the role may not
 * execute consistency.wait_for_token(), say): crouter_error() says so, the
 * call goes on, and reads go to the primary until a later write's token.
 * A connection counts as lost when libpq says so (PQstatus()) or when a
 * call fails with an error of libpq's own (no SQLSTATE: "server closed the
 * connection unexpectedly" can come while PQstatus() still says
 * CONNECTION_OK).  If no primary of the
 * router's cluster answers within the timeout, the call fails (and returns
 * NULL if the only server that answered belonged to another cluster: it is
 * never used).
 */
extern void crouter_set_failover_timeout(CRouter *r, int milliseconds);

/* The session token found lost after the last reconnection, or "". */
extern const char *crouter_lost_token(const CRouter *r);

/* Reconnections to a primary since connect, and lost writes reported. */
extern long crouter_reconnects(const CRouter *r);
extern long crouter_lost_writes(const CRouter *r);

/*
 * The connections, for anything else the application does.  A reconnection
 * (see crouter_set_failover_timeout()) replaces them: a pointer taken before
 * a call is not valid after it (take it again), and what a session SET is
 * gone.  Settings the application needs in every session belong in the
 * conninfo (options='-c search_path=app'), which every reconnection uses.
 * Give every conninfo a connect_timeout: a node that silently drops packets
 * would otherwise hold a (re)connection for the kernel's TCP timeout.
 */
extern PGconn *crouter_primary(CRouter *r);
extern PGconn *crouter_standby(CRouter *r, int i);
extern int	crouter_nstandbys(const CRouter *r);

/* Counters since connect: reads served by the primary, by standbys, waits. */
typedef struct CRouterStats
{
	long		writes;
	long		reads_primary;
	long		reads_standby;
	long		reads_after_wait;	/* standby reads that waited (budget) */
	long		tokens_from_parameter_status;
	long		tokens_from_query;	/* library not preloaded on the primary */
} CRouterStats;
extern CRouterStats crouter_stats(const CRouter *r);

#ifdef __cplusplus
}
#endif

#endif							/* CONSISTENCY_ROUTER_H */
