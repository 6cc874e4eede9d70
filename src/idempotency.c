/*-------------------------------------------------------------------------
 *
 * idempotency.c
 *	  Idempotency keys: idem_begin, idem_complete, their one-value forms
 *	  idem_claim and idem_finish, idem_lease, idem_checkpoint, idem_release
 *	  and idem_purge.
 *
 * A key lives in consistency.idempotency_keys, written in the caller's own
 * transaction, so the key, its request fingerprint and the stored response
 * commit or roll back together with the business write.  Two modes:
 *
 * - transactional (idem_begin ... idem_complete in one transaction): the
 *	 claim is an uncommitted 'in_progress' row plus a per-key lock (see
 *	 idempotency_claims.c); it can only commit as 'completed'.
 * - lease (idem_lease, then idem_checkpoint / idem_complete in later
 *	 transactions): a committed 'in_progress' row with a lease expiry, an
 *	 attempt number that fences out a worker whose lease was taken over, and
 *	 a recovery point that the next attempt resumes from.
 *
 * Every decision is made while holding the per-key lock, so a statement's
 * fresh READ COMMITTED snapshot sees the last outcome.  Under REPEATABLE
 * READ or SERIALIZABLE a key committed after the transaction's snapshot was
 * taken makes INSERT ... ON CONFLICT raise 40001, and the retry replays.
 * SQL runs through SPI plans prepared once per backend, as the table's
 * owner (see table_owner.c): callers need no privilege on the table, so a
 * member of consistency_user cannot forge a stored response.
 *
 * The hot path, a fresh key, uses neither SPI nor the executor: idem_begin
 * probes the primary key under a dirty snapshot (key_row_may_exist) and
 * idem_complete writes the row with heap_insert and index_insert
 * (insert_completed_row), as PostgreSQL writes its catalogs; SPI serves the
 * rest (replays, leases, a table a DBA changed).  Measured (issue 13) with
 * callgrind on PostgreSQL 15, instructions per transaction of the
 * benchmark's server-side handler (test/bench/idempotency, single-user mode,
 * the same starting database for every run; plain order 197k):
 *
 *								   before	after
 *	 idempotent order (C)			 398k	 328k
 *	 same, PL/pgSQL layer			 411k	 411k
 *	 replay (C)						 209k	 182k
 *
 * What went: the SPI INSERT of idem_complete (74k: plan revalidation,
 * ExecutorStart building ModifyTable and its projection, ExecutorEnd) for
 * the direct write (45k, of which 27k are the two index inserts);
 * strcoll() in every key comparison (keys are COLLATE "C" since 1.1);
 * rebuilding idem_begin's row type from pg_proc per call; hashing and
 * zeroing the 514-byte registry key (together 35k); and the SET
 * search_path clause of idem_begin and idem_complete (23k: parsing the
 * setting and AtEOXact_GUC undoing it, on every call), which they no
 * longer have: every statement below qualifies its operators.  What the
 * 131k over the plain order are now: idem_begin 32k (the primary-key probe
 * 17k, the two locks 3k), idem_complete 45k, the caller's two statements
 * and the larger commit.  At 16 clients (perf, noisy) the shares are
 * alike: the key's two locks and their release are under 3% of the
 * backends' samples, the probe about 3%, the WAL flush 15%.
 *
 * Then (1.1, measured the same way, each library on a database its own
 * version of the extension built): idem_begin went from 34.3k to 24.3k
 * instructions per call and idem_complete from 45.2k to 36.4k.  Most of the
 * probe and of the primary-key insert were key comparisons: in 1.0's (scope,
 * key) order each one compared the scope (the same '' in most rows) before
 * the key, and found the key behind a variable-length column, walking the
 * index tuple; 1.1's primary key is (key, scope).  And the table's and its
 * indexes' locks are now kept to the end of the transaction, as a
 * statement's are, instead of being released after the probe and after the
 * insert.  Server-side idempotent order 309k, plain 187k, PL/pgSQL layer
 * 404k, replay 157k.  What remains over the plain order is PostgreSQL's:
 * the two index inserts (22k), the FunctionScan that runs idem_begin in
 * the caller's SELECT ... FROM (13k to set up, every call), the probe's
 * descent, and a commit with more locks and more WAL.
 *
 * The handler's own statements were the next cost: SELECT ... INTO ... FROM
 * idem_begin() is a query with a function scan and PERFORM idem_complete()
 * a query, each started and ended by the executor.  idem_claim and
 * idem_finish return one value each, so the handler calls them as
 * expressions, which PL/pgSQL evaluates without the executor: the same
 * handler costs 287k instead of 317k (plain order 198k, the PL/pgSQL layer
 * in the same shape 377k).  What is left over the plain order: idem_claim
 * 23k (the probe 15k), idem_finish 36k (the two index entries 22k), the
 * expressions' setup in each new transaction (9k) and the larger commit.
 * The claim registry's hash table is now kept for the backend and emptied
 * at the end of each transaction, instead of built anew in every one (3k).
 *
 * IDENTIFICATION
 *	  src/idempotency.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consistency.h"
#include "stats.h"
#include "idempotency.h"

PG_FUNCTION_INFO_V1(consistency_idem_begin);
PG_FUNCTION_INFO_V1(consistency_idem_claim);
PG_FUNCTION_INFO_V1(consistency_idem_complete);
PG_FUNCTION_INFO_V1(consistency_idem_finish);
PG_FUNCTION_INFO_V1(consistency_idem_lease);
PG_FUNCTION_INFO_V1(consistency_idem_checkpoint);
PG_FUNCTION_INFO_V1(consistency_idem_release);
PG_FUNCTION_INFO_V1(consistency_idem_purge);

/* GUC: largest response idem_complete() stores, in bytes. */
static int	idem_max_response_size = 1024 * 1024;

#define KEYS_TABLE "consistency.idempotency_keys"

/* How often a decision is retried when idem_purge() removed the row meanwhile. */
#define IDEM_MAX_ROUNDS 3

/*
 * The statements, prepared on first use and kept for the backend's life.
 * Parameters $1 and $2 are always scope and key.
 */
