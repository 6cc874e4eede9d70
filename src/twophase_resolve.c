/*-------------------------------------------------------------------------
 *
 * twophase_resolve.c
 *	  In-doubt two-phase commit, the write side: resolve_prepared(),
 *	  resolve_stale() and the dynamic background worker that runs COMMIT
 *	  PREPARED / ROLLBACK PREPARED for them.
 *
 * COMMIT/ROLLBACK PREPARED cannot run inside the caller's transaction, and
 * PostgreSQL only lets it run in the database where the transaction was
 * prepared (LockGXact in twophase.c).  So the caller decides (twophase_
 * helpers.c: tpc_decide), then starts one dynamic background worker per
 * database involved, connected to that database as the calling role
 * (BackgroundWorkerInitializeConnectionByOid with GetUserId()): PostgreSQL's
 * own rule -- the role that prepared the transaction, or a superuser --
 * still decides, and its refusal is reported as it is.  No
 * shared_preload_libraries is needed: the worker is registered at run time
 * and loads this library by name.
 *
 * The worker finishes each transaction in a transaction of its own, exactly
 * as utility.c does for the SQL command (FinishPreparedTransaction), and
 * classifies the result: done; "does not exist" (the gid vanished meanwhile:
 * someone else finished it, which counts as success); "is busy" (another
 * backend is finishing it right now: reported, never waited for); anything
 * else is a failure carrying PostgreSQL's SQLSTATE and message.
 *
 * The worker of the caller's database is the log writer: it writes one row
 * per attempted action to consistency.tpc_resolution_log, in its own
 * transaction.  An executed COMMIT/ROLLBACK PREPARED cannot be undone, so
 * its log row must not be undone either when the caller's transaction rolls
 * back; it is not.  The log writer is started first and must be connected
 * before any other worker acts; it then waits until the others are done,
 * does its own database's actions and writes the log.  So an action is only
 * ever started while a live log writer is waiting to record it: a worker
 * slot that cannot be had later (max_worker_processes, taken by someone else
 * meanwhile) leaves that database's actions undone and logged as such,
 * never done and unlogged; a log writer that exits meanwhile (terminated,
 * say) leaves the actions not yet started undone: the other workers look
 * before each action, the caller before starting each worker.  An action
 * under way as it exits (a COMMIT PREPARED waiting for a synchronous
 * standby) completes unrecorded; the caller's result still has it.  Every
 * worker overrides the role's and database's settings that could keep it
 * from writing its log row (worker_override_settings).  Arguments and
 * results travel through a DSM segment whose handle is the worker's main
 * argument (its database is in bgw_extra); the caller waits for each worker
 * to exit.  A caller that stops waiting (cancelled, terminated, or its
 * client gone) hands the log over: see orphan_tasks(), run as the caller's
 * mapping of the segment goes away, however that happens (an error, or a
 * FATAL exit that no error handler sees).
 *
 * The worker writes the log as the table's owner (table_owner.c): no role
 * needs INSERT on it.  Texts are clipped to their fixed buffers on a
 * character boundary, so the log never holds a broken multibyte character
 * (which would make its dump fail to restore).
 *
 * IDENTIFICATION
 *	  src/twophase_resolve.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consistency.h"
#include "stats.h"
#include "twophase.h"

PG_FUNCTION_INFO_V1(consistency_resolve_prepared);
PG_FUNCTION_INFO_V1(consistency_resolve_stale);
PG_FUNCTION_INFO_V1(consistency_tpc_resolution_log_guard);

/* The resolver worker's bgw_type: the resolution log trusts only it. */
#define TPC_WORKER_TYPE "consistency resolver"

/*
 * GUC consistency.tpc_caller_evidence: why the caller chose an explicit
 * action (pg_consistency sets it to the coordinator's decision); recorded
 * with the action in the resolution log.
 */
static char *tpc_caller_evidence = NULL;

typedef enum TpcOutcome
{
	OUT_PENDING,
	OUT_COMMITTED,
	OUT_ROLLED_BACK,
	OUT_ALREADY_RESOLVED,
	OUT_BUSY,
	OUT_FAILED
} TpcOutcome;

static const char *const outcome_names[] = {
	[OUT_PENDING] = "pending",
	[OUT_COMMITTED] = "committed",
	[OUT_ROLLED_BACK] = "rolled_back",
	[OUT_ALREADY_RESOLVED] = "already_resolved",
	[OUT_BUSY] = "busy",
	[OUT_FAILED] = "failed",
};

/* One action, as the caller planned it and the worker did it.  Lives in DSM. */
typedef struct TpcTask
{
	char		gid[TPC_MAX_GID_BYTES + 1];
	Oid			dboid;
	NameData	database;
	TransactionId xid;
	NameData	owner;
	TimestampTz prepared_at;
	bool		commit;
	bool		heuristic;
	char		requested[16];
	char		verdict[16];
	char		evidence[TPC_MAX_TEXT];
	/* filled by the worker */
	TpcOutcome	outcome;
	int			sqlerrcode;
	char		error[TPC_MAX_TEXT];
} TpcTask;

/*
 * Whether the caller still waits for the other-database worker it started
 * last (see orphan_tasks): the worker moves RUNNING to EXITED as it
 * detaches, the caller RUNNING to ABANDONED when it stops waiting; whoever
 * comes second lets the log writer go on.
 */
