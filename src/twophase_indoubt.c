/*-------------------------------------------------------------------------
 *
 * twophase_indoubt.c
 *	  In-doubt two-phase commit, the participant's side: the prepared
 *	  transactions of this cluster (tpc_list_prepared(), the listing
 *	  prepared_xacts() with their locks and the backends they block) and
 *	  the verdict for each (tpc_decide()), read from the coordinator's
 *	  decision log that twophase_decisions.c writes.
 *
 * A verdict reads, in this order, the coordinator transaction's status
 * (pg_xact_status) and then, with a snapshot taken after that, the decision
 * log: see the protocol in twophase_decisions.c.
 *
 * The listing reads lock information once (GetLockStatusData, what pg_locks
 * shows) and attributes it to prepared transactions by their dummy PGPROC
 * (no pid; recognised by the ExclusiveLock it holds on its own xid); a waiter is
 * blocked by a prepared transaction when its requested mode conflicts with
 * a mode the prepared transaction holds on the same lock.
 *
 * IDENTIFICATION
 *	  src/twophase_indoubt.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "consistency.h"
#include "twophase.h"

PG_FUNCTION_INFO_V1(consistency_prepared_xacts);

/* GUC: how long a transaction whose coordinator status is lost waits before rollback. */
static int	tpc_grace_period = 300;

typedef enum TpcListStmt
{
	STMT_LIST,
	STMT_DECISION,
	NUM_STMTS
} TpcListStmt;

static ConsistencyStmt stmts[NUM_STMTS] = {
	[STMT_LIST] = {
		"SELECT p.gid, p.transaction, p.dbid, d.datname, p.ownerid,"
		" pg_catalog.pg_get_userbyid(p.ownerid), p.prepared"
		" FROM pg_catalog.pg_prepared_xact() p"
		" LEFT JOIN pg_catalog.pg_database d ON d.oid = p.dbid"
		" WHERE ($1::pg_catalog.text IS NULL OR p.gid = $1)"
		" AND ($2 <= '0'::pg_catalog.interval"
		"      OR pg_catalog.statement_timestamp() - p.prepared >= $2)"
		" ORDER BY p.prepared, p.gid",
		2, {TEXTOID, INTERVALOID}
	},
	/*
	 * The decisions for this gid, or for any other gid of the same xid; the
	 * caller keeps those of the same coordinator transaction (same nonce).
	 */
	[STMT_DECISION] = {
		"SELECT decision, pg_catalog.to_char(pg_catalog.timezone('UTC', decided_at), 'YYYY-MM-DD HH24:MI:SS.US \"UTC\"'), gid"
		" FROM consistency.tpc_decisions"
		" WHERE gid OPERATOR(pg_catalog.=) $1"
		" OR (coordinator_sysid OPERATOR(pg_catalog.=) $2 AND coordinator_xid OPERATOR(pg_catalog.=) $3)"
		" ORDER BY gid OPERATOR(pg_catalog.=) $1 DESC, gid",
		3, {TEXTOID, INT8OID, XID8OID}
	},
};


/* ----------------------------------------------------------------
 * Listing and verdicts (callers are connected to SPI)
 * ----------------------------------------------------------------
 */

static char *
spi_cstring(HeapTuple tup, TupleDesc desc, int col)
{
	char	   *s = SPI_getvalue(tup, desc, col);

	return s ? s : pstrdup("");
}

/*
 * The prepared transactions of the whole cluster, oldest first, optionally
 * only the one named gid, prepared at least min_age ago.  Ages count from
 * the start of the calling statement, so that all rows are measured alike;
 * a min_age of zero takes every one, also one prepared after the statement
 * began (a loop in one DO block or procedure, which would otherwise find
 * such a transaction "not found").  Entries are allocated in mcxt (a
 * context that outlives SPI_finish).
 */
