/*-------------------------------------------------------------------------
 *
 * direct_insert.c
 *	  Insert one row into an extension table without the executor, the way
 *	  PostgreSQL writes its own catalogs (CatalogTupleInsert).  (Updates:
 *	  direct_update.c.)
 *
 * The hot writes of the extension (idem_complete's completed key, reserve's
 * line 0) are one row into a table the extension created.  Through SPI
 * each costs plan revalidation, ExecutorStart building a ModifyTable node
 * and its projection, and ExecutorEnd, several times the cost of the heap
 * and index inserts themselves.  A direct write is only correct for the
 * table as the extension made it: consistency_direct_open() refuses (and
 * the caller runs its SQL statement instead, which honours whatever a DBA
 * added) a table with triggers, rules, CHECK constraints, generated columns,
 * row-level security, other columns or NOT NULL beyond the row's, or an
 * index on expressions, deferred or with exclusion constraints, a partition,
 * and any table while an ExecutorCheckPerms_hook (sepgsql) is installed.  Partial
 * indexes are fine: their predicate is evaluated, as ExecInsertIndexTuples
 * does.  Unique indexes are checked as an INSERT checks them: a committed
 * duplicate is 23505, an uncommitted one is waited for.
 *
 * consistency_direct_insert_new() is INSERT ... ON CONFLICT (primary key)
 * DO NOTHING under READ COMMITTED, done as ExecInsert() does it: look for a
 * row with the key under a dirty snapshot, waiting for its writer if that is
 * in progress; if there is none, insert speculatively and let the primary
 * key's insertion report, rather than raise, a duplicate that a concurrent
 * insert of the same key slipped in meanwhile; then confirm the row, or kill
 * it and look again.  Never 23505 for the primary key, whatever the race.
 * Rows of a batch share one open table and one set-up
 * (consistency_direct_new_rows_begin, _new_row, _new_rows_end), and a row
 * the caller expects to be new skips the first look: the insert's own
 * unique check finds the same conflicts (see consistency_direct_new_row).
 *
 * The caller runs as the table's owner (table_owner.c) and is connected to
 * SPI or not, as it likes: nothing here uses SPI.
 *
 * IDENTIFICATION
 *	  src/direct_insert.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "consistency.h"

/*
 * Open relid for a direct insert of a row of natts columns of the given
 * types (InvalidOid: any type, which the caller checks in the relation's
 * descriptor; isnull: which of them are NULL).  NULL, with nothing held, when the
 * table is not as the extension made it (see the file's header): the caller
 * then runs its SQL statement.  Checks first what the executor checks
 * before any INSERT (read-only transaction, parallel mode).
 */
ResultRelInfo *
consistency_direct_open(Oid relid, int natts, const Oid *types, const bool *isnull)
{
	Relation	rel;
	ResultRelInfo *rri;
	TupleDesc	desc;
	int			i;

	if (XactReadOnly)
		PreventCommandIfReadOnly("INSERT");
	PreventCommandIfParallelMode("INSERT");

	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relam != HEAP_TABLE_AM_OID ||
		rel->trigdesc != NULL ||
		rel->rd_rules != NULL ||
		rel->rd_rel->relispartition ||
		ExecutorCheckPerms_hook != NULL ||
		desc->natts != natts ||
		(desc->constr != NULL && desc->constr->num_check > 0) ||
		TupleConstrHasGenerated(desc->constr) ||
		pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK ||
		check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
	{
		table_close(rel, NoLock);	/* the caller's statement takes it anyway */
		return NULL;
	}
	for (i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || (OidIsValid(types[i]) && att->atttypid != types[i]) ||
			(isnull[i] && att->attnotnull))
		{
			table_close(rel, NoLock);
			return NULL;
		}
	}

	rri = makeNode(ResultRelInfo);
	rri->ri_RangeTableIndex = 1;	/* dummy */
	rri->ri_RelationDesc = rel;
	ExecOpenIndices(rri, false);
	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		if (ii->ii_Expressions != NIL || ii->ii_ExclusionOps != NULL ||
			!rri->ri_IndexRelationDescs[i]->rd_index->indimmediate)
		{
			consistency_direct_close(rri);
			return NULL;
		}
	}
	return rri;
}