#define TPC_WORKER_RUNNING		0
#define TPC_WORKER_EXITED		1
#define TPC_WORKER_ABANDONED	2

/*
 * The log writer's hold on the segment: LIVE while it is attached.  A caller
 * that stops waiting pins the segment and moves LIVE to PINNED, so that the
 * segment outlives the caller's mapping; the log writer moves it to GONE as
 * it detaches, whatever it was, and unpins the segment if it was PINNED (if
 * it was still LIVE, the caller's move fails later and the caller unpins).
 * GONE tells the other workers and the caller that nothing would record an
 * action any more: none is started after that.
 */
#define TPC_LOG_WRITER_LIVE		0
#define TPC_LOG_WRITER_GONE		1
#define TPC_LOG_WRITER_PINNED	2

typedef struct TpcShared
{
	Oid			userid;			/* role the workers connect as */
	Oid			log_dboid;		/* the caller's database: where the log is */
	NameData	log_dbname;
	pg_atomic_uint32 state;		/* TPC_WORKER_* of the other worker started last */
	pg_atomic_uint32 log_writer;	/* TPC_LOG_WRITER_* */
	bool		log_writer_ready;	/* connected, waiting for go */
	bool		go;				/* the other workers are done: act and log */
	bool		log_only;		/* the caller gave up: the log writer only logs */
	bool		log_written;
	/* the caller's own bookkeeping, for orphan_tasks */
	bool		log_writer_started;
	Oid			inflight_db;	/* the other-database worker it waits for, if any */
	bool		caller_done;	/* the caller got every result: nothing to hand over */
	NameData	resolved_by;
	int			ntasks;
	TpcTask		tasks[FLEXIBLE_ARRAY_MEMBER];
} TpcShared;

#define LOG_INSERT \
	"INSERT INTO consistency.tpc_resolution_log" \
	" (resolved_at, gid, database, xid, owner, prepared_at, requested, action, heuristic," \
	"  verdict, evidence, outcome, error, resolved_by)" \
	" VALUES (pg_catalog.clock_timestamp(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"

/* ----------------------------------------------------------------
 * The worker
 * ----------------------------------------------------------------
 */

/* This worker's database is the caller's: it writes the resolution log. */
static bool worker_writes_log = false;

/* The resolver worker is inserting its log rows right now (the guard trusts them). */
static bool writing_log = false;

/*
 * Copy src into dst (dstsize bytes), cut on a character boundary of the
 * database encoding if it does not fit.
 */
