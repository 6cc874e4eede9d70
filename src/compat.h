/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every difference between the PostgreSQL versions the extension builds
 *	  against (15 and 18), in one place.
 *
 * The code is written against the newest API.  For older servers this
 * header supplies it: the new names where only a name changed, and a thin
 * *_compat() wrapper where a signature changed (the wrapper takes the new
 * arguments; on older servers it does what the new argument asks, or the
 * comment says why it cannot matter).  Struct members that moved get an
 * accessor macro.  No other file tests PG_VERSION_NUM.
 *
 * Included by consistency.h, which every C file includes, after the
 * PostgreSQL headers it needs itself (it includes those, so the order of a
 * file's own includes does not matter).
 *
 * IDENTIFICATION
 *	  src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_COMPAT_H
#define CONSISTENCY_COMPAT_H

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "replication/message.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/relcache.h"

#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 190000
#error "consistency builds against PostgreSQL 15 to 18"
#endif

/*
 * 16 moved the varlena macros (VARSIZE_ANY_EXHDR, VARDATA_ANY, ...) out of
 * postgres.h into varatt.h.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * 18 replaced the attribute pg_attribute_noreturn(), written after a
 * declaration, by the specifier pg_noreturn, written before it.  A GNU
 * attribute is accepted in front of a declaration too.
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/* 17 named the protocol's message types (libpq/protocol.h). */
#if PG_VERSION_NUM >= 170000
#include "libpq/protocol.h"
#else
#define PqMsg_ParameterStatus	'S'
#endif

/*
 * 17 replaced backend ids (1-based, BackendId, MyBackendId) by proc numbers
 * (0-based index of the PGPROC, ProcNumber, MyProcNumber).  A regular
 * backend's proc number is below MaxBackends on every version.  The
 * virtual transaction id moved into PGPROC.vxid, and LockInstanceData's
 * backend/lxid pair became a VirtualTransactionId.
 */
#if PG_VERSION_NUM >= 170000
#define PGPROC_LXID(proc)				((proc)->vxid.lxid)
#define LOCKINSTANCE_PROCNUMBER(li)		((li)->vxid.procNumber)
#define LOCKINSTANCE_LXID(li)			((li)->vxid.localTransactionId)
#else
#include "storage/backendid.h"
typedef BackendId ProcNumber;
#define INVALID_PROC_NUMBER		(-1)
#define BACKENDID_TO_PROCNUMBER(id) \
	((id) == InvalidBackendId ? INVALID_PROC_NUMBER : (ProcNumber) ((id) - 1))
#define MyProcNumber					BACKENDID_TO_PROCNUMBER(MyBackendId)
#define PGPROC_LXID(proc)				((proc)->lxid)
#define LOCKINSTANCE_PROCNUMBER(li)		BACKENDID_TO_PROCNUMBER((li)->backend)
#define LOCKINSTANCE_LXID(li)			((li)->lxid)
#endif

/*
 * 17 added RelationGetPrimaryKeyIndex()'s deferrable_ok.  Before 17 a
 * deferrable primary key is never returned, which is deferrable_ok = false;
 * callers must pass false.
 */
#if PG_VERSION_NUM >= 170000
#define RelationGetPrimaryKeyIndex_compat(rel, deferrable_ok) \
	RelationGetPrimaryKeyIndex((rel), (deferrable_ok))
#else
#define RelationGetPrimaryKeyIndex_compat(rel, deferrable_ok) \
	(AssertMacro(!(deferrable_ok)), RelationGetPrimaryKeyIndex(rel))
#endif

/*
 * 16 added ExecInsertIndexTuples()'s onlySummarizing (false: every index);
 * 18 added ExecCheckIndexConstraints()'s tupleid (NULL: an INSERT, no row to
 * skip).
 */
#if PG_VERSION_NUM >= 160000
#define ExecInsertIndexTuples_compat(rri, slot, estate, update, noDupErr, specConflict, arbiters) \
	ExecInsertIndexTuples((rri), (slot), (estate), (update), (noDupErr), (specConflict), \
						  (arbiters), false)
#else
#define ExecInsertIndexTuples_compat(rri, slot, estate, update, noDupErr, specConflict, arbiters) \
	ExecInsertIndexTuples((rri), (slot), (estate), (update), (noDupErr), (specConflict), \
						  (arbiters))
#endif
#if PG_VERSION_NUM >= 180000
#define ExecCheckIndexConstraints_compat(rri, slot, estate, conflictTid, arbiters) \
	ExecCheckIndexConstraints((rri), (slot), (estate), (conflictTid), NULL, (arbiters))
#else
#define ExecCheckIndexConstraints_compat(rri, slot, estate, conflictTid, arbiters) \
	ExecCheckIndexConstraints((rri), (slot), (estate), (conflictTid), (arbiters))
#endif

/*
 * 17 added index_insert_cleanup(), which ExecCloseIndices() calls before
 * closing each index (an AM's end-of-statement work after index_insert()).
 */
#if PG_VERSION_NUM >= 170000
#define index_insert_cleanup_compat(index, indexInfo) index_insert_cleanup((index), (indexInfo))
#else
#define index_insert_cleanup_compat(index, indexInfo) ((void) 0)
#endif

/* 18 added index_beginscan()'s instrument (NULL: no instrumentation). */
#if PG_VERSION_NUM >= 180000
#define index_beginscan_compat(heap, index, snapshot, instrument, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), (instrument), (nkeys), (norderbys))
#else
#define index_beginscan_compat(heap, index, snapshot, instrument, nkeys, norderbys) \
	(AssertMacro((instrument) == NULL), \
	 index_beginscan((heap), (index), (snapshot), (nkeys), (norderbys)))
#endif

/* 18 added virtual generated columns next to stored ones. */
#if PG_VERSION_NUM >= 180000
#define TupleConstrHasGenerated(constr) \
	((constr) != NULL && ((constr)->has_generated_stored || (constr)->has_generated_virtual))
#else
#define TupleConstrHasGenerated(constr) \
	((constr) != NULL && (constr)->has_generated_stored)
#endif

/*
 * 16 made heap_update() tell which indexes need entries for the new version
 * (TU_UpdateIndexes: none, all, or only the summarizing ones).  Before, a
 * heap-only new tuple needed none and any other needed all.  No crosscheck
 * snapshot: the extension's callers use none.
 */
#if PG_VERSION_NUM >= 160000
#define heap_update_compat(rel, otid, newtup, cid, wait, tmfd, lockmode, update_indexes) \
	heap_update((rel), (otid), (newtup), (cid), InvalidSnapshot, (wait), (tmfd), (lockmode), \
				(update_indexes))
#else
typedef enum TU_UpdateIndexes
{
	TU_None,
	TU_All,
	TU_Summarizing
} TU_UpdateIndexes;

static inline TM_Result
heap_update_compat(Relation rel, ItemPointer otid, HeapTuple newtup, CommandId cid, bool wait,
				   TM_FailureData *tmfd, LockTupleMode *lockmode,
				   TU_UpdateIndexes *update_indexes)
{
	TM_Result	result = heap_update(rel, otid, newtup, cid, InvalidSnapshot, wait, tmfd,
									 lockmode);

	*update_indexes = result == TM_Ok && !HeapTupleIsHeapOnly(newtup) ? TU_All : TU_None;
	return result;
}
#endif

/* 16 added summarizing indexes (BRIN), which a heap-only update still maintains. */
#if PG_VERSION_NUM >= 160000
#define IndexInfoIsSummarizing(ii)	((ii)->ii_Summarizing)
#else
#define IndexInfoIsSummarizing(ii)	(AssertMacro((ii) != NULL), false)
#endif

/* 18 added NOT ENFORCED CHECK constraints, which no write evaluates. */
#if PG_VERSION_NUM >= 180000
#define CheckConstraintIsEnforced(check)	((check)->ccenforced)
#else
#define CheckConstraintIsEnforced(check)	(AssertMacro((check) != NULL), true)
#endif

/* 17 added LogLogicalMessage()'s flush: flush WAL up to the record. */
#if PG_VERSION_NUM >= 170000
#define LogLogicalMessage_compat(prefix, message, size, transactional, flush) \
	LogLogicalMessage((prefix), (message), (size), (transactional), (flush))
#else
static inline XLogRecPtr
LogLogicalMessage_compat(const char *prefix, const char *message, size_t size,
						 bool transactional, bool flush)
{
	XLogRecPtr	lsn = LogLogicalMessage(prefix, message, size, transactional);

	if (flush)
		XLogFlush(lsn);
	return lsn;
}
#endif

/*
 * 16 replaced pg_class_ownercheck() and its siblings, one per catalog, by
 * object_ownercheck(classid, objectid, roleid).  The extension only asks
 * about relations.
 */
#if PG_VERSION_NUM < 160000
static inline bool
object_ownercheck(Oid classid, Oid objectid, Oid roleid)
{
	if (classid != RelationRelationId)
		elog(ERROR, "object_ownercheck: unsupported class %u", classid);
	return pg_class_ownercheck(objectid, roleid);
}
#endif

/*
 * 17 added transaction_timeout, which ends (FATAL) any transaction running
 * longer, a background worker's too: xact.c arms it as a transaction starts.
 */
#if PG_VERSION_NUM >= 170000
#define HAVE_TRANSACTION_TIMEOUT 1
#endif

/*
 * A GUC check hook's "extra" is freed by the GUC machinery: with free()
 * before 16, with pfree() (guc_free) since, so it must come from guc_malloc(),
 * which 16 exported.  This is 15's guc_malloc().
 */
#if PG_VERSION_NUM < 160000
static inline void *
guc_malloc(int elevel, size_t size)
{
	void	   *data = malloc(size > 0 ? size : 1);

	if (data == NULL)
		ereport(elevel,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return data;
}
#endif

/*
 * 17 added MERGE's WHEN NOT MATCHED BY SOURCE, and keeps a result relation's
 * MERGE actions in one list per match kind; before, one list for WHEN
 * MATCHED and one for WHEN NOT MATCHED.  ResultRelInfoMergeActions(rri, k),
 * k from 0 to MERGE_ACTION_LISTS - 1, are all of them (MergeActionState).
 */
#if PG_VERSION_NUM >= 170000
#define MERGE_ACTION_LISTS	NUM_MERGE_MATCH_KINDS
#define ResultRelInfoMergeActions(rri, k)	((rri)->ri_MergeActions[(k)])
#else
#define MERGE_ACTION_LISTS	2
#define ResultRelInfoMergeActions(rri, k) \
	((k) == 0 ? (rri)->ri_matchedMergeAction : (rri)->ri_notMatchedMergeAction)
#endif

/*
 * 18 lets a primary key be a GiST index (PRIMARY KEY (..., p WITHOUT
 * OVERLAPS)), whose strategy numbers are the operator class's own: its
 * equality strategy is asked of the access method.  Before 18 a primary key
 * is always a btree index.  InvalidStrategy: the index has no equality.
 */
#if PG_VERSION_NUM >= 180000
#include "access/amapi.h"
#define IndexEqualStrategy(amoid, opfamily) \
	IndexAmTranslateCompareType(COMPARE_EQ, (amoid), (opfamily), true)
#else
#include "access/stratnum.h"
#include "catalog/pg_am.h"
#define IndexEqualStrategy(amoid, opfamily) \
	((amoid) == BTREE_AM_OID ? BTEqualStrategyNumber : InvalidStrategy)
#endif

#endif							/* CONSISTENCY_COMPAT_H */