/*
 * Close what consistency_direct_open() opened, having written nothing or done.
 * The locks stay to the end of the transaction, as an INSERT statement's lock
 * on its table does (ExecCloseIndices() would release the indexes' locks): a
 * caller that writes again in the same transaction then finds them held,
 * instead of releasing and taking them again (measured: see idempotency.c).
 */
void
consistency_direct_close(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	int			i;

	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		index_insert_cleanup_compat(rri->ri_IndexRelationDescs[i],
									rri->ri_IndexRelationInfo[i]);
		index_close(rri->ri_IndexRelationDescs[i], NoLock);
	}
	pfree(rri);
	table_close(rel, NoLock);
}

/*
 * The entry of the row in slot, stored at tid, in one index of rel, as
 * ExecInsertIndexTuples() makes it: none if the index is not ready for
 * inserts or its predicate excludes the row.  Expressions and predicates are
 * evaluated in *estate, created on first need (the caller frees it).  A
 * unique index is checked as an immediate constraint.
 */
void
consistency_index_entry(Relation rel, Relation idx, IndexInfo *ii, TupleTableSlot *slot,
						ItemPointer tid, EState **estate)
{
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];

	if (!ii->ii_ReadyForInserts)
		return;
	if (*estate == NULL && (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL))
	{
		*estate = CreateExecutorState();
		GetPerTupleExprContext(*estate)->ecxt_scantuple = slot;
	}
	if (ii->ii_Predicate != NIL &&
		!ExecQual(ExecPrepareQual(ii->ii_Predicate, *estate), GetPerTupleExprContext(*estate)))
		return;
	FormIndexDatum(ii, slot, *estate, values, isnull);
	index_insert(idx, values, isnull, tid, rel,
				 idx->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
				 false, ii);
}

/*
 * Insert the row (values/isnull, natts as opened) and its index entries,
 * then close what consistency_direct_open() opened.  The row is visible to
 * the transaction's next command, as after an SPI statement.
 */
void
consistency_direct_insert(ResultRelInfo *rri, Datum *values, bool *isnull)
{
	Relation	rel = rri->ri_RelationDesc;
	HeapTuple	tup;
	TupleTableSlot *slot;
	EState	   *estate = NULL;
	int			i;

	tup = heap_form_tuple(RelationGetDescr(rel), values, isnull);
	simple_heap_insert(rel, tup);

	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tup, slot, false);
	for (i = 0; i < rri->ri_NumIndices; i++)
		consistency_index_entry(rel, rri->ri_IndexRelationDescs[i], rri->ri_IndexRelationInfo[i],
								slot, &tup->t_self, &estate);
	if (estate != NULL)
		FreeExecutorState(estate);
	ExecDropSingleTupleTableSlot(slot);
	heap_freetuple(tup);
	consistency_direct_close(rri);

	CommandCounterIncrement();
}

/*
 * INSERT ... ON CONFLICT (primary key) DO NOTHING of rows into one opened
 * table, for a transaction that does not use a transaction snapshot (READ
 * COMMITTED: a conflicting row committed after the statement began is
 * skipped, not an error).  The steps are ExecInsert()'s for ON CONFLICT DO
 * NOTHING; see the file's header.  What they need (the primary key's unique
 * check operators, an executor state, a slot) is set up once for all the rows
 * of a batch (consistency_direct_new_rows_begin).
 */
struct ConsistencyNewRows
{
	ResultRelInfo *rri;
	List	   *arbiters;
	EState	   *estate;
	TupleTableSlot *slot;
};

/*
 * Set up the rows' inserts into what consistency_direct_open() opened.  NULL,
 * having closed it and done nothing, if the table has no primary key (the
 * caller's SQL statement then reports that).
 */