List *
tpc_list_prepared(const char *gid, const Interval *min_age, MemoryContext mcxt)
{
	Datum		v[2];
	char		n[2] = {' ', ' '};
	List	   *result = NIL;
	int			rc;
	uint64		i;

	v[0] = gid ? CStringGetTextDatum(gid) : (Datum) 0;
	n[0] = gid ? ' ' : 'n';
	v[1] = IntervalPGetDatum(min_age);
	rc = SPI_execute_plan(consistency_stmt_plan(&stmts[STMT_LIST]), v, n, true, 0);
	consistency_stmt_check(rc, &stmts[STMT_LIST]);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(mcxt);
		TpcPrepared *p = palloc0(sizeof(TpcPrepared));
		bool		isnull;

		p->gid = spi_cstring(tup, desc, 1);
		p->xid = DatumGetTransactionId(SPI_getbinval(tup, desc, 2, &isnull));
		p->dboid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		p->database = spi_cstring(tup, desc, 4);
		p->ownerid = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		p->owner = spi_cstring(tup, desc, 6);
		p->prepared_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 7, &isnull));
		result = lappend(result, p);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/* pg_xact_status(fxid): "committed", "aborted", "in progress", or NULL if too old. */
static const char *
xact_status(FullTransactionId fxid)
{
	LOCAL_FCINFO(fc, 1);
	Datum		d;

	InitFunctionCallInfoData(*fc, NULL, 1, InvalidOid, NULL, NULL);
	fc->args[0].value = FullTransactionIdGetDatum(fxid);
	fc->args[0].isnull = false;
	d = pg_xact_status(fc);
	if (fc->isnull)
		return NULL;
	return text_to_cstring(DatumGetTextPP(d));
}

const char *
tpc_verdict_name(TpcVerdict v)
{
	switch (v)
	{
		case TPC_VERDICT_COMMIT:
			return "commit";
		case TPC_VERDICT_ROLLBACK:
			return "rollback";
		case TPC_VERDICT_IN_PROGRESS:
			return "in_progress";
		case TPC_VERDICT_UNKNOWN:
			break;
	}
	return "unknown";
}

/*
 * What the resolver does with prepared transaction p, and why (a sentence
 * in *evidence).  The caller is connected to SPI.
 */