typedef enum IdemStmt
{
	STMT_INSERT_COMPLETED,
	STMT_UPSERT_COMPLETED,
	STMT_INSERT,
	STMT_LOOKUP,
	STMT_RECLAIM,
	STMT_TAKEOVER,
	STMT_COMPLETE,
	STMT_CHECKPOINT,
	STMT_DELETE,
	STMT_PURGE,
	NUM_STMTS
} IdemStmt;

typedef struct IdemStmtDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[7];
} IdemStmtDef;

/*
 * Every operator is qualified: idem_begin and idem_complete run under the
 * caller's search_path (see the SQL script), and the statements run as the
 * table's owner.  COALESCE and GREATEST are grammar, not functions looked up
 * by name; ORDER BY finds its operator through the type's default btree
 * operator class.
 */
static const IdemStmtDef stmt_defs[NUM_STMTS] = {
	/* a transactional claim's row, written with its response by idem_complete */
	[STMT_INSERT_COMPLETED] = {
		"INSERT INTO " KEYS_TABLE
		" (scope, key, fingerprint, state, response, created_at, completed_at, expires_at)"
		" VALUES ($1, $2, $3, 'completed', $4, $5, $6, $7)",
		7, {TEXTOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
	},
	/*
	 * The same over an expired row (a fresh start) or an unexpired lease that was
	 * abandoned (its next attempt: recovery point and creation time kept).
	 */
	[STMT_UPSERT_COMPLETED] = {
		"INSERT INTO " KEYS_TABLE " AS k"
		" (scope, key, fingerprint, state, response, created_at, completed_at, expires_at)"
		" VALUES ($1, $2, $3, 'completed', $4, $5, $6, $7)"
		" ON CONFLICT (scope, key) DO UPDATE SET"
		" fingerprint = CASE WHEN k.state OPERATOR(pg_catalog.=) 'in_progress'"
		"   AND k.expires_at OPERATOR(pg_catalog.>) excluded.created_at"
		"   THEN coalesce(excluded.fingerprint, k.fingerprint) ELSE excluded.fingerprint END,"
		" state = 'completed', response = excluded.response,"
		" attempt = CASE WHEN k.state OPERATOR(pg_catalog.=) 'in_progress'"
		"   AND k.expires_at OPERATOR(pg_catalog.>) excluded.created_at"
		"   THEN k.attempt OPERATOR(pg_catalog.+) 1 ELSE 1 END,"
		" recovery_point = CASE WHEN k.state OPERATOR(pg_catalog.=) 'in_progress'"
		"   AND k.expires_at OPERATOR(pg_catalog.>) excluded.created_at"
		"   THEN k.recovery_point END,"
		" created_at = CASE WHEN k.state OPERATOR(pg_catalog.=) 'in_progress'"
		"   AND k.expires_at OPERATOR(pg_catalog.>) excluded.created_at"
		"   THEN k.created_at ELSE excluded.created_at END,"
		" completed_at = excluded.completed_at, expires_at = excluded.expires_at,"
		" lease_duration = NULL, lease_expires_at = NULL",
		7, {TEXTOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
	},
	/* the statements below serve leases, which are committed while in progress */
	[STMT_INSERT] = {
		"INSERT INTO " KEYS_TABLE
		" (scope, key, fingerprint, state, created_at, expires_at, lease_duration, lease_expires_at)"
		" VALUES ($1, $2, $3, 'in_progress', $4, $5, $6, $7)"
		" ON CONFLICT (scope, key) DO NOTHING",
		7, {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INTERVALOID, TIMESTAMPTZOID}
	},
	[STMT_LOOKUP] = {
		"SELECT fingerprint, state OPERATOR(pg_catalog.=) 'completed', response, recovery_point, attempt,"
		" expires_at OPERATOR(pg_catalog.<=) $3, lease_expires_at IS NOT NULL,"
		" lease_expires_at OPERATOR(pg_catalog.<=) $3"
		" FROM " KEYS_TABLE " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
		3, {TEXTOID, TEXTOID, TIMESTAMPTZOID}
	},
	[STMT_RECLAIM] = {
		"UPDATE " KEYS_TABLE " SET fingerprint = $3, state = 'in_progress', response = NULL,"
		" recovery_point = NULL, attempt = 1, created_at = $4, completed_at = NULL,"
		" expires_at = $5, lease_duration = $6, lease_expires_at = $7"
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
		7, {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INTERVALOID, TIMESTAMPTZOID}
	},
	[STMT_TAKEOVER] = {
		"UPDATE " KEYS_TABLE " SET fingerprint = coalesce(fingerprint, $3), attempt = attempt OPERATOR(pg_catalog.+) 1,"
		" lease_duration = $4, lease_expires_at = $5,"
		" expires_at = greatest(expires_at, $5)"
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2 AND state OPERATOR(pg_catalog.=) 'in_progress'"
		" RETURNING attempt",
		5, {TEXTOID, TEXTOID, TEXTOID, INTERVALOID, TIMESTAMPTZOID}
	},
	[STMT_COMPLETE] = {
		"UPDATE " KEYS_TABLE " SET state = 'completed', response = $3, completed_at = $4,"
		" lease_duration = NULL, lease_expires_at = NULL"
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2 AND state OPERATOR(pg_catalog.=) 'in_progress'",
		4, {TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID}
	},
	[STMT_CHECKPOINT] = {
		"UPDATE " KEYS_TABLE " SET recovery_point = $3,"
		" lease_expires_at = $4 OPERATOR(pg_catalog.+) lease_duration,"
		" expires_at = greatest(expires_at, $4 OPERATOR(pg_catalog.+) lease_duration)"
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2 AND state OPERATOR(pg_catalog.=) 'in_progress' AND lease_duration IS NOT NULL"
		" RETURNING lease_expires_at",
		4, {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}
	},
	[STMT_DELETE] = {
		"DELETE FROM " KEYS_TABLE " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
		2, {TEXTOID, TEXTOID}
	},
	[STMT_PURGE] = {
		"DELETE FROM " KEYS_TABLE " WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
		" SELECT ctid FROM " KEYS_TABLE
		" WHERE expires_at OPERATOR(pg_catalog.<=) $1"
		" AND (lease_expires_at IS NULL OR lease_expires_at OPERATOR(pg_catalog.<=) $1)"
		" ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
		2, {TIMESTAMPTZOID, INT4OID}
	},
};

static SPIPlanPtr stmt_plans[NUM_STMTS];

static Oid	get_keys_relid(void);

/* What the lookup statement found for a key. */
typedef struct KeyRow
{
	bool		found;
	text	   *fingerprint;	/* NULL if none stored */
	bool		completed;
	Datum		response;		/* valid if completed */
	text	   *recovery_point; /* NULL if none */
	int32		attempt;
	bool		expired;		/* past expires_at: as good as absent */
	bool		leased;			/* an in_progress row with a lease */
	bool		lease_expired;
} KeyRow;

/* Arguments every function takes, checked. */
typedef struct IdemArgs
{
	IdemKey		k;
	text	   *key;
	text	   *scope;
	text	   *fingerprint;	/* may be NULL */
} IdemArgs;

/* ----------------------------------------------------------------
 * Small helpers
 * ----------------------------------------------------------------
 */

static void
get_key_args(FunctionCallInfo fcinfo, int keyarg, int scopearg, IdemArgs *a)
{
	a->key = consistency_text_arg(fcinfo, keyarg, "key", IDEM_MAX_KEY_BYTES, false);
	a->scope = consistency_text_arg(fcinfo, scopearg, "scope", IDEM_MAX_SCOPE_BYTES, true);
	a->fingerprint = NULL;
	a->k.key = VARDATA_ANY(a->key);
	a->k.keylen = VARSIZE_ANY_EXHDR(a->key);
	a->k.scope = VARDATA_ANY(a->scope);
	a->k.scopelen = VARSIZE_ANY_EXHDR(a->scope);
}

static void
get_fingerprint_arg(FunctionCallInfo fcinfo, int argno, IdemArgs *a)
{
	if (PG_ARGISNULL(argno))
		a->fingerprint = NULL;
	else
		a->fingerprint = consistency_text_arg(fcinfo, argno, "fingerprint",
											  IDEM_MAX_FINGERPRINT_BYTES, true);
}

/* A positive interval argument (ttl, lease). */
static Interval *
get_positive_interval_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	Interval   *iv;
	Interval	zero = {0};

	consistency_arg_not_null(fcinfo, argno, argname);
	iv = PG_GETARG_INTERVAL_P(argno);
	if (!DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(iv),
										  IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a positive interval", argname),
				 errdetail("The %s given is %s.", argname,
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(iv))))));
	return iv;
}