static void
clip_copy(char *dst, const char *src, size_t dstsize)
{
	int			len = strlen(src);

	if (len >= (int) dstsize)
		len = pg_mbcliplen(src, len, dstsize - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Finish one prepared transaction in a transaction of its own; classify the result. */
static void
worker_run_task(TpcTask *t, MemoryContext workcxt)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, t->commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED");
	PG_TRY();
	{
		FinishPreparedTransaction(t->gid, t->commit);
		CommitTransactionCommand();
		t->outcome = t->commit ? OUT_COMMITTED : OUT_ROLLED_BACK;
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(workcxt);
		ed = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();

		t->sqlerrcode = ed->sqlerrcode;
		if (ed->sqlerrcode == ERRCODE_UNDEFINED_OBJECT)
			t->outcome = OUT_ALREADY_RESOLVED;
		else if (ed->sqlerrcode == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE)
			t->outcome = OUT_BUSY;
		else
			t->outcome = OUT_FAILED;
		clip_copy(t->error, psprintf("%s: %s", unpack_sql_state(ed->sqlerrcode),
									 ed->message ? ed->message : ""),
				  sizeof(t->error));
		FreeErrorData(ed);
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Write the log rows of every attempted action, in a transaction of the worker's own. */
static void
worker_write_log(TpcShared *sh)
{
	Oid			argtypes[13] = {TEXTOID, NAMEOID, XIDOID, NAMEOID, TIMESTAMPTZOID, TEXTOID,
	TEXTOID, BOOLOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, NAMEOID};
	int			i;
	ConsistencySavedUser saved;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "writing consistency.tpc_resolution_log");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	/* as the log's owner; an error ends this worker, and its transaction with it */
	consistency_become_owner(tpc_log_relid("tpc_resolution_log"), &saved);
	writing_log = true;
	for (i = 0; i < sh->ntasks; i++)
	{
		TpcTask    *t = &sh->tasks[i];
		Datum		v[13];
		char		n[13];
		int			rc;

		if (t->outcome == OUT_PENDING)
			continue;
		memset(n, ' ', sizeof(n));
		v[0] = CStringGetTextDatum(t->gid);
		v[1] = NameGetDatum(&t->database);
		v[2] = TransactionIdGetDatum(t->xid);
		v[3] = NameGetDatum(&t->owner);
		v[4] = TimestampTzGetDatum(t->prepared_at);
		v[5] = CStringGetTextDatum(t->requested);
		v[6] = CStringGetTextDatum(t->commit ? "commit" : "rollback");
		v[7] = BoolGetDatum(t->heuristic);
		v[8] = CStringGetTextDatum(t->verdict);
		v[9] = CStringGetTextDatum(t->evidence);
		v[10] = CStringGetTextDatum(outcome_names[t->outcome]);
		v[11] = t->error[0] ? CStringGetTextDatum(t->error) : (Datum) 0;
		n[11] = t->error[0] ? ' ' : 'n';
		v[12] = NameGetDatum(&sh->resolved_by);
		rc = SPI_execute_with_args(LOG_INSERT, 13, argtypes, v, n, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	}
	writing_log = false;
	consistency_restore_user(&saved);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	sh->log_written = true;
}

/* Let the waiting log writer go on (it polls; no latch to set). */
static void
release_log_writer(TpcShared *sh)
{
	pg_write_barrier();
	sh->go = true;
}

/*
 * Whether the log writer has exited (detached from the segment): from then
 * on an action would go unrecorded, so none is started.
 */
static bool
log_writer_gone(TpcShared *sh)
{
	return pg_atomic_read_u32(&sh->log_writer) == TPC_LOG_WRITER_GONE;
}

/* Mark task t failed without attempting it: the log writer is gone. */
static void
fail_unlogged(TpcShared *sh, TpcTask *t)
{
	t->outcome = OUT_FAILED;
	t->sqlerrcode = ERRCODE_CONSISTENCY_TPC_WORKER_FAILED;
	clip_copy(t->error,
			  psprintf("YC406: the resolver worker writing consistency.tpc_resolution_log in database %s exited; nothing done, so that no action goes unrecorded",
					   NameStr(sh->log_dbname)),
			  sizeof(t->error));
}

/*
 * Settings of the role and the database (ALTER ROLE / DATABASE ... SET) were
 * applied as the worker connected (InitPostgres).  None may keep a worker
 * from recording what it did, nor end it between an action and its log row:
 * a read-only default would make the log's INSERT fail (COMMIT/ROLLBACK
 * PREPARED ignores it), lock_timeout would end the wait for the log table's
 * lock, transaction_timeout (17) would end any of its transactions.
 * statement_timeout and idle_in_transaction_session_timeout are armed only by
 * a backend's command loop, which a worker does not run; they are reset all
 * the same.  synchronous_commit is left as set: it is the role's to choose.
 */
static void
worker_override_settings(void)
{
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
#ifdef HAVE_TRANSACTION_TIMEOUT
	SetConfigOption("transaction_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
#endif
}

/*
 * on_dsm_detach callback of every worker, run however it exits (an error
 * to connect included).  The log writer unpins the segment if the caller
 * pinned it for it.  Another database's worker whose caller stopped waiting
 * lets the log writer go on, now that its own results are in.
 */
static void
worker_detach(dsm_segment *seg, Datum arg)
{
	TpcShared  *sh = (TpcShared *) DatumGetPointer(arg);
	uint32		expected;

	if (worker_writes_log)
	{
		if (pg_atomic_exchange_u32(&sh->log_writer, TPC_LOG_WRITER_GONE) == TPC_LOG_WRITER_PINNED)
			dsm_unpin_segment(dsm_segment_handle(seg));
		return;
	}
	expected = TPC_WORKER_RUNNING;
	if (pg_atomic_compare_exchange_u32(&sh->state, &expected, TPC_WORKER_EXITED))
		return;					/* the caller waits for us */
	release_log_writer(sh);
}

/*
 * The log writer waits here, connected, until the caller's other workers are
 * done (or the caller gave up and the last of them exited).
 */
static void
log_writer_wait(TpcShared *sh)
{
	sh->log_writer_ready = true;
	pgstat_report_activity(STATE_IDLE, "waiting for the resolver workers of other databases");
	while (!sh->go)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	pg_read_barrier();
}

void
consistency_tpc_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	TpcShared  *sh;
	MemoryContext workcxt;
	Oid			dboid;
	int			i;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map the resolver's dynamic shared memory segment"),
				 errdetail("The session that started this worker has gone away.")));
	sh = dsm_segment_address(seg);
	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	worker_writes_log = (dboid == sh->log_dboid);
	on_dsm_detach(seg, worker_detach, PointerGetDatum(sh));

	/* as the calling role: PostgreSQL's owner-or-superuser rule decides */
	BackgroundWorkerInitializeConnectionByOid(dboid, sh->userid, 0);
	worker_override_settings();

	workcxt = AllocSetContextCreate(TopMemoryContext, "consistency resolver",
									ALLOCSET_DEFAULT_SIZES);
	if (worker_writes_log)
		log_writer_wait(sh);
	if (!(worker_writes_log && sh->log_only))
	{
		for (i = 0; i < sh->ntasks; i++)
		{
			TpcTask    *t = &sh->tasks[i];

			if (t->dboid != dboid || t->outcome != OUT_PENDING)
				continue;

			/*
			 * Another database's worker acts only while the log writer is
			 * there to record it.  It may still exit between this look and
			 * the action's commit record: that action goes unrecorded (the
			 * caller's result still has it), the next ones are not taken.
			 */
			if (!worker_writes_log && log_writer_gone(sh))
				fail_unlogged(sh, t);
			else
				worker_run_task(t, workcxt);
		}
	}
	if (worker_writes_log)
		worker_write_log(sh);

	dsm_detach(seg);
	proc_exit(0);
}

/*
 * tpc_resolution_log_guard(): BEFORE INSERT OR UPDATE row trigger on
 * consistency.tpc_resolution_log.
 *
 * The resolver worker writes the log as the table's owner, and no role is
 * granted INSERT, UPDATE or DELETE on it.  Still, for anyone who can write
 * it (its owner, a superuser, a role granted a privilege by hand):
 *	 - rows are never changed: an audit trail is appended to, not edited;
 *	 - a row not written by the resolver worker is accepted only from the
 *	   table's owner or a superuser (a restore), and only if it is
 *	   consistent: committed/rolled_back rows carry the matching action and
 *	   no error, already_resolved/busy/failed rows carry the error.
 * Runs no SQL.
 */
Datum
consistency_tpc_resolution_log_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	int			col_action;
	int			col_outcome;
	int			col_error;
	bool		isnull;
	bool		error_null;
	Datum		d;
	char	   *action;
	char	   *outcome;
	bool		ok;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tpc_resolution_log_guard() must be fired as a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger"),
				 errhint("It guards consistency.tpc_resolution_log, where the extension installs it; it is not for other tables.")));
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("rows of consistency.tpc_resolution_log cannot be changed"),
				 errdetail("The resolution log is an audit trail: each row records an action the resolver attempted."),
				 errhint("Rows may be deleted by the table's owner once they are no longer needed.")));
	tup = td->tg_trigtuple;
	if (writing_log && MyBgworkerEntry != NULL &&
		strcmp(MyBgworkerEntry->bgw_type, TPC_WORKER_TYPE) == 0)
		return PointerGetDatum(tup);

	if (!superuser() && !object_ownercheck(RelationRelationId, RelationGetRelid(td->tg_relation), GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the resolver writes consistency.tpc_resolution_log"),
				 errdetail("Rows are written by the background worker of consistency.resolve_prepared() and consistency.resolve_stale(), for the actions it attempted."),
				 errhint("Resolve with consistency.resolve_prepared() or consistency.resolve_stale().")));

	desc = RelationGetDescr(td->tg_relation);
	col_action = SPI_fnumber(desc, "action");
	col_outcome = SPI_fnumber(desc, "outcome");
	col_error = SPI_fnumber(desc, "error");
	if (col_action <= 0 || col_outcome <= 0 || col_error <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tpc_resolution_log_guard() fired on table \"%s\", which lacks the resolution log's columns",
						RelationGetRelationName(td->tg_relation)),
				 errhint("It guards consistency.tpc_resolution_log, where the extension installs it; it is not for other tables.")));
	d = heap_getattr(tup, col_action, desc, &isnull);
	action = isnull ? "" : TextDatumGetCString(d);
	d = heap_getattr(tup, col_outcome, desc, &isnull);
	outcome = isnull ? "" : TextDatumGetCString(d);
	(void) heap_getattr(tup, col_error, desc, &error_null);
	if (strcmp(outcome, "committed") == 0)
		ok = strcmp(action, "commit") == 0 && error_null;
	else if (strcmp(outcome, "rolled_back") == 0)
		ok = strcmp(action, "rollback") == 0 && error_null;
	else
		ok = !error_null;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("resolution log row with action \"%s\" and outcome \"%s\" is inconsistent", action, outcome),
				 errdetail("A committed or rolled_back row has the matching action (commit, rollback) and no error; an already_resolved, busy or failed row has the error."),
				 errhint("Rows are written by the resolver; a restore writes them back as they were.")));
	return PointerGetDatum(tup);
}