TpcVerdict
tpc_decide(const TpcPrepared *p, char **evidence)
{
	TpcGid		g;
	uint64		me = GetSystemIdentifier();
	const char *status;
	uint64		fx;
	Datum		v[3];
	int			rc;
	char	   *decision = NULL;
	char	   *decided_at = NULL;
	char	   *decided_gid = NULL;
	uint64		i;
	ConsistencySavedUser saved;

	if (!tpc_parse_gid(p->gid, &g))
	{
		*evidence = psprintf("gid not made by consistency.tpc_gid(): its coordinator and decision are unknown, so only an explicit action with force => true resolves it");
		return TPC_VERDICT_UNKNOWN;
	}
	fx = U64FromFullTransactionId(g.fxid);
	if (g.sysid != me)
	{
		*evidence = psprintf("coordinator is transaction " UINT64_FORMAT " of another cluster (system identifier " UINT64_FORMAT "); its decision log is there: resolve with pg_consistency --decisions-from",
							 fx, g.sysid);
		return TPC_VERDICT_UNKNOWN;
	}
	if (g.dboid != MyDatabaseId)
	{
		char	   *dbname = get_database_name(g.dboid);

		*evidence = psprintf("coordinator is transaction " UINT64_FORMAT " of database %s; its decision log is there: look from that database",
							 fx, dbname ? quote_identifier(dbname) : psprintf("with oid %u (dropped)", g.dboid));
		return TPC_VERDICT_UNKNOWN;
	}
	if (XidFromFullTransactionId(g.fxid) == p->xid)
	{
		*evidence = psprintf("gid names the prepared transaction itself as its coordinator: tpc_gid() was called in the participant's transaction, so no decision can exist");
		return TPC_VERDICT_UNKNOWN;
	}
	if (FullTransactionIdFollowsOrEquals(g.fxid, ReadNextFullTransactionId()))
	{
		*evidence = psprintf("coordinator transaction " UINT64_FORMAT " is in the future of this cluster (restored from a backup?): nothing is known about it", fx);
		return TPC_VERDICT_UNKNOWN;
	}

	/* 1. the coordinator's status, before the decision log is read */
	status = xact_status(g.fxid);
	if (status != NULL && strcmp(status, "in progress") == 0)
	{
		*evidence = psprintf("coordinator transaction " UINT64_FORMAT " is still running: it may still log its decision and finish phase 2", fx);
		return TPC_VERDICT_IN_PROGRESS;
	}

	/* 2. the decision log, with a snapshot taken after step 1 */
	v[0] = CStringGetTextDatum(p->gid);
	v[1] = Int64GetDatum((int64) g.sysid);
	v[2] = FullTransactionIdGetDatum(g.fxid);
	consistency_become_owner(tpc_log_relid("tpc_decisions"), &saved);
	rc = SPI_execute_snapshot(consistency_stmt_plan(&stmts[STMT_DECISION]), v, NULL,
							  GetLatestSnapshot(), InvalidSnapshot, true, false, 0);
	consistency_restore_user(&saved);
	consistency_stmt_check(rc, &stmts[STMT_DECISION]);
	/* the gid's own decision first; a sibling's only under the same nonce */
	for (i = 0; i < SPI_processed && decision == NULL; i++)
	{
		char	   *row_gid = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);

		if (!tpc_decision_applies(&g, p->gid, row_gid))
			continue;
		decision = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		decided_at = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		decided_gid = row_gid;
	}
	if (decision != NULL)
	{
		bool		commit = strcmp(decision, "commit") == 0;

		*evidence = psprintf("decision %s logged at %s%s%s by coordinator transaction " UINT64_FORMAT " (%s)",
							 decision, decided_at,
							 strcmp(decided_gid, p->gid) == 0 ? "" : " for sibling gid ",
							 strcmp(decided_gid, p->gid) == 0 ? "" : decided_gid,
							 fx, status ? status : "status no longer known");
		return commit ? TPC_VERDICT_COMMIT : TPC_VERDICT_ROLLBACK;
	}
	if (status != NULL && strcmp(status, "committed") == 0)
	{
		*evidence = psprintf("coordinator transaction " UINT64_FORMAT " committed without logging a decision: presumed abort", fx);
		return TPC_VERDICT_ROLLBACK;
	}
	if (status != NULL)
	{
		*evidence = psprintf("coordinator transaction " UINT64_FORMAT " aborted (or its server crashed) before logging a commit decision: presumed abort", fx);
		return TPC_VERDICT_ROLLBACK;
	}
	/* the status is too old to be known, and there is no decision */
	if (GetCurrentTimestamp() - p->prepared_at >= (int64) tpc_grace_period * USECS_PER_SEC)
	{
		*evidence = psprintf("status of coordinator transaction " UINT64_FORMAT " is too old to be known, no decision is logged and it was prepared more than consistency.tpc_grace_period (%ds) ago: presumed abort",
							 fx, tpc_grace_period);
		return TPC_VERDICT_ROLLBACK;
	}
	*evidence = psprintf("status of coordinator transaction " UINT64_FORMAT " is too old to be known and no decision is logged: rollback once it is older than consistency.tpc_grace_period (%ds)",
						 fx, tpc_grace_period);
	return TPC_VERDICT_UNKNOWN;
}

/* ----------------------------------------------------------------
 * prepared_xacts()
 * ----------------------------------------------------------------
 */

/* What the listing gathers about one prepared transaction from the lock table. */
typedef struct XactLocks
{
	int			lock_count;
	List	   *relations;		/* of LOCKTAG *, relation locks */
	List	   *blocked;		/* of int pids */
} XactLocks;

typedef struct XidEntry
{
	TransactionId xid;			/* hash key */
	int			index;
} XidEntry;

/*
 * A prepared transaction's dummy PGPROC, as the lock table shows it: its
 * virtual transaction id.  That is the preparing session's (PostgreSQL 15.2
 * and later keep it, for TwoPhaseGetXidByVirtualXID) or, after a restart,
 * -1/xid; the pid is 0 either way.
 */
typedef struct VxidEntry
{
	ProcNumber	procnumber;		/* hash key, with lxid */
	LocalTransactionId lxid;
	int			index;
} VxidEntry;

/* A lock held by prepared transactions: who holds it, in which modes. */
typedef struct HeldEntry
{
	LOCKTAG		tag;			/* hash key */
	List	   *holders;		/* of int index into the XactLocks array */
	List	   *masks;			/* of int holdMask, parallel to holders */
} HeldEntry;

static int
count_modes(LOCKMASK mask)
{
	int			n = 0;

	for (; mask; mask &= mask - 1)
		n++;
	return n;
}