/* The optional fencing attempt number: NULL, or positive. */
static bool
get_attempt_arg(FunctionCallInfo fcinfo, int argno, int32 *attempt)
{
	if (PG_ARGISNULL(argno))
		return false;
	*attempt = PG_GETARG_INT32(argno);
	if (*attempt <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("attempt must be positive"),
				 errdetail("The attempt given is %d.", *attempt)));
	return true;
}

static bool
get_bool_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	consistency_arg_not_null(fcinfo, argno, argname);
	return PG_GETARG_BOOL(argno);
}

/* Names the argument when now + ttl (or lease) is past timestamptz's range. */
static void
interval_arg_context(void *arg)
{
	errcontext("computing now + %s", (const char *) arg);
}

/* ts + the interval argument argname (22008 if out of range). */
static TimestampTz
timestamp_plus(TimestampTz ts, Interval *iv, const char *argname)
{
	ErrorContextCallback context;
	TimestampTz result;

	context.callback = interval_arg_context;
	context.arg = (void *) argname;
	context.previous = error_context_stack;
	error_context_stack = &context;
	result = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													 TimestampTzGetDatum(ts),
													 IntervalPGetDatum(iv)));
	error_context_stack = context.previous;
	return result;
}

static bool
text_equal(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/*
 * Same key, other request: the one error checked before anything else about
 * the stored row.  A fingerprint is only compared when both sides have one.
 */
static void
check_fingerprint(const IdemArgs *a, text *stored)
{
	if (a->fingerprint == NULL || stored == NULL || text_equal(a->fingerprint, stored))
		return;
	consistency_count(CSTAT_IDEM_MISMATCH);
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_IDEM_KEY_REUSED),
			 errmsg("idempotency key \"%s\" was already used for a different request",
					text_to_cstring(a->key)),
			 errdetail("The stored request fingerprint is \"%s\"; this request's is \"%s\".",
					   text_to_cstring(stored), text_to_cstring(a->fingerprint)),
			 errhint("Use a new key for a new request; a retry must send the same request.")));
}

static void
error_not_claimed(const IdemArgs *a, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_IDEM_NOT_CLAIMED),
			 errmsg("idempotency key \"%s\" is not claimed", text_to_cstring(a->key)),
			 errdetail("%s", what),
			 errhint("Claim the key with consistency.idem_begin() or consistency.idem_claim() in this transaction, or hold a lease from consistency.idem_lease().")));
}

static void
error_not_leased(const IdemArgs *a, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_IDEM_NOT_CLAIMED),
			 errmsg("idempotency key \"%s\" is not held by a lease", text_to_cstring(a->key)),
			 errdetail("%s", what),
			 errhint("Claim the key with consistency.idem_begin() or consistency.idem_claim() in this transaction, or hold a lease from consistency.idem_lease().")));
}

static void
error_completed(const IdemArgs *a)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_IDEM_COMPLETED),
			 errmsg("idempotency key \"%s\" is already completed", text_to_cstring(a->key)),
			 errdetail("Its response is stored and will be replayed to every retry until it expires.")));
}

static void
check_attempt(const IdemArgs *a, bool have_attempt, int32 attempt, const KeyRow *row)
{
	if (have_attempt && attempt != row->attempt)
	{
		consistency_count(CSTAT_IDEM_FENCED);
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_IDEM_LEASE_LOST),
				 errmsg("lease on idempotency key \"%s\" was lost", text_to_cstring(a->key)),
				 errdetail("This worker holds attempt %d; the key is held by attempt %d.",
						   attempt, row->attempt),
				 errhint("Stop this attempt: another worker resumed the operation after the lease expired.")));
	}
}

