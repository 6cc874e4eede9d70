/*-------------------------------------------------------------------------
 *
 * token_report.c
 *	  The session's last committed write, kept at each commit, and its report
 *	  to the client in the consistency.last_commit_token parameter.
 *
 * RecordTransactionCommit() (xact.c) sets XactLastCommitEnd to the end of
 * the WAL the committing transaction wrote, ending with its commit record,
 * only when the transaction wrote WAL.  An XactCallback remembers it at
 * XACT_EVENT_PRE_COMMIT and, at XACT_EVENT_COMMIT (after the commit record
 * is written and flushed as synchronous_commit asks), takes the new value
 * if it moved and the transaction was a write, together with the timeline
 * it was written on.  A write has a transaction id.  COMMIT PREPARED has
 * none, but counts: its commit-prepared record ends the WAL of the prepared
 * transaction; like every statement that cannot run in a transaction block,
 * it sets XACT_FLAGS_NEEDIMMEDIATECOMMIT.  A read can write WAL too, without
 * a transaction id: pruning a heap page (heap_page_prune_opt), or a hint
 * bit's full-page image.  That moves XactLastCommitEnd, but not the token,
 * which would otherwise move past the session's writes after reads on the
 * primary, and be reported for each.
 *
 * consistency.last_commit_token is a GUC_REPORT string of context
 * PGC_INTERNAL: users cannot SET it.  Its value is the token last reported,
 * kept here and shown through the parameter's show hook; the report is a
 * ParameterStatus message this file sends itself, from the XACT_EVENT_COMMIT
 * callback (a procedure's commits: once, when its CALL or DO ends), into the
 * output buffer that the statement's CommandComplete and ReadyForQuery
 * follow (the protocol lets ParameterStatus come at any time; libpq,
 * pgbouncer and the other drivers accept it anywhere).  PostgreSQL's
 * own way, set_config_option() at commit and ReportChangedGUCOptions()
 * before ReadyForQuery, sends the same message, but cost 13k instructions
 * per write transaction on PostgreSQL 15 (the latter walks every setting),
 * 9% of a single-row update's (callgrind, a client backend); this costs
 * about 1k.  PostgreSQL reports the parameter's initial value, empty, when
 * the session starts if the library is preloaded.  All this only happens in
 * sessions that loaded the library before they wrote: see README
 * ("session_preload_libraries").
 * A write committed for the session by another backend (a reserve_now()
 * batch, consistency_token_note_commit) is reported at its next commit.
 * write_token() needs no preloading: XactLastCommitEnd is kept by xact.c.
 *
 * IDENTIFICATION
 *	  src/token_report.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "libpq/libpq.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "consistency.h"
#include "token.h"

#define LAST_COMMIT_TOKEN_GUC "consistency.last_commit_token"

/*
 * The GUC's variable, which keeps its boot value: its value is reported[],
 * shown by show_last_commit_token().
 */
static char *last_commit_token = NULL;

/* The parameter's value: the token last reported to the client, or empty. */
static char reported[CONSISTENCY_TOKEN_MAXLEN + 1] = "";

/* The ParameterStatus message, built in a buffer made at load (no palloc at commit). */
static StringInfoData report_msg;

/* The session's last committed write, if any. */
static bool have_last_commit = false;
static ConsistencyToken last_commit;

/* XactLastCommitEnd as it was when the current transaction began to commit. */
static XLogRecPtr commit_end_before = InvalidXLogRecPtr;

/* A commit has been seen: XactLastCommitEnd no longer names a write made before. */
static bool seen_commit = false;

/*
 * last_commit moved and the client has not been told: by another backend
 * (see consistency_token_note_commit), or in a commit of a procedure's, whose
 * report waits for the end of its CALL or DO (see report_process_utility).
 */
static bool report_pending = false;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static const char *
show_last_commit_token(void)
{
	return reported;
}

/*
 * The parameter takes last_commit, and a client backend sends it to its
 * client in a ParameterStatus message, as ReportGUCOption() would.  This runs
 * in CommitTransaction() after the commit record, with interrupts held and
 * the transaction's locks not yet released, so it must neither fail nor wait
 * for the client.  pq_putmessage() can wait: when the message does not fit in
 * what is left of the output buffer, it flushes the buffer, blocking, and a
 * client that stopped reading would keep the backend there, its locks held,
 * with no way to end it (a blocked write heeds pg_terminate_backend() only
 * when no interrupts are held).  pq_putmessage_noblock(), which walsender
 * uses, never flushes: it enlarges the buffer to hold the message if need be
 * (a repalloc() of the 8 kB buffer to at most the message's size more, which
 * fails only out of memory; an error here, as anywhere after the commit
 * record, is a PANIC), and the buffer is flushed with the statement's
 * CommandComplete or ReadyForQuery, after the transaction has ended, where a
 * client that does not read holds the backend as it would without this
 * library.  report_msg has room for the message, and both strings are ASCII
 * (no encoding conversion, and copied whole: pq_send_ascii_string() would
 * copy a byte at a time).  Neither a parallel worker (whose output goes to
 * its leader) nor a single-user backend has a client to tell.
 */
