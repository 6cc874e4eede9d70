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
 * INSERT ... ON CONFLICT (primary key) DO NOTHING of the row (values/isnull,
 * natts as opened), for a transaction that does not use a transaction
 * snapshot (READ COMMITTED: a conflicting row committed after the statement
 * began is skipped, not an error).  The steps are ExecInsert()'s for
 * ON CONFLICT DO NOTHING; see the file's header.  Closes what
 * consistency_direct_open() opened.  Returns 1 if the row was written (it
 * is visible to the transaction's next command), 0 if a row with its
 * primary key exists (this transaction's or a committed one), -1, having
 * done nothing, if the table has no primary key (the caller's SQL statement
 * then reports that).
 */
int
consistency_direct_insert_new(ResultRelInfo *rri, Datum *values, bool *isnull)
{
	Relation	rel = rri->ri_RelationDesc;
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			pkey = RelationGetPrimaryKeyIndex_compat(rel, false);
	List	   *arbiters;
	EState	   *estate;
	TupleTableSlot *slot;
	int			result = -1;
	int			i;

	Assert(!IsolationUsesXactSnapshot());
	if (!OidIsValid(pkey))
		goto done;

	/* the unique check's operators, as ExecOpenIndices(..., speculative) gives them */
	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		if (RelationGetRelid(rri->ri_IndexRelationDescs[i]) == pkey &&
			rri->ri_IndexRelationInfo[i]->ii_UniqueOps == NULL)
			BuildSpeculativeIndexInfo(rri->ri_IndexRelationDescs[i],
									  rri->ri_IndexRelationInfo[i]);
	}
	arbiters = list_make1_oid(pkey);
	estate = CreateExecutorState();
	slot = table_slot_create(rel, NULL);
	memcpy(slot->tts_values, values, sizeof(Datum) * desc->natts);
	memcpy(slot->tts_isnull, isnull, sizeof(bool) * desc->natts);
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
		if (!ExecCheckIndexConstraints_compat(rri, slot, estate, &conflictTid, arbiters))
		{
			result = 0;
			break;
		}
		token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
		table_tuple_insert_speculative(rel, slot, GetCurrentCommandId(true), 0, NULL, token);
		recheck = ExecInsertIndexTuples_compat(rri, slot, estate, false, true, &conflict,
											   arbiters);
		table_tuple_complete_speculative(rel, slot, token, !conflict);
		/* whoever waits for the token now sees a plain row, or a dead one */
		SpeculativeInsertionLockRelease(GetCurrentTransactionId());
		list_free(recheck);
		ResetPerTupleExprContext(estate);
		if (!conflict)
		{
			result = 1;
			break;
		}
		/* a concurrent insert of the key got in first: look again */
	}

	ExecDropSingleTupleTableSlot(slot);
	FreeExecutorState(estate);
	list_free(arbiters);
done:
	consistency_direct_close(rri);
	if (result == 1)
		CommandCounterIncrement();
	return result;
}