/* ----------------------------------------------------------------
 * SPI statements
 * ----------------------------------------------------------------
 */

static SPIPlanPtr
get_plan(IdemStmt s)
{
	return consistency_keep_plan(&stmt_plans[s], stmt_defs[s].sql, stmt_defs[s].nargs,
								 stmt_defs[s].argtypes);
}

/*
 * Connect to SPI and become the table's owner for our statements; the caller
 * errors out or calls keys_finish().  An error in between is cleaned up by
 * the (sub)transaction abort, which also restores the user.
 */
static void
keys_connect(ConsistencySavedUser *saved)
{
	Oid			relid = get_keys_relid();

	SPI_connect();
	consistency_become_owner(relid, saved);
}

static void
keys_finish(const ConsistencySavedUser *saved)
{
	consistency_restore_user(saved);
	SPI_finish();
}

/* Run statement s; args beyond $1/$2 come from values/nulls ('n' = null). */
static uint64
run_stmt(IdemStmt s, const IdemArgs *a, Datum *values, const char *nulls)
{
	Datum		args[7];
	char		argnulls[7];
	int			nargs = stmt_defs[s].nargs;
	int			first = (s == STMT_PURGE) ? 0 : 2;
	int			i;
	int			rc;

	if (first == 2)
	{
		args[0] = PointerGetDatum(a->scope);
		args[1] = PointerGetDatum(a->key);
		argnulls[0] = argnulls[1] = ' ';
	}
	for (i = first; i < nargs; i++)
	{
		args[i] = values[i - first];
		argnulls[i] = nulls ? nulls[i - first] : ' ';
	}
	rc = SPI_execute_plan(get_plan(s), args, argnulls, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 stmt_defs[s].sql, SPI_result_code_string(rc));
	return SPI_processed;
}

/* Copy a text column of SPI_tuptable's first row into the upper context. */
static text *
spi_text(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : (text *) DatumGetPointer(SPI_datumTransfer(d, false, -1));
}

static bool
spi_bool(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return !isnull && DatumGetBool(d);
}

static int32
spi_int4(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

static void
lookup_key(const IdemArgs *a, TimestampTz now, KeyRow *row)
{
	Datum		v[1] = {TimestampTzGetDatum(now)};

	memset(row, 0, sizeof(*row));
	if (run_stmt(STMT_LOOKUP, a, v, NULL) == 0)
		return;
	row->found = true;
	row->fingerprint = spi_text(1);
	row->completed = spi_bool(2);
	if (row->completed)
		row->response = PointerGetDatum(spi_text(3));	/* jsonb is varlena too */
	row->recovery_point = spi_text(4);
	row->attempt = spi_int4(5);
	row->expired = spi_bool(6);
	row->leased = spi_bool(7);
	row->lease_expired = spi_bool(8);
}

/*
 * The key is busy and the caller will not wait.  A committed row answers:
 * the request's fingerprint is checked against it first (YC001), then a
 * completed row is replayed and anything else is in progress.  Without a row,
 * the transaction holding the key announced its fingerprint (see
 * idempotency_claims.c): ours, or none, is in_progress; another is YC001.
 * Returns "replay" (with *response), "in_progress", or NULL when nobody holds
 * the key any more: try again.  Caller is connected with keys_connect().
 */
static const char *
answer_busy(const IdemArgs *a, TimestampTz now, Datum *response)
{
	KeyRow		row;

	lookup_key(a, now, &row);
	if (row.found && !row.expired)
	{
		check_fingerprint(a, row.fingerprint);
		if (!row.completed)
			return "in_progress";
		*response = row.response;
		return "replay";
	}
	switch (idem_key_holder(&a->k, a->fingerprint))
	{
		case IDEM_HOLDER_SAME:
			return "in_progress";
		case IDEM_HOLDER_GONE:
			return NULL;
		case IDEM_HOLDER_OTHER:
			break;
	}
	consistency_count(CSTAT_IDEM_MISMATCH);
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_IDEM_KEY_REUSED),
			 errmsg("idempotency key \"%s\" was already used for a different request",
					text_to_cstring(a->key)),
			 errdetail("A request with another fingerprint holds this key right now; this request's fingerprint is \"%s\".",
					   text_to_cstring(a->fingerprint)),
			 errhint("Use a new key for a new request; a retry must send the same request.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * Take the key for this request, announcing its fingerprint.  With wait =>
 * false, a key another transaction holds is answered by answer_busy() (the
 * status is returned, NULL if the key was taken); a key freed while we looked
 * is tried again, a few times, before answering in_progress.  *now is set
 * to the call's time, read once the key is taken or found busy (a wait for
 * it may have been long).  Caller is connected with keys_connect().
 */
static const char *
take_key(const IdemArgs *a, bool wait, TimestampTz *now, Datum *response)
{
	int			round;
	const char *status;

	for (round = 0; round < IDEM_MAX_ROUNDS; round++)
	{
		bool		taken = idem_lock_key(&a->k, wait, a->fingerprint);

		/*
		 * The call's time is read after the lock: a lease or claim counted
		 * from before a wait for the key could end before it began.
		 */
		*now = GetCurrentTimestamp();
		if (taken)
			return NULL;
		if ((status = answer_busy(a, *now, response)) != NULL)
			return status;
	}
	return "in_progress";
}

/*
 * Start a new lease (attempt 1): STMT_INSERT for an absent key (false if the
 * key has a row after all), STMT_RECLAIM over an expired row (false if it
 * vanished meanwhile).  The key outlives its lease.
 */
static bool
start_lease(IdemStmt stmt, const IdemArgs *a, TimestampTz now, Interval *ttl, Interval *lease)
{
	TimestampTz lease_end = timestamp_plus(now, lease, "lease");
	TimestampTz expires = timestamp_plus(now, ttl, "ttl");
	Datum		v[5];
	char		n[5] = {' ', ' ', ' ', ' ', ' '};

	Assert(stmt == STMT_INSERT || stmt == STMT_RECLAIM);
	v[0] = PointerGetDatum(a->fingerprint);
	n[0] = a->fingerprint ? ' ' : 'n';
	v[1] = TimestampTzGetDatum(now);
	v[2] = TimestampTzGetDatum(Max(expires, lease_end));
	v[3] = IntervalPGetDatum(lease);
	v[4] = TimestampTzGetDatum(lease_end);
	return run_stmt(stmt, a, v, n) == 1;
}

/*
 * Take over an attempt whose lease expired: the attempt number goes up, the
 * recovery point stays.  Returns the new attempt number, or 0 if the row
 * vanished meanwhile.
 */
static int32
take_over(const IdemArgs *a, TimestampTz now, Interval *lease)
{
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};

	v[0] = PointerGetDatum(a->fingerprint);
	n[0] = a->fingerprint ? ' ' : 'n';
	v[1] = IntervalPGetDatum(lease);
	v[2] = TimestampTzGetDatum(timestamp_plus(now, lease, "lease"));
	if (run_stmt(STMT_TAKEOVER, a, v, n) != 1)
		return 0;
	return spi_int4(1);
}