static void
report_last_commit(void)
{
	int			len;

	report_pending = false;
	len = consistency_token_format_buf(&last_commit, reported);
	if (MyBackendType != B_BACKEND || whereToSendOutput != DestRemote)
		return;
	resetStringInfo(&report_msg);
	pq_sendbytes(&report_msg, LAST_COMMIT_TOKEN_GUC, sizeof(LAST_COMMIT_TOKEN_GUC));
	pq_sendbytes(&report_msg, reported, len + 1);
	pq_putmessage_noblock(PqMsg_ParameterStatus, report_msg.data, report_msg.len);
}

static void
token_report_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			commit_end_before = XactLastCommitEnd;
			break;

		case XACT_EVENT_COMMIT:
			if (XactLastCommitEnd != commit_end_before &&
				!XLogRecPtrIsInvalid(XactLastCommitEnd) &&
				(TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
				 (MyXactFlags & XACT_FLAGS_NEEDIMMEDIATECOMMIT)) &&
				(!have_last_commit || XactLastCommitEnd > last_commit.lsn))
			{
				last_commit.sysid = GetSystemIdentifier();
				last_commit.tli = GetWALInsertionTimeLine();
				last_commit.lsn = XactLastCommitEnd;
				have_last_commit = true;
				report_pending = true;
			}
			else if (!have_last_commit && !seen_commit &&
					 !XLogRecPtrIsInvalid(commit_end_before))
			{
				/*
				 * The library's first commit, not a write: the session's last
				 * write is the one before it was loaded (see
				 * consistency_token_last_commit), which XactLastCommitEnd may
				 * no longer name.
				 */
				last_commit.sysid = GetSystemIdentifier();
				last_commit.tli = GetWALInsertionTimeLine();
				last_commit.lsn = commit_end_before;
				have_last_commit = true;
			}
			seen_commit = true;
			commit_end_before = XactLastCommitEnd;

			/*
			 * A procedure's COMMIT (SPI_commit(), in a CALL or DO) reports
			 * nothing: nothing flushes the output buffer until its statement
			 * ends, so a report per commit would grow the buffer by one
			 * message per commit, for the session's life, and past what it
			 * can hold for a procedure that commits millions of times.  The
			 * newest is sent once, when the CALL or DO ends.
			 */
			if (report_pending && !SPI_inside_nonatomic_context())
				report_last_commit();
			break;

		default:
			break;
	}
}

/*
 * ProcessUtility: a CALL or DO at top level, the only statements whose
 * procedures can commit, sends the report of the last write they committed
 * when they end, also when they fail after committing (that write stands,
 * and a client told nothing of it would read without it).  A failure's
 * report precedes its ErrorResponse; ReadyForQuery follows either way.
 */
static void
report_process_utility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (context != PROCESS_UTILITY_TOPLEVEL ||
		!(IsA(stmt, CallStmt) || IsA(stmt, DoStmt)))
	{
		consistency_next_utility(prev_ProcessUtility, pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		return;
	}

	PG_TRY();
	{
		consistency_next_utility(prev_ProcessUtility, pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (report_pending)
			report_last_commit();
	}
	PG_END_TRY();
}

/*
 * Another backend committed a write made for this session: a reserve_now()
 * batch's leader, whose commit ended at lsn (inventory_combine.c).  It
 * becomes the session's last committed write if it is later, at once for
 * write_token(), and in the reported parameter at this session's next
 * commit: the parameter changes, and the client hears of it, only at a
 * commit.
 */
void
consistency_token_note_commit(XLogRecPtr lsn)
{
	ConsistencyToken tok;

	if (XLogRecPtrIsInvalid(lsn) ||
		(consistency_token_last_commit(&tok) && lsn <= tok.lsn))
		return;
	last_commit.sysid = GetSystemIdentifier();
	last_commit.tli = GetWALInsertionTimeLine();
	last_commit.lsn = lsn;
	have_last_commit = true;
	report_pending = true;
}

/*
 * The session's last committed write; false if it wrote nothing.
 *
 * XactLastCommitEnd lives in xact.c, not here, so it also covers commits made
 * before this library was loaded in the session (e.g. a write followed by the
 * session's first call of write_token()), until the callback has seen a
 * commit (which took that write if it was not one itself).  Such a commit
 * was made on the current timeline: a primary's timeline never changes while
 * its backends live, and a backend that lived through a promotion could not
 * write before.  (A read that pruned a page before the library was loaded
 * cannot be told from a write here: its token is later than it need be.)
 */
bool
consistency_token_last_commit(ConsistencyToken *tok)
{
	if (!have_last_commit)
	{
		if (seen_commit || XLogRecPtrIsInvalid(XactLastCommitEnd) || RecoveryInProgress())
			return false;
		last_commit.sysid = GetSystemIdentifier();
		last_commit.tli = GetWALInsertionTimeLine();
		last_commit.lsn = XactLastCommitEnd;
		have_last_commit = true;
	}
	*tok = last_commit;
	return true;
}

void
consistency_token_report_init(void)
{
	MemoryContext old;

	DefineCustomStringVariable(LAST_COMMIT_TOKEN_GUC,
							   "Token of this session's last committed write (reported to the client).",
							   "Set at each commit of a write transaction; empty until the session writes.",
							   &last_commit_token,
							   "",
							   PGC_INTERNAL,
							   GUC_REPORT | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, show_last_commit_token);
	old = MemoryContextSwitchTo(TopMemoryContext);
	initStringInfo(&report_msg);	/* 1 kB: room for the message */
	MemoryContextSwitchTo(old);
	RegisterXactCallback(token_report_xact_callback, NULL);
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = report_process_utility;
}
