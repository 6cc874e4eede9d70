/*-------------------------------------------------------------------------
 *
 * token_wait.c
 *	  Waiting on a standby until it has replayed a token: the GUCs
 *	  consistency.read_after and consistency.read_after_timeout, the
 *	  per-query check while read_after is set, and wait_for_token().
 *
 * SET consistency.read_after = '<token>' waits in the GUC's check hook.
 * SET is a utility statement that runs without a snapshot
 * (PlannedStmtRequiresSnapshot() is false for VariableSetStmt), so the
 * waiting backend holds no xmin: it neither holds back replay through a
 * recovery conflict nor vacuum on the primary through hot_standby_feedback.
 * When the token is not replayed within read_after_timeout the SET fails
 * with YC304 ("route to the primary") and the setting keeps its old value.
 * The wait happens only for an interactive SET (source PGC_S_SESSION);
 * settings from the connection string or ALTER ROLE are not waited for (only
 * noted if already replayed, see below), and the per-query check keeps them
 * honest.
 *
 * While read_after is set, every statement on a standby that reads user data
 * is checked before it reads: an ExecutorStart hook for queries, and a
 * ProcessUtility hook for COPY ... TO, which scans a table without the
 * executor.  The check reads the replay position (no waiting) and raises an
 * error rather than let the statement read stale data.
 *
 * Replay being past the token is not enough: the statement's snapshot was
 * taken before the check (by PortalStart, or by the first statement of a
 * REPEATABLE READ transaction, maybe a PREPARE that the check never sees), and
 * replay may have passed the token in between.  Snapshots do not say when
 * they were taken (the completed-transaction count they record is zeroed in
 * every copy, and the executor only sees copies), so the session orders
 * events itself: it notes once per token when it first saw the token
 * replayed -- in SET, at connect for connection options and role settings,
 * or in a check -- with the local transaction it happened in and whether
 * that transaction had its snapshot yet.  A check passes only if the
 * snapshot must be newer than that: under READ COMMITTED, if the token was
 * noted before this statement (a statement's snapshot is its own); under
 * REPEATABLE READ and SERIALIZABLE, if it was noted in an earlier transaction
 * or before this one took its snapshot.  Otherwise YC304: under READ
 * COMMITTED once, for the statement during whose check replay was first seen
 * past the token (a token set without waiting; running it again passes);
 * under REPEATABLE READ, a transaction that would read from before the write.
 * Not covered: a cursor opened before the token was set (FETCH reads from
 * its old snapshot), and a statement that set the token with set_config()
 * and reads in the same statement.  Parallel workers are not checked: their
 * leader was, with the same snapshot.
 *
 * wait_for_token() is a function: it necessarily runs inside a SELECT with
 * that statement's snapshot, which on a standby can delay replay of a
 * conflicting cleanup record (the very replay it is waiting for) and, with
 * hot_standby_feedback, vacuum on the primary.  README explains when to use
 * which form.  Under REPEATABLE READ a transaction snapshot taken before the
 * wait would make the read stale anyway, so both forms refuse to wait once
 * a transaction snapshot exists.
 *
 * The wake-up: with the library in shared_preload_libraries, the waiter
 * registers its target in shared memory and sleeps on its latch; the replay
 * watcher background worker (token_watcher.c) sets the latch once replay has
 * passed the target.  Without it, the waiter polls the replay position
 * every millisecond.  Either way, a waiter whose WAL has not even arrived
 * asks the WAL receiver to report to the primary, which wakes a walsender
 * that missed a wake-up (nudge_if_stalled()).
 *
 * IDENTIFICATION
 *	  src/token_wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "common/int.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "replication/walreceiver.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "consistency.h"
#include "stats.h"
#include "token.h"

PG_FUNCTION_INFO_V1(consistency_wait_for_token);

/* GUCs */
static char *read_after_string = NULL;
static int	read_after_timeout = 1000;	/* ms */

/* The parsed read_after token (the GUC's "extra"), or NULL when unset. */
static ConsistencyToken *read_after_token = NULL;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * When this session first saw replay past replayed_token (see the header
 * comment): in which local transaction, and whether that transaction had
 * taken its first snapshot yet.  It also covers every earlier token of the
 * same timeline: replay passed those first.
 */
static bool replayed_known = false;
static ConsistencyToken replayed_token;
static LocalTransactionId replayed_lxid = InvalidLocalTransactionId;
static bool replayed_before_snapshot = false;

/* Poll period when no replay watcher wakes us, and the watcher's safety net. */
#define POLL_MS				1
#define WATCHED_POLL_MS		100