/* ----------------------------------------------------------------
 * The caller's side
 * ----------------------------------------------------------------
 */

void
consistency_twophase_resolve_init(void)
{
	DefineCustomStringVariable("consistency.tpc_caller_evidence",
							   "Why the caller asks resolve_prepared() for an explicit commit or rollback.",
							   "Recorded with the action in consistency.tpc_resolution_log; pg_consistency sets it to the coordinator's decision.",
							   &tpc_caller_evidence,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);
}

/*
 * Register a resolver worker for database dboid (its database travels in
 * bgw_extra); false if no slot is free.  notify_pid: who waits for it.
 */
static bool
start_worker(dsm_segment *seg, Oid dboid, const char *dbname, pid_t notify_pid,
			 BackgroundWorkerHandle **handle)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "consistency");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "consistency_tpc_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "consistency resolver for database %s", dbname);
	snprintf(w.bgw_type, BGW_MAXLEN, TPC_WORKER_TYPE);
	w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	memcpy(w.bgw_extra, &dboid, sizeof(Oid));
	w.bgw_notify_pid = notify_pid;
	return RegisterDynamicBackgroundWorker(&w, handle);
}

/* Wait until a worker this backend started exits. */
static void
wait_worker(BackgroundWorkerHandle *handle)
{
	if (WaitForBackgroundWorkerShutdown(handle) == BGWH_POSTMASTER_DIED)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("postmaster exited while a resolver worker was running")));
}

/*
 * The caller stops waiting (cancelled, statement_timeout, or any error
 * while its workers run).  Actions already taken, and those of the
 * other-database worker still running (inflight_db, if valid), cannot be
 * undone, so their log rows must still be written; the log writer, started
 * first and waiting, writes them, and takes no action of its own (log_only);
 * workers not yet started never start.  The segment is pinned so that it
 * outlives this backend's mapping; the log writer unpins it as it exits.  If
 * another database's worker still runs, it lets the log writer go on as it
 * exits (worker_detach); else this backend does now.
 *
 * This is the on_dsm_detach callback of the caller's mapping, so it runs
 * however the caller stops: an error or cancel (the transaction's resource
 * owner detaches the segment), or a FATAL exit such as pg_terminate_backend()
 * or a lost client (the mapping is detached as the backend exits, after no
 * error handler ran).  Runs during error cleanup or exit: no errors.
 */