/* OID of consistency.idempotency_keys (cached in table_owner.c). */
static Oid
get_keys_relid(void)
{
	return consistency_table_oid(CONSISTENCY_TABLE_IDEMPOTENCY_KEYS);
}

/* Attribute number of consistency.idempotency_keys.key (scope is 1). */
#define KEYS_ATTNUM_KEY 2

/*
 * Might the key have a row?  The fast path of a fresh claim: one probe of the
 * primary key under a dirty snapshot (committed rows whatever this
 * transaction's snapshot, plus uncommitted ones), no executor, no SPI.
 * "true" only means "look properly": the caller then reads the row through
 * SPI, which also applies table privileges and row-level security; so when
 * the current user (the table's owner: the caller is connected with
 * keys_connect()) lacks SELECT on the table, or RLS applies to it, this
 * answers true without looking.
 */
static bool
key_row_may_exist(const IdemArgs *a)
{
	Oid			relid = get_keys_relid();
	Relation	rel;
	Relation	idx;
	SnapshotData dirty;
	ScanKeyData skey[2];
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		found;
	int			i;

	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
		check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return true;

	/* Locks are kept to the end of the transaction, as a scan's are. */
	rel = table_open(relid, AccessShareLock);
	idx = index_open(RelationGetPrimaryKeyIndex_compat(rel, false), AccessShareLock);

	/*
	 * The primary key is (key, scope) since 1.1, so that a comparison of two
	 * keys is decided by the key (scope is mostly '' in every row) and finds
	 * it at a fixed offset; a database still at 1.0 has (scope, key).
	 */
	if (IndexRelationGetNumberOfKeyAttributes(idx) != 2)
	{
		index_close(idx, NoLock);
		table_close(rel, NoLock);
		return true;
	}
	for (i = 0; i < 2; i++)
	{
		bool		is_key = idx->rd_index->indkey.values[i] == KEYS_ATTNUM_KEY;

		ScanKeyEntryInitialize(&skey[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[i], F_TEXTEQ,
							   PointerGetDatum(is_key ? a->key : a->scope));
	}
	InitDirtySnapshot(dirty);
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan_compat(rel, idx, &dirty, NULL, 2, 0);
	index_rescan(scan, skey, 2, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

/*
 * The columns of consistency.idempotency_keys, in order, as the direct insert
 * below writes them (InvalidOid: the idem_state enum).
 */
#define KEYS_NATTS 12
static const Oid keys_column_types[KEYS_NATTS] = {
	TEXTOID,					/* scope */
	TEXTOID,					/* key */
	TEXTOID,					/* fingerprint */
	InvalidOid,					/* state */
	JSONBOID,					/* response */
	TEXTOID,					/* recovery_point */
	INT4OID,					/* attempt */
	INTERVALOID,				/* lease_duration */
	TIMESTAMPTZOID,				/* lease_expires_at */
	TIMESTAMPTZOID,				/* created_at */
	TIMESTAMPTZOID,				/* completed_at */
	TIMESTAMPTZOID				/* expires_at */
};

/* The idem_state type and its 'completed' label, looked up once per type. */
static Oid	state_type = InvalidOid;
static Datum state_completed;

/*
 * The row of a fresh transactional claim, completed with its response,
 * written without the executor (direct_insert.c): through SPI the same INSERT
 * cost three times as much (measured: see the file's header).  Returns false,
 * having written nothing, when the table is not as the extension created it:
 * the caller then runs the SPI statement, which honours what a DBA added.
 * Caller is the table's owner (keys_connect()).
 */
static bool
insert_completed_row(const IdemArgs *a, const IdemClaimInfo *claim, Jsonb *response,
					 TimestampTz now)
{
	Oid			relid = get_keys_relid();
	Oid			typid = get_atttype(relid, 4);
	Oid			types[KEYS_NATTS];
	Datum		values[KEYS_NATTS];
	bool		isnull[KEYS_NATTS];
	struct ResultRelInfo *rri;
	int			i;

	if (!OidIsValid(typid) || typid != state_type)
	{
		/*
		 * Not the enum (a column altered to another type, or a domain over
		 * it): the statement stores the row, as it converts the value.
		 */
		if (!type_is_enum(typid))
			return false;
		state_completed = DirectFunctionCall2(enum_in, CStringGetDatum("completed"),
											  ObjectIdGetDatum(typid));
		state_type = typid;
	}
	for (i = 0; i < KEYS_NATTS; i++)
		types[i] = OidIsValid(keys_column_types[i]) ? keys_column_types[i] : state_type;

	memset(isnull, false, sizeof(isnull));
	values[0] = PointerGetDatum(a->scope);
	values[1] = PointerGetDatum(a->key);
	values[2] = PointerGetDatum(claim->fingerprint);
	isnull[2] = claim->fingerprint == NULL;
	values[3] = state_completed;
	values[4] = JsonbPGetDatum(response);
	values[5] = (Datum) 0;
	isnull[5] = true;			/* recovery_point */
	values[6] = Int32GetDatum(1);	/* attempt */
	values[7] = (Datum) 0;
	isnull[7] = true;			/* lease_duration */
	values[8] = (Datum) 0;
	isnull[8] = true;			/* lease_expires_at */
	values[9] = TimestampTzGetDatum(claim->created_at);
	values[10] = TimestampTzGetDatum(now);
	values[11] = TimestampTzGetDatum(claim->expires_at);

	rri = consistency_direct_open(relid, KEYS_NATTS, types, isnull);
	if (rri == NULL)
		return false;
	consistency_direct_insert(rri, values, isnull);
	return true;
}

/* ----------------------------------------------------------------
 * SQL-callable functions
 * ----------------------------------------------------------------
 */

/*
 * Set up the one-row result of idem_begin / idem_lease.  A FROM-clause call
 * passes the row type it expects: using it saves rebuilding the type from
 * the function's catalog entry on every call.
 */
static void
init_result(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, rsinfo != NULL && IsA(rsinfo, ReturnSetInfo) &&
						rsinfo->expectedDesc != NULL ? MAT_SRF_USE_EXPECTED_DESC : 0);
}

/* Count an answer of idem_begin, idem_claim or idem_lease. */
static void
count_answer(const char *status)
{
	if (strcmp(status, "new") == 0)
		consistency_count(CSTAT_IDEM_NEW);
	else if (strcmp(status, "replay") == 0)
		consistency_count(CSTAT_IDEM_REPLAY);
	else if (strcmp(status, "in_progress") == 0)
		consistency_count(CSTAT_IDEM_IN_PROGRESS);
	else if (strcmp(status, "resume") == 0)
		consistency_count(CSTAT_IDEM_TAKEOVER);
}

/* Emit the one row of idem_begin / idem_lease. */
static void
emit_row(FunctionCallInfo fcinfo, const char *status, Datum response,
		 text *recovery_point, int32 attempt)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[4];
	bool		nulls[4] = {false, response == (Datum) 0, recovery_point == NULL, attempt == 0};

	count_answer(status);
	values[0] = CStringGetTextDatum(status);
	values[1] = response;
	values[2] = PointerGetDatum(recovery_point);
	values[3] = Int32GetDatum(attempt);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * The answer of idem_begin and idem_claim, from their arguments (key,
 * fingerprint, ttl, scope, wait): "new", "replay" (with *response) or
 * "in_progress".
 *
 * Writes nothing: a claim is the key's lock plus an entry in this
 * transaction's registry, and idem_complete() writes the row.
 */
static const char *
claim_key(FunctionCallInfo fcinfo, Datum *response)
{
	IdemArgs	a;
	Interval   *ttl;
	bool		wait;
	const IdemClaimInfo *claim;
	TimestampTz now;
	KeyRow		row;
	const char *status;
	ConsistencySavedUser saved;

	get_key_args(fcinfo, 0, 3, &a);
	get_fingerprint_arg(fcinfo, 1, &a);
	ttl = get_positive_interval_arg(fcinfo, 2, "ttl");
	wait = get_bool_arg(fcinfo, 4, "wait");
	*response = (Datum) 0;

	/* begun again in the same transaction: answer as before */
	if ((claim = idem_claim_get(&a.k)) != NULL)
	{
		check_fingerprint(&a, claim->fingerprint);
		if (!claim->completed)
			return "new";
		keys_connect(&saved);
		lookup_key(&a, GetCurrentTimestamp(), &row);
		keys_finish(&saved);
		if (!row.found || !row.completed)
			elog(ERROR, "row of completed idempotency key \"%s\" disappeared",
				 text_to_cstring(a.key));
		*response = row.response;
		return "replay";
	}

	keys_connect(&saved);
	if ((status = take_key(&a, wait, &now, response)) != NULL)
	{
		keys_finish(&saved);
		return status;
	}

	if (!key_row_may_exist(&a))
	{
		keys_finish(&saved);
		idem_claim_register(&a.k, a.fingerprint, now, timestamp_plus(now, ttl, "ttl"), false);
		return "new";
	}

	lookup_key(&a, now, &row);
	keys_finish(&saved);
	if (!row.found && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to concurrent update"),
				 errdetail("Idempotency key \"%s\" was stored by a transaction that committed after this transaction's snapshot was taken.",
						   text_to_cstring(a.key)),
				 errhint("Retry the transaction: the retry will see the stored response.")));
	if (row.found && !row.expired)
		check_fingerprint(&a, row.fingerprint);

	if (row.found && !row.expired && row.completed)
	{
		status = "replay";
		*response = row.response;
	}
	else if (row.found && !row.expired && row.leased && !row.lease_expired)
		status = "in_progress";
	else
	{
		/*
		 * No row any more (purged since the probe), an expired one, or an
		 * attempt whose lease ran out: this transaction runs the request and
		 * idem_complete() replaces whatever row is there.
		 */
		idem_claim_register(&a.k, a.fingerprint, now, timestamp_plus(now, ttl, "ttl"), true);
		status = "new";
	}
	/* an answer that claims nothing keeps no lock: give back what we took */
	if (strcmp(status, "new") != 0)
		idem_unlock_key(&a.k, a.fingerprint);
	return status;
}

/*
 * idem_begin(key, fingerprint, ttl, scope, wait) -> (status, response)
 */
Datum
consistency_idem_begin(PG_FUNCTION_ARGS)
{
	const char *status;
	Datum		response;

	init_result(fcinfo);
	status = claim_key(fcinfo, &response);
	emit_row(fcinfo, status, response, NULL, 0);
	PG_RETURN_NULL();
}

/*
 * idem_claim(key, fingerprint, ttl, scope, wait) -> response
 *
 * idem_begin's answer as one value: NULL for new, the stored response for
 * replay (never NULL: idem_complete refuses one), YC006 for in_progress.
 * With idem_finish, a PL/pgSQL handler makes both calls as expressions,
 * which PL/pgSQL evaluates without the executor, where idem_begin needs a
 * function scan (SELECT ... FROM) and idem_complete a query (PERFORM).
 */
Datum
consistency_idem_claim(PG_FUNCTION_ARGS)
{
	const char *status;
	Datum		response;
	text	   *scope;

	status = claim_key(fcinfo, &response);
	count_answer(status);
	if (strcmp(status, "new") == 0)
		PG_RETURN_NULL();
	if (strcmp(status, "replay") == 0)
		PG_RETURN_DATUM(response);
	scope = PG_GETARG_TEXT_PP(3);
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_IDEM_IN_PROGRESS),
			 errmsg("idempotency key \"%s\" is in progress",
					text_to_cstring(PG_GETARG_TEXT_PP(0))),
			 VARSIZE_ANY_EXHDR(scope) > 0 ?
			 errdetail("The key is in scope \"%s\". Another transaction or a live lease holds the key for the same request.",
					   text_to_cstring(scope)) :
			 errdetail("Another transaction or a live lease holds the key for the same request."),
			 errhint("Answer that the request is in progress (HTTP 409) and let the client retry later.")));
	PG_RETURN_NULL();			/* keep compiler quiet */
}

