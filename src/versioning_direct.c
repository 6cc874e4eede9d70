/*-------------------------------------------------------------------------
 *
 * versioning_direct.c
 *	  update_versioned's UPDATE without the executor, on a plain table.
 *
 * update_versioned() runs one prepared statement per call,
 *
 *	 UPDATE ONLY t SET c1 = $1, ..., v = v + 1 WHERE k1 = $m+1 AND ... AND v = $n
 *
 * and, called from SQL, the caller's own statement already went through the
 * executor once: through SPI the UPDATE costs a second executor start, a
 * ModifyTable node, a projection and its end, more than the heap and index
 * work.  On a table where the statement could do nothing else, this file
 * does what the executor does for it, and no more: find the row by its
 * primary key under a new snapshot, test the version, form the new row,
 * heap_update() it (waiting for a concurrent writer as the statement would)
 * and insert index entries when the update was not heap-only (those two
 * steps: direct_update.c, shared with inventory_direct.c).
 *
 * "Could do nothing else" is decided once per prepared statement (again
 * after every relcache invalidation of the table, which marks the statement
 * stale): an ordinary heap table, not a partition, a system catalog (a
 * superuser may update one; the executor does what catalogs need and
 * heap_update() alone does not: on 18, the tuple lock that in-place updates
 * of pg_class and pg_database wait for) nor another session's temporary
 * table, without triggers (which include foreign keys, either
 * side), rules, row-level security, CHECK constraints or generated columns,
 * whose indexes are all immediate and none for an exclusion constraint (an
 * identity column cannot be set: preparing the statement fails first, 428C9);
 * and primary-key columns whose type is the index's operator class type or
 * binary-coercible to it, so that the index's own equality function compares
 * them, as the statement's operator does.  Unique indexes are checked as the
 * statement checks them (23505).  On every call: the caller holds SELECT and
 * UPDATE on the whole table (column privileges are the statement's to
 * check), no ExecutorCheckPerms_hook (sepgsql) is installed, the new row has
 * no NULL in a NOT NULL column, and the transaction is READ COMMITTED,
 * read-write and not parallel.  Otherwise, and when the row was updated or
 * deleted by a concurrent transaction that committed while this one waited
 * (the statement would re-check the newest version, EvalPlanQual), it
 * answers "not done, nothing changed" and update_versioned runs its
 * statement, which honours whatever the table has.
 *
 * Nothing but statistics tells the two apart: the row, its index entries,
 * the WAL, the locks and the errors are the statement's.  What does not see
 * the direct update is what hooks statements: pg_stat_statements with
 * track = all and auto_explain's nested statements (pgaudit's object audit
 * installs ExecutorCheckPerms_hook, which switches the direct path off).
 * consistency.update_versioned_direct = off (any user) switches it off too.
 *
 * IDENTIFICATION
 *	  src/versioning_direct.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_index.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "consistency.h"
#include "versioning.h"

/* GUC consistency.update_versioned_direct */
static bool direct_enabled = true;

void
consistency_versioning_direct_init(void)
{
	DefineCustomBoolVariable("consistency.update_versioned_direct",
							 "Lets update_versioned() update a plain table without the executor.",
							 "When off, every update_versioned() call runs its UPDATE statement "
							 "through SPI, as statement hooks (pg_stat_statements' track = all) "
							 "expect.",
							 &direct_enabled,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}

/*
 * May update_versioned's statement on rel, finding the row by its primary
 * key pkoid, be done here?  Fills *plan; plan->usable says.  rel is open.
 */
void
versioning_direct_plan(Relation rel, Oid pkoid, VersioningDirectPlan *plan)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TupleConstr *constr = desc->constr;
	Relation	pk;
	List	   *indexes;
	ListCell   *lc;
	bool		ok;
	int			i;

	memset(plan, 0, sizeof(*plan));
	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relam != HEAP_TABLE_AM_OID ||
		rel->rd_rel->relispartition ||
		IsCatalogRelation(rel) ||
		RELATION_IS_OTHER_TEMP(rel) ||
		rel->trigdesc != NULL ||
		rel->rd_rules != NULL ||
		rel->rd_rel->relrowsecurity ||
		TupleConstrHasGenerated(constr) ||
		(constr != NULL && constr->num_check > 0))
		return;
	indexes = RelationGetIndexList(rel);
	ok = true;
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);

		if (!idx->rd_index->indimmediate || idx->rd_index->indisexclusion)
			ok = false;
		index_close(idx, AccessShareLock);
		if (!ok)
			break;
	}
	list_free(indexes);
	if (!ok)
		return;

	pk = index_open(pkoid, AccessShareLock);
	plan->nkeys = IndexRelationGetNumberOfKeyAttributes(pk);
	for (i = 0; ok && i < plan->nkeys; i++)
	{
		AttrNumber	attnum = pk->rd_index->indkey.values[i];
		Oid			coltype = getBaseType(TupleDescAttr(desc, attnum - 1)->atttypid);
		Oid			opcintype = pk->rd_opcintype[i];
		Oid			eqop;

		eqop = get_opfamily_member(pk->rd_opfamily[i], opcintype, opcintype,
								   BTEqualStrategyNumber);
		if (pk->rd_rel->relam != BTREE_AM_OID || attnum <= 0 || !OidIsValid(eqop) ||
			(coltype != opcintype && !IsBinaryCoercible(coltype, opcintype)))
			ok = false;
		else
		{
			plan->keyproc[i] = get_opcode(eqop);
			plan->keycoll[i] = pk->rd_indcollation[i];
		}
	}
	index_close(pk, AccessShareLock);
	plan->pkey = pkoid;
	plan->usable = ok;
}