static void
orphan_tasks(dsm_segment *seg, Datum arg)
{
	TpcShared  *sh = dsm_segment_address(seg);
	uint32		expected;

	if (sh->caller_done || !sh->log_writer_started)
		return;					/* the caller has every result; or nothing started */

	HOLD_INTERRUPTS();
	sh->log_only = true;
	dsm_pin_segment(seg);
	expected = TPC_LOG_WRITER_LIVE;
	if (!pg_atomic_compare_exchange_u32(&sh->log_writer, &expected, TPC_LOG_WRITER_PINNED))
		dsm_unpin_segment(dsm_segment_handle(seg));	/* it has exited already */
	expected = TPC_WORKER_RUNNING;
	if (!(OidIsValid(sh->inflight_db) &&
		  pg_atomic_compare_exchange_u32(&sh->state, &expected, TPC_WORKER_ABANDONED)))
		release_log_writer(sh);
	RESUME_INTERRUPTS();
}

static void
error_no_worker(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_TPC_WORKER_UNAVAILABLE),
			 errmsg("could not start a resolver background worker"),
			 errdetail("All max_worker_processes (%d) slots are in use; nothing was resolved.",
					   max_worker_processes),
			 errhint("Retry later, or raise max_worker_processes (needs a restart).")));
}

/* Mark db's tasks that no worker took as failed, with why. */
static void
fail_pending(TpcShared *sh, Oid db, const char *dbname, bool ran)
{
	int			i;

	for (i = 0; i < sh->ntasks; i++)
	{
		TpcTask    *t = &sh->tasks[i];

		if (t->dboid == db && t->outcome == OUT_PENDING)
		{
			t->outcome = OUT_FAILED;
			t->sqlerrcode = ran ? ERRCODE_CONSISTENCY_TPC_WORKER_FAILED
				: ERRCODE_CONSISTENCY_TPC_WORKER_UNAVAILABLE;
			clip_copy(t->error,
					  psprintf(ran ? "YC406: the resolver worker for database %s exited before finishing; the server log has its error"
							   : "YC405: no resolver worker could be started for database %s (max_worker_processes); nothing done there",
							   dbname ? dbname : "?"),
					  sizeof(t->error));
		}
	}
}

/*
 * Wait until the log writer is connected and waiting, or has exited (it
 * could not connect as the role, say); true if it is waiting.
 */