/*
 * idem_lease(key, fingerprint, lease, scope, ttl, wait)
 *	  -> (status, response, recovery_point, attempt)
 */
Datum
consistency_idem_lease(PG_FUNCTION_ARGS)
{
	IdemArgs	a;
	Interval   *lease;
	Interval   *ttl;
	bool		wait;
	TimestampTz now;
	KeyRow		row;
	const char *status = NULL;
	Datum		response = (Datum) 0;
	text	   *recovery = NULL;
	int32		attempt = 0;
	int			round;
	ConsistencySavedUser saved;

	get_key_args(fcinfo, 0, 3, &a);
	get_fingerprint_arg(fcinfo, 1, &a);
	lease = get_positive_interval_arg(fcinfo, 2, "lease");
	ttl = get_positive_interval_arg(fcinfo, 4, "ttl");
	wait = get_bool_arg(fcinfo, 5, "wait");
	init_result(fcinfo);

	if (idem_claim_get(&a.k) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("idempotency key \"%s\" is claimed by this transaction",
						text_to_cstring(a.key)),
				 errdetail("A key claimed with consistency.idem_begin() cannot also be leased.")));
	keys_connect(&saved);
	if ((status = take_key(&a, wait, &now, &response)) != NULL)
	{
		keys_finish(&saved);
		emit_row(fcinfo, status, response, NULL, 0);
		PG_RETURN_NULL();
	}
	for (round = 0; status == NULL && round < IDEM_MAX_ROUNDS; round++)
	{
		if (start_lease(STMT_INSERT, &a, now, ttl, lease))
		{
			status = "new";
			attempt = 1;
			break;
		}
		lookup_key(&a, now, &row);
		if (!row.found)
			continue;
		if (row.expired)
		{
			if (start_lease(STMT_RECLAIM, &a, now, ttl, lease))
			{
				status = "new";
				attempt = 1;
			}
			continue;
		}
		check_fingerprint(&a, row.fingerprint);
		recovery = row.recovery_point;
		attempt = row.attempt;
		if (row.completed)
		{
			status = "replay";
			response = row.response;
		}
		else if (row.leased && !row.lease_expired)
			status = "in_progress";
		else if ((attempt = take_over(&a, now, lease)) > 0)
			status = "resume";
	}
	keys_finish(&saved);
	if (status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not lease idempotency key \"%s\" because it kept changing",
						text_to_cstring(a.key)),
				 errhint("Retry the transaction.")));
	/* an answer that claims nothing keeps no lock: give back what we took */
	if (strcmp(status, "replay") == 0 || strcmp(status, "in_progress") == 0)
		idem_unlock_key(&a.k, a.fingerprint);
	emit_row(fcinfo, status, response, recovery, attempt);
	PG_RETURN_NULL();
}