/*
 * Nudging the upstream server (see nudge_if_stalled()): once the WAL a waiter
 * needs has not arrived and nothing new has been received for NUDGE_FIRST_MS
 * (noticed at the waiter's next wake-up if WAL was arriving until then), then
 * with an interval doubling up to NUDGE_MAX_MS while it stays so.
 */
#define NUDGE_FIRST_MS		20
#define NUDGE_MAX_MS		1000

typedef struct ReceiveNudge
{
	XLogRecPtr	received;		/* the WAL receiver's write position seen last */
	TimestampTz next_at;		/* no nudge before this */
	int			interval_ms;	/* the next one's distance from the previous */
} ReceiveNudge;

/*
 * Note that replay was just seen past tok (a TOKEN_READY verdict), unless an
 * earlier note covers it.  Returns true if this is the first note.
 */
static bool
note_replayed(const ConsistencyToken *tok)
{
	if (replayed_known && replayed_token.sysid == tok->sysid &&
		replayed_token.tli == tok->tli && tok->lsn <= replayed_token.lsn)
		return false;
	replayed_token = *tok;
	replayed_known = true;
	replayed_lxid = MyProc != NULL ? PGPROC_LXID(MyProc) : InvalidLocalTransactionId;
	replayed_before_snapshot = !FirstSnapshotSet;
	return true;
}

/* Start the nudge schedule again: WAL received up to received, as of now. */
static void
nudge_restart(ReceiveNudge *n, XLogRecPtr received, TimestampTz now)
{
	n->received = received;
	n->next_at = TimestampTzPlusMilliseconds(now, NUDGE_FIRST_MS);
	n->interval_ms = NUDGE_FIRST_MS;
}

/*
 * Is the WAL receiver streaming?  Read directly: WalRcvStreaming() is the
 * startup process's, and may stop a WAL receiver that is slow to start.
 */
static bool
walreceiver_streaming(void)
{
	WalRcvState state;

	SpinLockAcquire(&WalRcv->mutex);
	state = WalRcv->walRcvState;
	SpinLockRelease(&WalRcv->mutex);
	return state == WALRCV_STREAMING;
}

/*
 * While a token's WAL has not even been received, and the WAL receiver has
 * received nothing new for a while, ask it to send its upstream server a
 * status reply now.  The reply wakes the upstream's walsender, which then
 * sends what it has.  This recovers from a walsender that missed its
 * wake-up: from PostgreSQL 16 on, a walsender can read the flush position,
 * find nothing to send, and only then join the condition variable that
 * XLogFlush() broadcasts on, so a commit flushed in between is not sent until
 * the next flush, standby reply (wal_receiver_status_interval, 10 s by
 * default) or keepalive (wal_sender_timeout / 2).  WAL that the WAL receiver
 * has written is here already (replay lags, or recovery is paused or
 * delayed): no nudge then.  Without a streaming WAL receiver (archive
 * recovery, reconnecting) there is nobody to nudge; the schedule backs off
 * all the same.  Each waiter nudges on its own schedule; the WAL receiver
 * sends one reply for the requests that reach it together.
 *
 * Returns the milliseconds until the next nudge could be due, or -1 if the
 * caller's own poll period should apply: the WAL is here, or it is arriving
 * (a waiter must not wake every 20 ms while a standby catches up).
 */
static long
nudge_if_stalled(ReceiveNudge *n, XLogRecPtr target, TimestampTz now)
{
	XLogRecPtr	received = GetWalRcvWriteRecPtr();

	if (received >= target)
		return -1;
	if (received != n->received)
	{
		nudge_restart(n, received, now);
		return -1;
	}
	if (now >= n->next_at)
	{
		if (walreceiver_streaming())
		{
			WalRcvForceReply();
			consistency_count(CSTAT_TOK_NUDGE);
		}
		n->interval_ms = Min(n->interval_ms * 2, NUDGE_MAX_MS);
		n->next_at = TimestampTzPlusMilliseconds(now, n->interval_ms);
	}
	return Max(TimestampDifferenceMilliseconds(now, n->next_at), 1);
}

/*
 * Wait until the token is replayed, or until timeout_ms passed, or until it
 * turns out it never can be.  Returns the last verdict: TOKEN_BEHIND means
 * the timeout passed.
 */