static bool
wait_log_writer_ready(TpcShared *sh, BackgroundWorkerHandle *handle)
{
	pid_t		pid;

	for (;;)
	{
		if (sh->log_writer_ready)
			return true;
		switch (GetBackgroundWorkerPid(handle, &pid))
		{
			case BGWH_STOPPED:
				return sh->log_writer_ready;
			case BGWH_POSTMASTER_DIED:
				ereport(FATAL,
						(errcode(ERRCODE_ADMIN_SHUTDOWN),
						 errmsg("postmaster exited while a resolver worker was starting")));
				break;
			default:
				break;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Run the workers of run_tasks: first the log writer (the caller's
 * database), which must be connected and waiting before anything is done;
 * then one worker per other database, one after the other, each waited for,
 * as long as the log writer is still there (once it has exited, the
 * remaining databases' tasks fail undone: nothing would record them); then
 * the log writer does its own database's actions and writes the log.
 */
typedef enum TpcRunResult
{
	RUN_DONE,					/* see each task's outcome */
	RUN_NO_WORKER,				/* no slot for the log writer: nothing done */
	RUN_LOG_WRITER_FAILED		/* it exited before it was ready: nothing done */
} TpcRunResult;

static TpcRunResult
run_workers(dsm_segment *seg)
{
	TpcShared  *sh = dsm_segment_address(seg);
	List	   *dbs = NIL;
	BackgroundWorkerHandle *log_handle;
	char	   *log_dbname = NameStr(sh->log_dbname);
	ListCell   *lc;
	int			i;

	if (!start_worker(seg, sh->log_dboid, log_dbname, MyProcPid, &log_handle))
		return RUN_NO_WORKER;
	sh->log_writer_started = true;
	if (!wait_log_writer_ready(sh, log_handle))
		return RUN_LOG_WRITER_FAILED;	/* it could not connect: nothing done */

	for (i = 0; i < sh->ntasks; i++)
		if (sh->tasks[i].dboid != sh->log_dboid)
			dbs = list_append_unique_oid(dbs, sh->tasks[i].dboid);
	foreach(lc, dbs)
	{
		Oid			db = lfirst_oid(lc);
		char	   *dbname = get_database_name(db);
		BackgroundWorkerHandle *handle;
		bool		ran;
		pid_t		pid;

		if (log_writer_gone(sh) || GetBackgroundWorkerPid(log_handle, &pid) == BGWH_STOPPED)
		{
			for (i = 0; i < sh->ntasks; i++)
				if (sh->tasks[i].dboid == db && sh->tasks[i].outcome == OUT_PENDING)
					fail_unlogged(sh, &sh->tasks[i]);
			continue;
		}
		pg_atomic_write_u32(&sh->state, TPC_WORKER_RUNNING);
		ran = start_worker(seg, db, dbname ? dbname : "?", MyProcPid, &handle);
		if (ran)
		{
			sh->inflight_db = db;
			wait_worker(handle);
			sh->inflight_db = InvalidOid;
		}
		/* no slot (nothing done), or a worker that died before finishing */
		fail_pending(sh, db, dbname, ran);
	}

	release_log_writer(sh);
	wait_worker(log_handle);
	fail_pending(sh, sh->log_dboid, log_dbname, true);
	return RUN_DONE;
}

/*
 * Run the planned tasks: one worker per database; the caller's database's
 * worker, started first, acts last and writes the resolution log.  Results
 * are copied back into tasks.  True if the log was written.
 */
static bool
run_tasks(TpcTask *tasks, int ntasks)
{
	Size		size = offsetof(TpcShared, tasks) + sizeof(TpcTask) * ntasks;
	dsm_segment *seg;
	TpcShared  *sh;
	TpcRunResult result;
	bool		logged;

	PreventCommandDuringRecovery("COMMIT PREPARED or ROLLBACK PREPARED");
	seg = dsm_create(size, 0);
	sh = dsm_segment_address(seg);
	memset(sh, 0, offsetof(TpcShared, tasks));
	pg_atomic_init_u32(&sh->state, TPC_WORKER_EXITED);
	pg_atomic_init_u32(&sh->log_writer, TPC_LOG_WRITER_LIVE);
	sh->userid = GetUserId();
	sh->log_dboid = MyDatabaseId;
	namestrcpy(&sh->log_dbname, get_database_name(MyDatabaseId));
	namestrcpy(&sh->resolved_by, GetUserNameFromId(GetUserId(), false));
	sh->ntasks = ntasks;
	memcpy(sh->tasks, tasks, sizeof(TpcTask) * ntasks);

	on_dsm_detach(seg, orphan_tasks, (Datum) 0);
	result = run_workers(seg);
	sh->caller_done = true;
	if (result == RUN_NO_WORKER)
	{
		dsm_detach(seg);
		error_no_worker();
	}
	if (result == RUN_LOG_WRITER_FAILED)
	{
		dsm_detach(seg);
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TPC_WORKER_FAILED),
				 errmsg("the resolver background worker for database \"%s\" exited before it was ready",
						get_database_name(MyDatabaseId)),
				 errdetail("Nothing was resolved: the worker that writes consistency.tpc_resolution_log must be running before any action is taken; the server log has its error."),
				 errhint("Check that the role may log in and connect to this database: the worker connects as the role.")));
	}
	logged = sh->log_written;
	if (!logged)
		ereport(WARNING,
				(errcode(ERRCODE_CONSISTENCY_TPC_WORKER_FAILED),
				 errmsg("the resolution was not written to consistency.tpc_resolution_log"),
				 errdetail("The worker writing the log exited before writing it: the outcomes below are recorded nowhere else; actions not yet started when it exited were not taken (failed, YC406)."),
				 errhint("The server log has the worker's error.")));
	memcpy(tasks, sh->tasks, sizeof(TpcTask) * ntasks);
	dsm_detach(seg);
	return logged;
}

/* Plan a task for prepared transaction p. */
static void
fill_task(TpcTask *t, const TpcPrepared *p, bool commit, const char *requested,
		  TpcVerdict v, const char *evidence, bool heuristic)
{
	memset(t, 0, sizeof(*t));
	clip_copy(t->gid, p->gid, sizeof(t->gid));	/* fits: at most TPC_MAX_GID_BYTES */
	t->dboid = p->dboid;
	namestrcpy(&t->database, p->database);
	t->xid = p->xid;
	namestrcpy(&t->owner, p->owner);
	t->prepared_at = p->prepared_at;
	t->commit = commit;
	t->heuristic = heuristic;
	strlcpy(t->requested, requested, sizeof(t->requested));
	strlcpy(t->verdict, tpc_verdict_name(v), sizeof(t->verdict));
	clip_copy(t->evidence, evidence, sizeof(t->evidence));
}

/* Count what the workers did with tasks. */
static void
count_outcomes(const TpcTask *tasks, int ntasks)
{
	int			i;

	for (i = 0; i < ntasks; i++)
	{
		const TpcTask *t = &tasks[i];

		if (t->outcome == OUT_COMMITTED)
			consistency_count(CSTAT_TPC_COMMITTED);
		else if (t->outcome == OUT_ROLLED_BACK)
			consistency_count(CSTAT_TPC_ROLLED_BACK);
		else if (t->outcome == OUT_BUSY)
			consistency_count(CSTAT_TPC_BUSY);
		if (t->heuristic && (t->outcome == OUT_COMMITTED || t->outcome == OUT_ROLLED_BACK))
			consistency_count(CSTAT_TPC_HEURISTIC);
	}
}

static const char *
outcome_reason(const TpcTask *t)
{
	switch (t->outcome)
	{
		case OUT_ALREADY_RESOLVED:
			return psprintf("the prepared transaction vanished meanwhile: someone else finished it (%s)", t->evidence);
		case OUT_BUSY:
			return psprintf("another session is finishing this prepared transaction right now; nothing done (%s)", t->error);
		case OUT_FAILED:
			return psprintf("%s (%s)", t->error, t->evidence);
		default:
			return t->evidence;
	}
}

static bool
get_bool_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	consistency_arg_not_null(fcinfo, argno, argname);
	return PG_GETARG_BOOL(argno);
}