/*
 * Lock a key that is not claimed by this transaction and read its row, for
 * the functions that act on a lease: it must be a live 'in_progress' lease
 * (expired or not yet taken over) held by the given attempt.
 */
static void
lookup_lease(const IdemArgs *a, TimestampTz *now, bool have_attempt, int32 attempt,
			 KeyRow *row)
{
	idem_lock_key(&a->k, true, NULL);
	*now = GetCurrentTimestamp();	/* after the wait, as in take_key */
	lookup_key(a, *now, row);
	if (!row->found || row->expired)
		error_not_claimed(a, "No unexpired row exists for this key.");
	if (row->completed)
		error_completed(a);
	if (!row->leased)
		error_not_leased(a, "The key was claimed by a transaction that did not finish.");
	check_attempt(a, have_attempt, attempt, row);
}

/*
 * The work of idem_complete and idem_finish, from their arguments (key,
 * response, scope, attempt): store the response of a key this transaction
 * claimed, or of a lease it holds.  Returns the response.
 */
static Jsonb *
complete_key(FunctionCallInfo fcinfo)
{
	IdemArgs	a;
	Jsonb	   *response;
	int32		attempt = 0;
	bool		have_attempt;
	TimestampTz now;
	const IdemClaimInfo *claim;
	KeyRow		row;
	ConsistencySavedUser saved;

	get_key_args(fcinfo, 0, 2, &a);
	consistency_arg_not_null(fcinfo, 1, "response");
	response = PG_GETARG_JSONB_P(1);
	if (VARSIZE(response) - VARHDRSZ > idem_max_response_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("idempotency response is too large"),
				 errdetail("The response is %zu bytes; consistency.idem_max_response_size is %d bytes.",
						   (size_t) (VARSIZE(response) - VARHDRSZ), idem_max_response_size),
				 errhint("Store a smaller response, such as the identifier of the created object.")));
	have_attempt = get_attempt_arg(fcinfo, 3, &attempt);

	now = GetCurrentTimestamp();
	keys_connect(&saved);
	if ((claim = idem_claim_get(&a.k)) != NULL)
	{
		Datum		cv[5];
		char		cn[5] = {' ', ' ', ' ', ' ', ' '};

		if (claim->completed)
			error_completed(&a);
		cv[0] = PointerGetDatum(claim->fingerprint);
		cn[0] = claim->fingerprint ? ' ' : 'n';
		cv[1] = JsonbPGetDatum(response);
		cv[2] = TimestampTzGetDatum(claim->created_at);
		cv[3] = TimestampTzGetDatum(now);
		cv[4] = TimestampTzGetDatum(claim->expires_at);
		if ((claim->replaces_row || !insert_completed_row(&a, claim, response, now)) &&
			run_stmt(claim->replaces_row ? STMT_UPSERT_COMPLETED : STMT_INSERT_COMPLETED,
					 &a, cv, cn) != 1)
			elog(ERROR, "could not store idempotency key \"%s\"", text_to_cstring(a.key));
		idem_claim_mark_completed(&a.k);
	}
	else
	{
		Datum		v[2];

		lookup_lease(&a, &now, have_attempt, attempt, &row);
		v[0] = JsonbPGetDatum(response);
		v[1] = TimestampTzGetDatum(now);
		if (run_stmt(STMT_COMPLETE, &a, v, NULL) != 1)
			elog(ERROR, "leased idempotency key \"%s\" disappeared", text_to_cstring(a.key));
	}
	keys_finish(&saved);
	return response;
}