/*
 * The statement's work on the row found: its version test, the new row,
 * heap_update() and the index entries.  Returns as versioning_direct_update().
 */
static int
update_found_row(Relation rel, TupleTableSlot *found, void *arg)
{
	const VersioningDirectRow *row = arg;
	int			ncols = row->nchanges + 1;
	int		   *cols = palloc(sizeof(int) * ncols);
	Datum	   *values = palloc(sizeof(Datum) * ncols);
	bool	   *nulls = palloc(sizeof(bool) * ncols);
	bool		isnull;
	Datum		d;
	int			i;

	/* "AND v = $n": a NULL or another version matches no row */
	d = slot_getattr(found, row->vattnum, &isnull);
	if (isnull || versioning_datum_get(d, row->vtypid) != row->expected)
		return 0;

	/* the SET list; the caller checked that expected + 1 fits */
	for (i = 0; i < row->nchanges; i++)
	{
		cols[i] = row->changed[i];
		values[i] = row->values[i];
		nulls[i] = row->nulls[i];
	}
	cols[ncols - 1] = row->vattnum;
	values[ncols - 1] = versioning_datum_make(row->expected + 1, row->vtypid);
	nulls[ncols - 1] = false;

	/* -1: a NULL in a NOT NULL column, or a concurrent writer committed */
	return consistency_direct_update_row(rel, found, ncols, cols, values, nulls, true);
}

/*
 * Run update_versioned's statement for row on rel (open, RowExclusiveLock)
 * as planned: 1 if the row was updated to version expected + 1 (visible to
 * the transaction's next command), 0 if the statement would update no row
 * (none with the key, or not at the expected version), -1 if this cannot be
 * done here (see the file's header), having changed nothing.
 */
int
versioning_direct_update(Relation rel, const VersioningDirectPlan *plan,
						 const VersioningDirectRow *row)
{
	Relation	pk;
	ScanKeyData skey[INDEX_MAX_KEYS];
	int			result;
	int			i;

	Assert(plan->usable);
	if (!direct_enabled || IsolationUsesXactSnapshot() || XactReadOnly || IsInParallelMode() ||
		ExecutorCheckPerms_hook != NULL ||
		pg_class_aclmask(RelationGetRelid(rel), GetUserId(), ACL_SELECT | ACL_UPDATE,
						 ACLMASK_ALL) != (ACL_SELECT | ACL_UPDATE))
		return -1;
	/* a table in a publication of updates needs its replica identity (55000) */
	CheckCmdReplicaIdentity(rel, CMD_UPDATE);

	/* as the statement locks it */
	pk = index_open(plan->pkey, RowExclusiveLock);

	for (i = 0; i < plan->nkeys; i++)
		ScanKeyEntryInitialize(&skey[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   plan->keycoll[i], plan->keyproc[i], row->keys[i]);
	result = consistency_direct_update_by_key(rel, pk, plan->nkeys, skey, update_found_row,
											  unconstify(VersioningDirectRow *, row));
	index_close(pk, NoLock);
	return result;
}