/*
 * resolve_prepared(gid, action DEFAULT 'auto', dry_run DEFAULT true,
 *					force DEFAULT false)
 *	 -> TABLE(database, planned, executed, outcome, reason), one row
 */
Datum
consistency_resolve_prepared(PG_FUNCTION_ARGS)
{
	char	   *gid = text_to_cstring(consistency_text_arg(fcinfo, 0, "gid", TPC_MAX_GID_BYTES, false));
	char	   *action = text_to_cstring(consistency_text_arg(fcinfo, 1, "action", 64, false));
	bool		dry_run = get_bool_arg(fcinfo, 2, "dry_run");
	bool		force = get_bool_arg(fcinfo, 3, "force");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext mcxt = CurrentMemoryContext;
	Interval	zero = {0};
	List	   *list;
	TpcPrepared *p;
	TpcVerdict	v;
	char	   *evidence;
	bool		commit;
	bool		heuristic = false;
	TpcGid		g;
	TpcTask		task;
	Datum		values[5];
	bool		nulls[5] = {0};
	bool		logged;

	if (strcmp(action, "auto") != 0 && strcmp(action, "commit") != 0 &&
		strcmp(action, "rollback") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("action must be \"auto\", \"commit\" or \"rollback\""),
				 errdetail("The action given is \"%s\".", action)));
	InitMaterializedSRF(fcinfo, 0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	list = tpc_list_prepared(gid, &zero, mcxt);
	if (list == NIL)
	{
		SPI_finish();
		nulls[0] = true;
		values[1] = CStringGetTextDatum("none");
		values[2] = BoolGetDatum(false);
		values[3] = CStringGetTextDatum("not_found");
		values[4] = CStringGetTextDatum("no prepared transaction has this gid: it was already finished, or never prepared");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		PG_RETURN_NULL();
	}
	p = linitial(list);
	v = tpc_decide(p, &evidence);
	evidence = MemoryContextStrdup(mcxt, evidence);
	SPI_finish();

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(p->database));
	if (strcmp(action, "auto") == 0)
	{
		if (v != TPC_VERDICT_COMMIT && v != TPC_VERDICT_ROLLBACK)
		{
			values[1] = CStringGetTextDatum("skip");
			values[2] = BoolGetDatum(false);
			values[3] = CStringGetTextDatum("skipped");
			values[4] = CStringGetTextDatum(evidence);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			PG_RETURN_NULL();
		}
		commit = (v == TPC_VERDICT_COMMIT);
	}
	else
	{
		commit = strcmp(action, "commit") == 0;
		if (!tpc_parse_gid(p->gid, &g))
		{
			if (!force)
				ereport(ERROR,
						(errcode(ERRCODE_CONSISTENCY_TPC_GID_UNRECOGNISED),
						 errmsg("gid \"%s\" was not made by consistency.tpc_gid()", p->gid),
						 errdetail("Nothing records what its coordinator decided, so a %s would be a guess.",
								   commit ? "commit" : "rollback"),
						 errhint("If you know the outcome from elsewhere, pass force => true; the action is logged as heuristic.")));
			heuristic = true;
		}
		else if (v == TPC_VERDICT_IN_PROGRESS ||
				 (v == TPC_VERDICT_COMMIT && !commit) ||
				 (v == TPC_VERDICT_ROLLBACK && commit))
		{
			if (!force)
				ereport(ERROR,
						(errcode(ERRCODE_CONSISTENCY_TPC_CONTRADICTS_VERDICT),
						 errmsg("%s of prepared transaction \"%s\" contradicts its coordinator", action, p->gid),
						 errdetail("The resolver's verdict is %s: %s.", tpc_verdict_name(v), evidence),
						 errhint("Use action => 'auto'; pass force => true only if you know better (the action is logged as heuristic).")));
			heuristic = true;
		}
		else if (v == TPC_VERDICT_UNKNOWN && g.sysid == GetSystemIdentifier())
		{
			/*
			 * This cluster's gid, but no verdict here (its coordinator's log
			 * is in another database, the gid names the prepared transaction
			 * itself, the grace period is not over, ...): nothing the caller
			 * could bring outranks this cluster's own decision log.
			 */
			if (!force)
				ereport(ERROR,
						(errcode(ERRCODE_CONSISTENCY_TPC_CONTRADICTS_VERDICT),
						 errmsg("%s of prepared transaction \"%s\" is not backed by its coordinator", action, p->gid),
						 errdetail("The resolver's verdict is unknown: %s.", evidence),
						 errhint("Resolve it where its decision log is, or wait for a verdict; pass force => true only if you know the outcome (the action is logged as heuristic).")));
			heuristic = true;
		}
		/* else: it agrees, or the decision log is in another cluster and the caller brings the decision */
		if (tpc_caller_evidence != NULL && tpc_caller_evidence[0] != '\0')
			evidence = psprintf("%s; the caller's evidence: %s", evidence, tpc_caller_evidence);
	}

	fill_task(&task, p, commit, action, v, evidence, heuristic);
	values[1] = CStringGetTextDatum(commit ? "commit" : "rollback");
	if (dry_run)
	{
		values[2] = BoolGetDatum(false);
		values[3] = CStringGetTextDatum("dry_run");
		values[4] = CStringGetTextDatum(heuristic ? psprintf("heuristic (forced): %s", evidence) : evidence);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		PG_RETURN_NULL();
	}

	logged = run_tasks(&task, 1);
	count_outcomes(&task, 1);
	if (task.outcome == OUT_FAILED)
		ereport(ERROR,
				(errcode(task.sqlerrcode),
				 errmsg("could not %s prepared transaction \"%s\"", commit ? "commit" : "roll back", p->gid),
				 errdetail("The resolver worker in database %s, connected as %s, reported: %s.",
						   p->database, GetUserNameFromId(GetUserId(), false), task.error),
				 logged ? errhint("The attempt is recorded in consistency.tpc_resolution_log.") :
				 errhint("The attempt is not recorded in consistency.tpc_resolution_log: the worker writing it exited.")));
	values[2] = BoolGetDatum(task.outcome == OUT_COMMITTED || task.outcome == OUT_ROLLED_BACK);
	values[3] = CStringGetTextDatum(outcome_names[task.outcome]);
	values[4] = CStringGetTextDatum(outcome_reason(&task));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	PG_RETURN_NULL();
}