/*
 * idem_complete(key, response, scope, attempt) -> void
 */
Datum
consistency_idem_complete(PG_FUNCTION_ARGS)
{
	(void) complete_key(fcinfo);
	PG_RETURN_VOID();
}

/*
 * idem_finish(key, response, scope, attempt) -> response
 *
 * idem_complete that returns the response it stored, so that a PL/pgSQL
 * handler ends with RETURN consistency.idem_finish(...), an expression,
 * instead of a PERFORM, which is a query.
 */
Datum
consistency_idem_finish(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(complete_key(fcinfo));
}

/*
 * idem_checkpoint(key, recovery_point, scope, attempt) -> new lease expiry
 */
Datum
consistency_idem_checkpoint(PG_FUNCTION_ARGS)
{
	IdemArgs	a;
	text	   *recovery;
	int32		attempt = 0;
	bool		have_attempt;
	TimestampTz now;
	TimestampTz lease_end;
	Datum		v[2];
	KeyRow		row;
	bool		isnull;
	ConsistencySavedUser saved;

	get_key_args(fcinfo, 0, 2, &a);
	recovery = consistency_text_arg(fcinfo, 1, "recovery_point", IDEM_MAX_RECOVERY_BYTES, true);
	have_attempt = get_attempt_arg(fcinfo, 3, &attempt);
	if (idem_claim_get(&a.k) != NULL)
		error_not_leased(&a, "The key is claimed by this transaction; only leases have recovery points.");

	keys_connect(&saved);
	lookup_lease(&a, &now, have_attempt, attempt, &row);
	v[0] = PointerGetDatum(recovery);
	v[1] = TimestampTzGetDatum(now);
	if (run_stmt(STMT_CHECKPOINT, &a, v, NULL) != 1)
		elog(ERROR, "leased idempotency key \"%s\" disappeared", text_to_cstring(a.key));
	lease_end = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
	keys_finish(&saved);
	PG_RETURN_TIMESTAMPTZ(lease_end);
}

/*
 * idem_release(key, scope, attempt) -> whether a claim or lease was dropped
 */
Datum
consistency_idem_release(PG_FUNCTION_ARGS)
{
	IdemArgs	a;
	int32		attempt = 0;
	bool		have_attempt;
	KeyRow		row;
	const IdemClaimInfo *claim;
	bool		released = false;
	ConsistencySavedUser saved;

	get_key_args(fcinfo, 0, 1, &a);
	have_attempt = get_attempt_arg(fcinfo, 2, &attempt);

	keys_connect(&saved);
	if ((claim = idem_claim_get(&a.k)) != NULL)
	{
		/* nothing was written for the claim: forgetting it is enough */
		if (claim->completed)
			error_completed(&a);
		idem_claim_mark_released(&a.k);
		released = true;
	}
	else
	{
		idem_lock_key(&a.k, true, NULL);
		lookup_key(&a, GetCurrentTimestamp(), &row);
		if (row.found && !row.expired)
		{
			if (row.completed)
				error_completed(&a);
			check_attempt(&a, have_attempt, attempt, &row);
			released = run_stmt(STMT_DELETE, &a, NULL, NULL) == 1;
		}
		/* nothing to release: keep no lock */
		if (!released)
			idem_unlock_key(&a.k, NULL);
	}
	keys_finish(&saved);
	PG_RETURN_BOOL(released);
}

/*
 * idem_purge(batch_size) -> number of expired keys deleted
 *
 * Rows another transaction is updating are skipped (SKIP LOCKED), and fresh
 * claims never touch expired rows, so purging never blocks new keys; a
 * retry of an expired key waits at most for this batch to commit.
 */
Datum
consistency_idem_purge(PG_FUNCTION_ARGS)
{
	int32		batch;
	Datum		v[2];
	uint64		n;
	ConsistencySavedUser saved;

	consistency_arg_not_null(fcinfo, 0, "batch_size");
	batch = PG_GETARG_INT32(0);
	if (batch <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be positive"),
				 errdetail("The batch_size given is %d.", batch)));
	v[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	v[1] = Int32GetDatum(batch);
	keys_connect(&saved);
	n = run_stmt(STMT_PURGE, NULL, v, NULL);
	keys_finish(&saved);
	consistency_count_n(CSTAT_IDEM_PURGED, n);
	PG_RETURN_INT64((int64) n);
}

void
consistency_idempotency_init(void)
{
	DefineCustomIntVariable("consistency.idem_max_response_size",
							"Largest response idem_complete() stores.",
							"A larger response is refused with SQLSTATE 54000.",
							&idem_max_response_size,
							1024 * 1024, 1, MaxAllocSize - VARHDRSZ,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}