static TokenStatus
wait_until_replayed(const ConsistencyToken *tok, int timeout_ms, TokenPosition *pos)
{
	TimestampTz start;
	TokenStatus status;
	ReceiveNudge nudge;
	bool		watched;
	long		waited_us;
	long		waited_secs;
	int			waited_usecs;

	status = consistency_token_evaluate(tok, pos);
	if (status != TOKEN_BEHIND || timeout_ms == 0)
		return status;

	/*
	 * A catalog snapshot left from an earlier statement of the transaction
	 * would hold an xmin while we wait: drop it if it is the only snapshot.
	 */
	InvalidateCatalogSnapshotConditionally();

	start = GetCurrentTimestamp();
	nudge_restart(&nudge, GetWalRcvWriteRecPtr(), start);
	watched = consistency_watcher_register(tok->lsn);
	PG_TRY();
	{
		for (;;)
		{
			TimestampTz now = GetCurrentTimestamp();
			long		remaining;
			long		nudge_ms;
			long		sleep_ms;

			remaining = timeout_ms - TimestampDifferenceMilliseconds(start, now);
			if (remaining <= 0)
				break;
			sleep_ms = watched ? WATCHED_POLL_MS : POLL_MS;
			nudge_ms = nudge_if_stalled(&nudge, tok->lsn, now);
			if (nudge_ms > 0 && nudge_ms < sleep_ms)
				sleep_ms = nudge_ms;
			if (remaining < sleep_ms)
				sleep_ms = remaining;

			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();

			status = consistency_token_evaluate(tok, pos);
			if (status != TOKEN_BEHIND)
				break;
			/* re-arm; if the watcher went away meanwhile, poll instead */
			if (watched)
				watched = consistency_watcher_register(tok->lsn);
		}
	}
	PG_FINALLY();
	{
		/* idempotent, and harmless if we never registered */
		consistency_watcher_unregister();
	}
	PG_END_TRY();
	TimestampDifference(start, GetCurrentTimestamp(), &waited_secs, &waited_usecs);
	waited_us = waited_secs * 1000000L + waited_usecs;
	consistency_count(CSTAT_TOK_WAIT);
	consistency_count_n(CSTAT_TOK_WAIT_US, (uint64) waited_us);
	consistency_count_max(CSTAT_TOK_MAX_WAIT_US, (uint64) waited_us);
	return status;
}

/*
 * What the user must know about a standby that did not replay in time: how
 * far it got, and whether it was told not to replay (pause, apply delay).
 */
static char *
behind_detail(const ConsistencyToken *tok, const TokenPosition *pos, int waited_ms,
			  bool waited)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "This standby has replayed up to %X/%X on timeline %u; the token needs %X/%X on timeline %u",
					 LSN_FORMAT_ARGS(pos->lsn), pos->tli,
					 LSN_FORMAT_ARGS(tok->lsn), tok->tli);
	if (waited)
		appendStringInfo(&buf, " (waited %d ms).", waited_ms);
	else
		appendStringInfoString(&buf, " (did not wait).");
	if (GetRecoveryPauseState() != RECOVERY_NOT_PAUSED)
		appendStringInfoString(&buf, " Recovery is paused on this server (pg_wal_replay_pause()): it replays nothing until pg_wal_replay_resume().");
	if (recovery_min_apply_delay > 0)
		appendStringInfo(&buf, " recovery_min_apply_delay is %d ms on this server: commits are applied no earlier than that after the primary made them.",
						 recovery_min_apply_delay);
	return buf.data;
}

#define BEHIND_MSG	"standby has not replayed the write named by the consistency token"
#define BEHIND_HINT "Route the read to the primary, or to a standby whose consistency.token_status() is ready."

/*
 * On a standby, a REPEATABLE READ or SERIALIZABLE transaction that already
 * has its snapshot would read from before the wait: refuse.
 */
static bool
xact_snapshot_taken(void)
{
	return IsolationUsesXactSnapshot() && FirstSnapshotSet;
}

#define SNAPSHOT_MSG	"cannot wait for a consistency token after the transaction's snapshot was taken"
#define SNAPSHOT_DETAIL "Under REPEATABLE READ and SERIALIZABLE every query of the transaction reads from the snapshot taken by its first query, so waiting now cannot make the reads see the write."
#define SNAPSHOT_HINT	"Wait before the transaction's first query: SET consistency.read_after right after BEGIN, or before BEGIN."