static int
cmp_text(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static int
cmp_int(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

/* Attribute the lock table to the prepared transactions in list. */
static XactLocks *
gather_locks(List *list)
{
	int			n = list_length(list);
	XactLocks  *xl = palloc0(sizeof(XactLocks) * Max(n, 1));
	HASHCTL		ctl;
	HTAB	   *xids;
	HTAB	   *vxids;
	HTAB	   *held;
	LockData   *ld;
	ListCell   *lc;
	int			i;

	if (n == 0)
		return xl;
	ctl.keysize = sizeof(TransactionId);
	ctl.entrysize = sizeof(XidEntry);
	ctl.hcxt = CurrentMemoryContext;
	xids = hash_create("prepared xids", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	i = 0;
	foreach(lc, list)
	{
		TpcPrepared *p = lfirst(lc);
		bool		found;
		XidEntry   *e = hash_search(xids, &p->xid, HASH_ENTER, &found);

		e->index = i++;
	}
	ctl.keysize = sizeof(LOCKTAG);
	ctl.entrysize = sizeof(HeldEntry);
	held = hash_create("locks held by prepared xacts", 1024, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	ctl.keysize = offsetof(VxidEntry, index);
	ctl.entrysize = sizeof(VxidEntry);
	vxids = hash_create("prepared vxids", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	ld = GetLockStatusData();

	/*
	 * Which dummy proc is which prepared transaction: the one holding
	 * ExclusiveLock on the transaction's own xid.
	 */
	for (i = 0; i < ld->nelements; i++)
	{
		LockInstanceData *li = &ld->locks[i];
		TransactionId xid = (TransactionId) li->locktag.locktag_field1;
		XidEntry   *e;
		VxidEntry	key;
		VxidEntry  *ve;
		bool		found;

		if (li->pid != 0 || li->locktag.locktag_type != LOCKTAG_TRANSACTION ||
			(li->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0)
			continue;
		e = hash_search(xids, &xid, HASH_FIND, NULL);
		if (e == NULL)
			continue;
		memset(&key, 0, sizeof(key));
		key.procnumber = LOCKINSTANCE_PROCNUMBER(li);
		key.lxid = LOCKINSTANCE_LXID(li);
		ve = hash_search(vxids, &key, HASH_ENTER, &found);
		ve->index = e->index;
	}

	/* what each prepared transaction holds */
	for (i = 0; i < ld->nelements; i++)
	{
		LockInstanceData *li = &ld->locks[i];
		VxidEntry	key;
		VxidEntry  *ve;
		HeldEntry  *h;
		bool		found;

		if (li->pid != 0 || li->holdMask == 0)
			continue;
		memset(&key, 0, sizeof(key));
		key.procnumber = LOCKINSTANCE_PROCNUMBER(li);
		key.lxid = LOCKINSTANCE_LXID(li);
		ve = hash_search(vxids, &key, HASH_FIND, NULL);
		if (ve == NULL)
			continue;
		xl[ve->index].lock_count += count_modes(li->holdMask);
		if (li->locktag.locktag_type == LOCKTAG_RELATION)
			xl[ve->index].relations = lappend(xl[ve->index].relations, &li->locktag);
		h = hash_search(held, &li->locktag, HASH_ENTER, &found);
		if (!found)
			h->holders = h->masks = NIL;
		h->holders = lappend_int(h->holders, ve->index);
		h->masks = lappend_int(h->masks, li->holdMask);
	}

	/* whom they block: waiters asking for a mode that conflicts with one held */
	for (i = 0; i < ld->nelements; i++)
	{
		LockInstanceData *li = &ld->locks[i];
		HeldEntry  *h;
		LockMethod	method;
		ListCell   *hc;
		ListCell   *mc;

		if (li->waitLockMode == NoLock || li->pid == 0)
			continue;
		h = hash_search(held, &li->locktag, HASH_FIND, NULL);
		if (h == NULL)
			continue;
		method = GetLockTagsMethodTable(&li->locktag);
		forboth(hc, h->holders, mc, h->masks)
		{
			int			idx = lfirst_int(hc);

			if ((method->conflictTab[li->waitLockMode] & lfirst_int(mc)) != 0 &&
				!list_member_int(xl[idx].blocked, li->pid))
				xl[idx].blocked = lappend_int(xl[idx].blocked, li->pid);
		}
	}
	hash_destroy(xids);
	hash_destroy(vxids);
	hash_destroy(held);
	return xl;
}

/* Relation names: schema-qualified in this database, "database/oid" elsewhere. */
static Datum
relations_array(const TpcPrepared *p, List *tags)
{
	int			n = list_length(tags);
	Datum	   *names = palloc(sizeof(Datum) * Max(n, 1));
	char	  **strs = palloc(sizeof(char *) * Max(n, 1));
	int			k = 0;
	int			i;
	ListCell   *lc;

	foreach(lc, tags)
	{
		LOCKTAG    *t = lfirst(lc);
		Oid			db = t->locktag_field1;
		Oid			rel = t->locktag_field2;
		char	   *name = NULL;

		if (db == MyDatabaseId || db == InvalidOid)
		{
			char	   *relname = get_rel_name(rel);

			if (relname != NULL)
				name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
												  relname);
		}
		if (name == NULL)
		{
			char	   *dbname = (db == p->dboid) ? p->database : get_database_name(db);

			name = psprintf("%s/%u", dbname ? dbname : "?", rel);
		}
		strs[k++] = name;
	}
	qsort(strs, k, sizeof(char *), cmp_text);
	n = 0;
	for (i = 0; i < k; i++)
		if (i == 0 || strcmp(strs[i], strs[i - 1]) != 0)
			names[n++] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
pids_array(List *pids)
{
	int			n = list_length(pids);
	int		   *v = palloc(sizeof(int) * Max(n, 1));
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, pids)
		v[i++] = lfirst_int(lc);
	qsort(v, n, sizeof(int), cmp_int);
	for (i = 0; i < n; i++)
		d[i] = Int32GetDatum(v[i]);
	return PointerGetDatum(construct_array(d, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

/*
 * prepared_xacts(min_age interval DEFAULT '0') -> TABLE(gid, xid, database,
 *	 owner, prepared_at, age, xid_age, pins_xmin_horizon, lock_count,
 *	 relations, blocked_pids, verdict, evidence)
 */
Datum
consistency_prepared_xacts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Interval   *min_age = tpc_interval_arg(fcinfo, 0, "min_age");
	List	   *list;
	XactLocks  *xl;
	TransactionId horizon;
	TimestampTz now = GetCurrentStatementStartTimestamp();
	ListCell   *lc;
	int			i;

	MemoryContext mcxt = CurrentMemoryContext;

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	list = tpc_list_prepared(NULL, min_age, mcxt);
	xl = gather_locks(list);
	horizon = GetOldestNonRemovableTransactionId(NULL);

	i = 0;
	foreach(lc, list)
	{
		TpcPrepared *p = lfirst(lc);
		Datum		values[13];
		bool		nulls[13] = {0};
		char	   *evidence;
		TpcVerdict	v = tpc_decide(p, &evidence);

		values[0] = CStringGetTextDatum(p->gid);
		values[1] = TransactionIdGetDatum(p->xid);
		values[2] = DirectFunctionCall1(namein, CStringGetDatum(p->database));
		values[3] = DirectFunctionCall1(namein, CStringGetDatum(p->owner));
		values[4] = TimestampTzGetDatum(p->prepared_at);
		values[5] = DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(now),
										TimestampTzGetDatum(p->prepared_at));
		values[6] = DirectFunctionCall1(xid_age, TransactionIdGetDatum(p->xid));
		values[7] = BoolGetDatum(TransactionIdPrecedesOrEquals(p->xid, horizon));
		values[8] = Int32GetDatum(xl[i].lock_count);
		values[9] = relations_array(p, xl[i].relations);
		values[10] = pids_array(xl[i].blocked);
		values[11] = CStringGetTextDatum(tpc_verdict_name(v));
		values[12] = CStringGetTextDatum(evidence);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		i++;
	}
	SPI_finish();
	PG_RETURN_NULL();
}


void
consistency_twophase_indoubt_init(void)
{
	DefineCustomIntVariable("consistency.tpc_grace_period",
							"How long a prepared transaction whose coordinator status is no longer known waits before the resolver rolls it back.",
							"Applies only to gids made by consistency.tpc_gid() with no logged decision.",
							&tpc_grace_period,
							300, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}