ConsistencyNewRows *
consistency_direct_new_rows_begin(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	Oid			pkey = RelationGetPrimaryKeyIndex_compat(rel, false);
	ConsistencyNewRows *nr;
	int			i;

	Assert(!IsolationUsesXactSnapshot());
	if (!OidIsValid(pkey))
	{
		consistency_direct_close(rri);
		return NULL;
	}

	/* the unique check's operators, as ExecOpenIndices(..., speculative) gives them */
	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		if (RelationGetRelid(rri->ri_IndexRelationDescs[i]) == pkey &&
			rri->ri_IndexRelationInfo[i]->ii_UniqueOps == NULL)
			BuildSpeculativeIndexInfo(rri->ri_IndexRelationDescs[i],
									  rri->ri_IndexRelationInfo[i]);
	}
	nr = palloc(sizeof(ConsistencyNewRows));
	nr->rri = rri;
	nr->arbiters = list_make1_oid(pkey);
	nr->estate = CreateExecutorState();
	nr->slot = table_slot_create(rel, NULL);
	return nr;
}

/*
 * Insert one row (values/isnull, natts as opened) unless a row with its
 * primary key exists (this transaction's or a committed one).  Returns 1 if
 * it was written (it is visible to the transaction's next command), 0 if not.
 *
 * likely_new: the caller expects no such row (a fresh reservation id), so
 * the row is inserted speculatively without looking first.  The look costs
 * an index scan of its own, more than the insert's own unique check, which
 * finds the same conflicts; a row that does conflict is then killed before
 * anything waits (as when a concurrent insert slips in after the look), and
 * the loop looks as usual.  A duplicate then costs a dead row version.
 */
int
consistency_direct_new_row(ConsistencyNewRows *nr, Datum *values, bool *isnull,
						   bool likely_new)
{
	ResultRelInfo *rri = nr->rri;
	Relation	rel = rri->ri_RelationDesc;
	TupleTableSlot *slot = nr->slot;
	bool		look = !likely_new;

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * RelationGetDescr(rel)->natts);
	memcpy(slot->tts_isnull, isnull, sizeof(bool) * RelationGetDescr(rel)->natts);
	ExecStoreVirtualTuple(slot);

	for (;;)
	{
		ItemPointerData conflictTid;
		uint32		token;
		bool		conflict = false;
		List	   *recheck;

		/* as ExecInsert() allows, in case a bug made this loop forever */
		CHECK_FOR_INTERRUPTS();
		/* waits for a writer in progress of the key, as ON CONFLICT does */
		if (look &&
			!ExecCheckIndexConstraints_compat(rri, slot, nr->estate, &conflictTid, nr->arbiters))
			return 0;
		token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
		table_tuple_insert_speculative(rel, slot, GetCurrentCommandId(true), 0, NULL, token);
		recheck = ExecInsertIndexTuples_compat(rri, slot, nr->estate, false, true, &conflict,
											   nr->arbiters);
		table_tuple_complete_speculative(rel, slot, token, !conflict);
		/* whoever waits for the token now sees a plain row, or a dead one */
		SpeculativeInsertionLockRelease(GetCurrentTransactionId());
		list_free(recheck);
		ResetPerTupleExprContext(nr->estate);
		if (!conflict)
		{
			CommandCounterIncrement();
			return 1;
		}
		/* the key was there, or a concurrent insert of it got in first: look again */
		look = true;
	}
}

/* Free what consistency_direct_new_rows_begin() set up, and close the table. */
void
consistency_direct_new_rows_end(ConsistencyNewRows *nr)
{
	ExecDropSingleTupleTableSlot(nr->slot);
	FreeExecutorState(nr->estate);
	list_free(nr->arbiters);
	consistency_direct_close(nr->rri);
	pfree(nr);
}

/*
 * One row, as consistency_direct_new_row() without likely_new, then close
 * what consistency_direct_open() opened.  1 written, 0 a row with its primary
 * key exists, -1, having done nothing, if the table has no primary key.
 */
int
consistency_direct_insert_new(ResultRelInfo *rri, Datum *values, bool *isnull)
{
	ConsistencyNewRows *nr = consistency_direct_new_rows_begin(rri);
	int			result;

	if (nr == NULL)
		return -1;
	result = consistency_direct_new_row(nr, values, isnull, false);
	consistency_direct_new_rows_end(nr);
	return result;
}
