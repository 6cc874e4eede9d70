/*-------------------------------------------------------------------------
 *
 * direct_update.c
 *	  Update one row found by its primary key without the executor: the
 *	  heap_update() and the index entries an UPDATE statement would make.
 *
 * Two callers update one row where the statement could do nothing more than
 * this: the slot engine's slot UPDATE (inventory_direct.c) and
 * update_versioned's UPDATE of a plain table (versioning_direct.c).  Each
 * decides whether the table allows it, finds the row and forms the new
 * version; what is left is the same for both: refuse a NULL in a NOT NULL
 * column (the statement reports 23502), heap_update() waiting for a
 * concurrent writer as the statement waits, and, when the update was not
 * heap-only, the new index entries as ExecInsertIndexTuples() makes them,
 * unique indexes checked (23505).  Finding the row by its primary key, as
 * the statement finds it, is shared too (consistency_direct_update_by_key).
 *
 * IDENTIFICATION
 *	  src/direct_update.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "consistency.h"

/*
 * New index entries for the new version newtup of a row whose update was
 * not heap-only, into every index (16+: only the summarizing ones, if only
 * columns of those changed), as ExecInsertIndexTuples() makes them for an
 * UPDATE.  The callers admit no table with an exclusion constraint or a
 * deferrable index, and an index that
 * CREATE INDEX CONCURRENTLY built meanwhile (its lock does not conflict with
 * the statement's) has neither; expressions and predicates are evaluated as
 * the executor does.  The indexes are locked as the statement locks them, to
 * the end of the transaction.
 */
static void
update_index_entries(Relation rel, HeapTuple newtup, bool only_summarizing)
{
	List	   *indexes = RelationGetIndexList(rel);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	EState	   *estate = NULL;
	ListCell   *lc;

	ExecStoreHeapTuple(newtup, slot, false);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *ii = BuildIndexInfo(idx);

		if (ii->ii_ExclusionOps != NULL || !idx->rd_index->indimmediate)
			elog(ERROR, "index \"%s\" appeared during a direct update of \"%s\"",
				 RelationGetRelationName(idx), RelationGetRelationName(rel));
		if (!only_summarizing || IndexInfoIsSummarizing(ii))
		{
			consistency_index_entry(rel, idx, ii, slot, &newtup->t_self, &estate);
			index_insert_cleanup_compat(idx, ii);
		}
		index_close(idx, NoLock);
	}
	if (estate != NULL)
		FreeExecutorState(estate);
	ExecDropSingleTupleTableSlot(slot);
	list_free(indexes);
}

/* Does newtup have a NULL in a NOT NULL column?  (18: NOT VALID ones, unchecked on old rows) */
static bool
null_in_not_null(Relation rel, HeapTuple newtup)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
		if (TupleDescAttr(desc, i)->attnotnull && heap_attisnull(newtup, i + 1, desc))
			return true;
	return false;
}

/*
 * Is the row oldtup, held in slot found, being changed or locked by another
 * transaction (or locked by this one)?  Looked at under the buffer's share
 * lock, as heap_update() looks under its exclusive one.  heap_update() must
 * not be asked to skip such a row: its no-wait case is unhandled, and it
 * asserts that it waits (a backend of a server built with assertions
 * aborts).  So a caller that would not queue on the row looks here first; a
 * writer that comes in between is waited for by heap_update(), as the
 * statement the row would have been left to waits for it.  A row not held in
 * a buffer counts as being changed: the statement decides.
 */
static bool
row_being_modified(TupleTableSlot *found, HeapTuple oldtup, bool tuple_copied, CommandId cid)
{
	Buffer		buffer;
	TM_Result	result;

	if (!TTS_IS_BUFFERTUPLE(found) || tuple_copied ||
		!BufferIsValid(((BufferHeapTupleTableSlot *) found)->buffer))
		return true;
	buffer = ((BufferHeapTupleTableSlot *) found)->buffer;
	LockBuffer(buffer, BUFFER_LOCK_SHARE);
	result = HeapTupleSatisfiesUpdate(oldtup, cid, buffer);
	LockBuffer(buffer, BUFFER_LOCK_UNLOCK);
	return result == TM_BeingModified;
}

/*
 * Set columns cols[] (ncols attnums) to values/nulls in the row in slot
 * found, which the caller found visible to a snapshot taken after
 * CommandCounterIncrement(), as the UPDATE statement would, in rel (open,
 * RowExclusiveLock): 1 if done, -1 if left to the statement, nothing
 * changed: the new row has a NULL in a NOT NULL column (the statement
 * reports 23502), or a concurrent writer updated or deleted the row and
 * committed while this waited for it (the statement re-checks the newest
 * version, EvalPlanQual), or, with !wait, another transaction is changing
 * or has locked the row (the statement queues on it: row_being_modified).
 */
int
consistency_direct_update_row(Relation rel, TupleTableSlot *found, int ncols, int *cols,
							  Datum *values, bool *nulls, bool wait)
{
	bool		should_free;
	HeapTuple	oldtup = ExecFetchSlotHeapTuple(found, false, &should_free);
	HeapTuple	newtup = heap_modify_tuple_by_cols(oldtup, RelationGetDescr(rel), ncols, cols,
												   values, nulls);
	CommandId	cid = GetCurrentCommandId(true);
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TU_UpdateIndexes update_indexes;
	int			result = -1;

	if (!null_in_not_null(rel, newtup) &&
		(wait || !row_being_modified(found, oldtup, should_free, cid)) &&
		heap_update_compat(rel, &oldtup->t_self, newtup, cid, true,
						   &tmfd, &lockmode, &update_indexes) == TM_Ok)
	{
		if (update_indexes != TU_None)
			update_index_entries(rel, newtup, update_indexes == TU_Summarizing);
		result = 1;
	}
	heap_freetuple(newtup);
	if (should_free)
		heap_freetuple(oldtup);
	return result;
}

/*
 * Find the row of rel whose primary key pkey (both open, locked as the
 * statement locks them) equals the nkeys scan keys skey, as an SPI statement
 * would find it: after CommandCounterIncrement(), so that it sees this
 * transaction's own changes, under a new snapshot.  update is called on the
 * row found (if any) with arg and returns 1 (updated), 0 (the statement's
 * condition failed) or -1 (left to the statement, nothing changed), which is
 * returned; 0 if there is no such row.  After an update the change is made
 * visible to the transaction's next command, as the statement's would be.
 */
int
consistency_direct_update_by_key(Relation rel, Relation pkey, int nkeys, ScanKey skey,
								 ConsistencyRowUpdate update, void *arg)
{
	Snapshot	snapshot;
	TupleTableSlot *found;
	IndexScanDesc scan;
	int			result;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	found = table_slot_create(rel, NULL);
	scan = index_beginscan_compat(rel, pkey, snapshot, NULL, nkeys, 0);
	index_rescan(scan, skey, nkeys, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, found))
		result = update(rel, found, arg);
	else
		result = 0;
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(found);
	UnregisterSnapshot(snapshot);
	if (result == 1)
		CommandCounterIncrement();
	return result;
}