static int
interval_to_ms(Interval *iv)
{
	int64		us;

	if (pg_mul_s64_overflow((int64) iv->month * DAYS_PER_MONTH + iv->day,
							USECS_PER_DAY, &us) ||
		pg_add_s64_overflow(us, iv->time, &us) ||
		us < 0 || us > (int64) INT_MAX * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be between 0 and %d milliseconds", INT_MAX)));

	/*
	 * Round up so that a positive timeout never becomes "do not wait"; the
	 * bound above is on the rounded value, so that it still fits in an int.
	 */
	return (int) ((us + 999) / 1000);
}

/*
 * wait_for_token(token, timeout): true once this server has the token's
 * write (immediately on the primary), false if the timeout passed first.
 * Errors for a token this server can never satisfy.
 */
Datum
consistency_wait_for_token(PG_FUNCTION_ARGS)
{
	text	   *t = consistency_text_arg(fcinfo, 0, "token", PG_INT32_MAX, true);
	ConsistencyToken tok;
	TokenPosition pos;
	TokenStatus status;
	int			timeout_ms;

	consistency_token_parse_or_error(text_to_cstring(t), &tok);
	consistency_arg_not_null(fcinfo, 1, "timeout");
	timeout_ms = interval_to_ms(PG_GETARG_INTERVAL_P(1));

	if (RecoveryInProgress() && xact_snapshot_taken())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg(SNAPSHOT_MSG), errdetail(SNAPSHOT_DETAIL), errhint(SNAPSHOT_HINT)));

	status = wait_until_replayed(&tok, timeout_ms, &pos);
	if (status == TOKEN_WRONG_CLUSTER || status == TOKEN_DIVERGED)
		consistency_token_raise_unusable(&tok, status, &pos);
	if (status == TOKEN_BEHIND)
		consistency_count(CSTAT_TOK_TIMEOUT);
	PG_RETURN_BOOL(status != TOKEN_BEHIND);
}

/* GUC check hook of consistency.read_after: parse, and wait for SET. */
static bool
check_read_after(char **newval, void **extra, GucSource source)
{
	ConsistencyToken tok;
	ConsistencyToken *copy;
	TokenPosition pos;
	TokenStatus status;
	const char *why;
	TimestampTz start;

	if (*newval == NULL || **newval == '\0')
	{
		*extra = NULL;
		return true;
	}
	if (!consistency_token_parse(*newval, &tok, &why))
	{
		GUC_check_errcode(ERRCODE_CONSISTENCY_TOKEN_MALFORMED);
		GUC_check_errmsg("malformed consistency token in consistency.read_after");
		GUC_check_errdetail("%s", why);
		return false;
	}

	/*
	 * Wait only for an interactive SET in a backend: not while reading
	 * configuration files, connection options or role settings.
	 */
	if (source == PGC_S_SESSION && IsNormalProcessingMode() &&
		MyBackendType == B_BACKEND && IsTransactionState())
	{
		if (RecoveryInProgress() && xact_snapshot_taken())
		{
			GUC_check_errcode(ERRCODE_INVALID_TRANSACTION_STATE);
			GUC_check_errmsg(SNAPSHOT_MSG);
			GUC_check_errdetail(SNAPSHOT_DETAIL);
			GUC_check_errhint(SNAPSHOT_HINT);
			return false;
		}
		start = GetCurrentTimestamp();
		status = wait_until_replayed(&tok, read_after_timeout, &pos);
		switch (status)
		{
			case TOKEN_READY:
				(void) note_replayed(&tok);
				break;
			case TOKEN_PRIMARY:
				break;
			case TOKEN_BEHIND:
				consistency_count(CSTAT_TOK_TIMEOUT);
				GUC_check_errcode(ERRCODE_CONSISTENCY_TOKEN_NOT_REPLAYED);
				GUC_check_errmsg(BEHIND_MSG);
				GUC_check_errdetail("%s", behind_detail(&tok, &pos,
														(int) TimestampDifferenceMilliseconds(start, GetCurrentTimestamp()),
														read_after_timeout > 0));
				GUC_check_errhint(BEHIND_HINT);
				return false;
			case TOKEN_WRONG_CLUSTER:
				consistency_count(CSTAT_TOK_WRONG_CLUSTER);
				GUC_check_errcode(ERRCODE_CONSISTENCY_TOKEN_WRONG_CLUSTER);
				GUC_check_errmsg("consistency token is from another cluster");
				GUC_check_errdetail("The token names system identifier " UINT64_FORMAT "; this server's is " UINT64_FORMAT ".",
									tok.sysid, GetSystemIdentifier());
				GUC_check_errhint("Send the read to a server of the cluster that minted the token.");
				return false;
			case TOKEN_DIVERGED:
				consistency_count(CSTAT_TOK_DIVERGED);
				GUC_check_errcode(ERRCODE_CONSISTENCY_TOKEN_DIVERGED);
				GUC_check_errmsg("write named by the consistency token is not in this server's history");
				GUC_check_errdetail("The token names %X/%X on timeline %u; this server is at %X/%X on timeline %u, and its history does not contain that write.",
									LSN_FORMAT_ARGS(tok.lsn), tok.tli,
									LSN_FORMAT_ARGS(pos.lsn), pos.tli);
				GUC_check_errhint("The write was lost in a failover, or this server follows another branch of the cluster's history: read from the current primary and treat the write as lost.");
				return false;
		}
	}
	else if (MyBackendType == B_BACKEND && MyProc != NULL && !IsParallelWorker() &&
			 RecoveryInProgress())
	{
		/*
		 * Connection options, role settings: no waiting, but if the token is
		 * replayed already, note it now, before the session's first snapshot.
		 */
		if (consistency_token_evaluate(&tok, &pos) == TOKEN_READY)
			(void) note_replayed(&tok);
	}

	copy = (ConsistencyToken *) guc_malloc(LOG, sizeof(ConsistencyToken));
	if (copy == NULL)
		return false;
	*copy = tok;
	*extra = copy;
	return true;
}