/*
 * resolve_stale(min_age DEFAULT '10 minutes', dry_run DEFAULT true)
 *	 -> TABLE(gid, database, planned, executed, outcome, reason)
 *
 * Every prepared transaction at least min_age old that the caller may finish
 * (its owner, or any if superuser), with action 'auto'.
 */
Datum
consistency_resolve_stale(PG_FUNCTION_ARGS)
{
	Interval   *min_age = tpc_interval_arg(fcinfo, 0, "min_age");
	bool		dry_run = get_bool_arg(fcinfo, 1, "dry_run");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext mcxt = CurrentMemoryContext;
	Oid			me = GetUserId();
	bool		su = superuser_arg(me);
	List	   *list;
	ListCell   *lc;
	int			n;
	TpcTask    *tasks;
	int			ntasks = 0;
	TpcVerdict *verdicts;
	char	  **evidences;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	list = tpc_list_prepared(NULL, min_age, mcxt);
	n = list_length(list);
	verdicts = MemoryContextAlloc(mcxt, sizeof(TpcVerdict) * Max(n, 1));
	evidences = MemoryContextAlloc(mcxt, sizeof(char *) * Max(n, 1));
	tasks = MemoryContextAllocZero(mcxt, sizeof(TpcTask) * Max(n, 1));
	i = 0;
	foreach(lc, list)
	{
		TpcPrepared *p = lfirst(lc);
		char	   *evidence = NULL;

		if (su || p->ownerid == me)
		{
			verdicts[i] = tpc_decide(p, &evidence);
			evidence = MemoryContextStrdup(mcxt, evidence);
		}
		else
			verdicts[i] = TPC_VERDICT_UNKNOWN;
		evidences[i++] = evidence;
	}
	SPI_finish();

	/* plan */
	i = 0;
	foreach(lc, list)
	{
		TpcPrepared *p = lfirst(lc);

		if (evidences[i] != NULL &&
			(verdicts[i] == TPC_VERDICT_COMMIT || verdicts[i] == TPC_VERDICT_ROLLBACK))
			fill_task(&tasks[ntasks++], p, verdicts[i] == TPC_VERDICT_COMMIT, "auto",
					  verdicts[i], evidences[i], false);
		i++;
	}
	if (!dry_run && ntasks > 0)
	{
		(void) run_tasks(tasks, ntasks);
		count_outcomes(tasks, ntasks);
	}

	/* report, in listing order */
	i = 0;
	n = 0;
	foreach(lc, list)
	{
		TpcPrepared *p = lfirst(lc);
		Datum		values[6];
		bool		nulls[6] = {0};

		if (evidences[i] == NULL)
		{
			i++;
			continue;			/* not the caller's to finish */
		}
		values[0] = CStringGetTextDatum(p->gid);
		values[1] = DirectFunctionCall1(namein, CStringGetDatum(p->database));
		if (verdicts[i] == TPC_VERDICT_COMMIT || verdicts[i] == TPC_VERDICT_ROLLBACK)
		{
			TpcTask    *t = &tasks[n++];

			values[2] = CStringGetTextDatum(t->commit ? "commit" : "rollback");
			if (dry_run)
			{
				values[3] = BoolGetDatum(false);
				values[4] = CStringGetTextDatum("dry_run");
				values[5] = CStringGetTextDatum(t->evidence);
			}
			else
			{
				values[3] = BoolGetDatum(t->outcome == OUT_COMMITTED || t->outcome == OUT_ROLLED_BACK);
				values[4] = CStringGetTextDatum(outcome_names[t->outcome]);
				values[5] = CStringGetTextDatum(outcome_reason(t));
			}
		}
		else
		{
			values[2] = CStringGetTextDatum("skip");
			values[3] = BoolGetDatum(false);
			values[4] = CStringGetTextDatum("skipped");
			values[5] = CStringGetTextDatum(evidences[i]);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		i++;
	}
	PG_RETURN_NULL();
}