static void
assign_read_after(const char *newval, void *extra)
{
	read_after_token = (ConsistencyToken *) extra;
}

/*
 * Before a statement on a standby reads user data while read_after is set:
 * has replay passed the token, and was the statement's snapshot taken after
 * this session saw it replayed?  One read of the replay position; never
 * waits.
 */
static void
check_read_after_for_read(void)
{
	TokenPosition pos;
	TokenStatus status;
	bool		first_seen;
	bool		snapshot_too_old;

	if (read_after_token == NULL || IsParallelWorker() || !RecoveryInProgress())
		return;

	status = consistency_token_evaluate(read_after_token, &pos);
	if (status == TOKEN_BEHIND)
	{
		consistency_count(CSTAT_TOK_STALE_REFUSED);
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TOKEN_NOT_REPLAYED),
				 errmsg(BEHIND_MSG),
				 errdetail("%s", behind_detail(read_after_token, &pos, 0, false)),
				 errhint(BEHIND_HINT)));
	}
	if (status == TOKEN_WRONG_CLUSTER || status == TOKEN_DIVERGED)
		consistency_token_raise_unusable(read_after_token, status, &pos);

	/* a token without a write needs nothing from the snapshot */
	if (status != TOKEN_READY || read_after_token->lsn == InvalidXLogRecPtr)
		return;

	first_seen = note_replayed(read_after_token);
	if (IsolationUsesXactSnapshot())
		snapshot_too_old = replayed_lxid == PGPROC_LXID(MyProc) && !replayed_before_snapshot;
	else
		snapshot_too_old = first_seen;
	if (snapshot_too_old)
	{
		consistency_count(CSTAT_TOK_STALE_REFUSED);
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TOKEN_NOT_REPLAYED),
				 errmsg("statement's snapshot was taken before this standby replayed the consistency token"),
				 errdetail("This standby has now replayed up to %X/%X on timeline %u, past the token's %X/%X, but the statement would read from a snapshot taken earlier, which may not see the write.",
						   LSN_FORMAT_ARGS(pos.lsn), pos.tli,
						   LSN_FORMAT_ARGS(read_after_token->lsn)),
				 errhint("Run the statement again; under REPEATABLE READ or SERIALIZABLE, in a new transaction.")));
	}
}

/* ExecutorStart: every query. */
static void
read_after_executor_start(QueryDesc *queryDesc, int eflags)
{
	check_read_after_for_read();

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * ProcessUtility: COPY ... TO of a table reads it without the executor, with
 * the active snapshot PortalRunUtility() pushed for it.  (COPY (query) TO
 * goes through the executor too and is checked twice, harmlessly.)
 */
static void
read_after_process_utility(PlannedStmt *pstmt, const char *queryString,
						   bool readOnlyTree, ProcessUtilityContext context,
						   ParamListInfo params, QueryEnvironment *queryEnv,
						   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (read_after_token != NULL && IsA(stmt, CopyStmt) &&
		!((CopyStmt *) stmt)->is_from)
		check_read_after_for_read();

	consistency_next_utility(prev_ProcessUtility, pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
}

void
consistency_token_wait_init(void)
{
	DefineCustomIntVariable("consistency.read_after_timeout",
							"How long SET consistency.read_after waits for the standby to replay the token.",
							"0 does not wait: the SET fails at once if the token is not replayed yet.",
							&read_after_timeout,
							1000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("consistency.read_after",
							   "Token whose write this session's queries must see (read-your-writes on a standby).",
							   "Setting it waits until the standby replayed the token; while set, queries on a standby fail rather than read data older than the token.",
							   &read_after_string,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE,
							   check_read_after, assign_read_after, NULL);

	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = read_after_executor_start;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = read_after_process_utility;
}
