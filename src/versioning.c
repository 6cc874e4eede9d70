/*-------------------------------------------------------------------------
 *
 * versioning.c
 *	  Optimistic versioning, trigger mode: the version_guard trigger,
 *	  enable_versioning and disable_versioning, the conflict error and the
 *	  consistency.version_conflict_sqlstate GUC.
 *
 * A client sends back the version it read: UPDATE t SET price = 10,
 * version = 7 WHERE id = 1.  version_guard (BEFORE UPDATE FOR EACH ROW)
 * compares NEW.version with OLD.version: equal means the client saw the
 * current row, and NEW.version becomes OLD.version + 1; different means
 * someone else wrote the row since, and the update fails with a conflict.
 *
 * Under READ COMMITTED, an UPDATE that waited for a concurrent writer re-runs
 * on the newest row version (EvalPlanQual) before BEFORE ROW triggers fire:
 * the trigger then sees the new OLD and the client's stale NEW, and
 * conflicts.  Under REPEATABLE READ PostgreSQL itself raises 40001 first.
 *
 * Mode 'increment' (trigger argument 'increment') is the convention of ORMs
 * (SQLAlchemy's version_id_col, Hibernate/JPA @Version, Rails lock_version):
 * the client sends the version it read plus one, SET version = 8 WHERE
 * version = 7.  NEW.version = OLD.version + 1 is accepted and stored as sent;
 * anything else, the read convention's NEW = OLD included, is a conflict.
 * Mode 'read' (no argument: every 1.0 trigger) is the convention above.
 *
 * Strict mode (trigger argument 'strict') also rejects an UPDATE whose SET
 * list omits the version column, using the updated-columns set the trigger
 * manager passes to C triggers (tg_updatedcols), so an ORM's bulk UPDATE
 * cannot bypass the check.  Without it, such an UPDATE is taken as made
 * against the current row and bumps the version, in either mode.
 *
 * For MERGE, tg_updatedcols is the union of all its UPDATE actions' SET
 * lists, and nothing tells the trigger which action fired.  A MERGE whose
 * UPDATE actions set the version column in some but not all would have its
 * other actions' rows taken for checked ones: accepted unchecked in strict
 * mode, refused as stale for ever in mode 'increment'.  An ExecutorStart
 * hook refuses such a MERGE on a strict or 'increment' table before it runs
 * (merge_check_*); it can only do so once the library is loaded, so with
 * shared_preload_libraries or session_preload_libraries always, otherwise
 * from the first call of one of its functions in the session on.
 *
 * IDENTIFICATION
 *	  src/versioning.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/heap.h"
#include "catalog/objectaddress.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "consistency.h"
#include "stats.h"
#include "versioning.h"

PG_FUNCTION_INFO_V1(consistency_version_guard);
PG_FUNCTION_INFO_V1(consistency_enable_versioning);
PG_FUNCTION_INFO_V1(consistency_enable_versioning_1_1);
PG_FUNCTION_INFO_V1(consistency_disable_versioning);

/* GUC consistency.version_conflict_sqlstate */
typedef enum ConflictSqlstate
{
	CONFLICT_SERIALIZATION_FAILURE,		/* 40001: retry the transaction */
	CONFLICT_VERSION_CONFLICT	/* YC101: tell the client (HTTP 412) */
} ConflictSqlstate;

static const struct config_enum_entry conflict_sqlstate_options[] = {
	{"40001", CONFLICT_SERIALIZATION_FAILURE, false},
	{"YC101", CONFLICT_VERSION_CONFLICT, false},
	{"serialization_failure", CONFLICT_SERIALIZATION_FAILURE, true},
	{"version_conflict", CONFLICT_VERSION_CONFLICT, true},
	{NULL, 0, false}
};

static int	conflict_sqlstate = CONFLICT_SERIALIZATION_FAILURE;

/* The row update_versioned is writing right now, if any (see versioning.h). */
static VersioningExpectation expectation;

/* ----------------------------------------------------------------
 * Shared with versioning_update.c
 * ----------------------------------------------------------------
 */

AttrNumber
versioning_column(Relation rel, const char *colname, Oid *typid)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), colname) != 0)
			continue;
		if (att->attgenerated)
			ereport(ERROR,
					(errcode(ERRCODE_GENERATED_ALWAYS),
					 errmsg("version column \"%s\" of table \"%s\" is a generated column",
							colname, RelationGetRelationName(rel)),
					 errtablecol(rel, att->attnum)));
		if (att->atttypid != INT8OID && att->atttypid != INT4OID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("version column \"%s\" of table \"%s\" has type %s",
							colname, RelationGetRelationName(rel),
							format_type_be(att->atttypid)),
					 errdetail("A version column must be of type bigint or integer."),
					 errtablecol(rel, att->attnum)));
		*typid = att->atttypid;
		return att->attnum;
	}
	if (SystemAttributeByName(colname) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("system column \"%s\" cannot be a version column", colname),
				 errtable(rel)));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("version column \"%s\" of table \"%s\" does not exist",
					colname, RelationGetRelationName(rel)),
			 errhint("consistency.enable_versioning() adds it."),
			 errtable(rel)));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

int64
versioning_datum_get(Datum d, Oid typid)
{
	return typid == INT8OID ? DatumGetInt64(d) : (int64) DatumGetInt32(d);
}

Datum
versioning_datum_make(int64 v, Oid typid)
{
	return typid == INT8OID ? Int64GetDatum(v) : Int32GetDatum((int32) v);
}

int64
versioning_max(Oid typid)
{
	return typid == INT8OID ? PG_INT64_MAX : (int64) PG_INT32_MAX;
}

/* The SQLSTATE of a version conflict: consistency.version_conflict_sqlstate. */
static int
conflict_errcode(void)
{
	return conflict_sqlstate == CONFLICT_VERSION_CONFLICT ?
		ERRCODE_CONSISTENCY_VERSION_CONFLICT : ERRCODE_T_R_SERIALIZATION_FAILURE;
}

void
versioning_report_conflict(Relation rel, AttrNumber attnum, int64 expected, int64 found)
{
	ereport(ERROR,
			(errcode(conflict_errcode()),
			 errmsg("version conflict on table \"%s\"", RelationGetRelationName(rel)),
			 errdetail("expected version %lld, found %lld",
					   (long long) expected, (long long) found),
			 errhint("Another transaction updated the row after it was read: read it again and retry with its current version."),
			 errtablecol(rel, attnum)));
}

/*
 * The conflict of mode 'increment': the client sent "sent", which should be
 * the version it read plus one.  The type's smallest value is one past no
 * version at all, so that conflict cannot name the version read.
 */
static void
report_increment_conflict(Relation rel, AttrNumber attnum, int64 sent, int64 found,
						  Oid typid)
{
	int64		read;

	if (!pg_sub_s64_overflow(sent, 1, &read) &&
		!(typid == INT4OID && sent == (int64) PG_INT32_MIN))
		versioning_report_conflict(rel, attnum, read, found);
	ereport(ERROR,
			(errcode(conflict_errcode()),
			 errmsg("version conflict on table \"%s\"", RelationGetRelationName(rel)),
			 errdetail("The new version %lld is not a version plus one; the stored version is %lld.",
					   (long long) sent, (long long) found),
			 errhint("Send the version the row was read with plus one."),
			 errtablecol(rel, attnum)));
}

void
versioning_report_overflow(Relation rel, AttrNumber attnum, int64 version)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);

	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("version column \"%s\" of table \"%s\" cannot go past %lld",
					NameStr(TupleDescAttr(tupdesc, attnum - 1)->attname),
					RelationGetRelationName(rel), (long long) version),
			 errdetail("Versions never wrap around."),
			 errtablecol(rel, attnum)));
}

void
versioning_expect_update(Oid relid, const char *column, int64 expected,
						 VersioningExpectation *saved)
{
	*saved = expectation;
	expectation.active = true;
	expectation.relid = relid;
	namestrcpy(&expectation.column, column);
	expectation.expected = expected;
}

void
versioning_expect_restore(const VersioningExpectation *saved)
{
	expectation = *saved;
}

/*
 * Is this the row update_versioned announced?  If so, consume the
 * announcement: it covers exactly one row.
 */
static bool
expected_update(Relation rel, const char *column, int64 oldv, int64 newv)
{
	if (!expectation.active || oldv != expectation.expected ||
		newv != oldv + 1 || strcmp(NameStr(expectation.column), column) != 0)
		return false;
	if (RelationGetRelid(rel) != expectation.relid &&
		!(rel->rd_rel->relispartition &&
		  list_member_oid(get_partition_ancestors(RelationGetRelid(rel)),
						  expectation.relid)))
		return false;
	expectation.active = false;
	return true;
}

/* ----------------------------------------------------------------
 * The trigger
 * ----------------------------------------------------------------
 */

/* A version_guard trigger's arguments. */
typedef struct GuardArgs
{
	const char *column;
	bool		strict;
	bool		increment;		/* mode 'increment', else 'read' */
} GuardArgs;

/*
 * Parse trigger tg's arguments into *args.  Bad arguments are 39P01 when
 * report is true; otherwise the result is false.
 */
static bool
guard_args(const Trigger *tg, Relation rel, bool report, GuardArgs *args)
{
	const char *mode = NULL;
	int			i;

	args->column = "version";
	args->strict = false;
	if (tg->tgnargs > 3)
	{
		if (!report)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" has %d arguments",
						tg->tgname, RelationGetRelationName(rel), tg->tgnargs),
				 errdetail("consistency.version_guard() takes at most three: the version column name, then 'strict' and a mode ('read' or 'increment'), in either order.")));
	}
	if (tg->tgnargs >= 1)
		args->column = tg->tgargs[0];
	for (i = 1; i < tg->tgnargs; i++)
	{
		const char *arg = tg->tgargs[i];
		bool		is_mode = (pg_strcasecmp(arg, "read") == 0 ||
							   pg_strcasecmp(arg, "increment") == 0);

		if (!is_mode && pg_strcasecmp(arg, "strict") != 0)
		{
			if (!report)
				return false;
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("invalid argument \"%s\" of trigger \"%s\" on table \"%s\"",
							arg, tg->tgname, RelationGetRelationName(rel)),
					 errdetail("After the version column, consistency.version_guard() accepts only 'strict', 'read' and 'increment'.")));
		}
		if (is_mode ? mode != NULL : args->strict)
		{
			if (!report)
				return false;
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" on table \"%s\" gives %s twice",
							tg->tgname, RelationGetRelationName(rel),
							is_mode ? "a mode" : "'strict'"),
					 errdetail("consistency.version_guard() takes 'strict' once and one mode, 'read' or 'increment'.")));
		}
		if (is_mode)
			mode = arg;
		else
			args->strict = true;
	}
	args->increment = (mode != NULL && pg_strcasecmp(mode, "increment") == 0);
	return true;
}

/* A trigger's arguments, parsed and checked; cached in fn_extra per query. */
typedef struct GuardConfig
{
	Oid			tgoid;
	Oid			relid;
	AttrNumber	attnum;
	Oid			typid;
	bool		strict;
	bool		increment;		/* mode 'increment', else 'read' */
	const char *column;
} GuardConfig;

static GuardConfig *
guard_config(FunctionCallInfo fcinfo, TriggerData *td)
{
	GuardConfig *cfg = (GuardConfig *) fcinfo->flinfo->fn_extra;
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	GuardArgs	args;

	if (cfg != NULL && cfg->tgoid == tg->tgoid && cfg->relid == RelationGetRelid(rel))
		return cfg;

	(void) guard_args(tg, rel, true, &args);
	cfg = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(GuardConfig));
	cfg->tgoid = tg->tgoid;
	cfg->relid = RelationGetRelid(rel);
	cfg->attnum = versioning_column(rel, args.column, &cfg->typid);
	cfg->strict = args.strict;
	cfg->increment = args.increment;
	cfg->column = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, args.column);
	fcinfo->flinfo->fn_extra = cfg;
	return cfg;
}

/*
 * A copy of tuple with its version attribute set to v.
 *
 * When the attribute is stored in the tuple (not null, and not a "missing"
 * attribute of a row older than the column's fast default), its bytes are
 * overwritten in a flat copy: one allocation and memcpy instead of deforming
 * and re-forming the whole row.  The offset is found the way
 * heap_deform_tuple finds it.  Otherwise heap_modify_tuple_by_cols.
 */
static HeapTuple
set_version(HeapTuple tuple, TupleDesc tupdesc, const GuardConfig *cfg, int64 v)
{
	HeapTupleHeader th = tuple->t_data;
	int			target = cfg->attnum - 1;
	bool		hasnulls = HeapTupleHasNulls(tuple);

	if (target < HeapTupleHeaderGetNatts(th) && !(hasnulls && att_isnull(target, th->t_bits)))
	{
		char	   *tp = (char *) th + th->t_hoff;
		uint32		off = 0;
		HeapTuple	copy;
		char	   *dest;
		int			i;

		for (i = 0; i < target; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);

			if (hasnulls && att_isnull(i, th->t_bits))
				continue;
			off = att_align_pointer(off, att->attalign, att->attlen, tp + off);
			off = att_addlength_pointer(off, att->attlen, tp + off);
		}
		off = att_align_nominal(off, TupleDescAttr(tupdesc, target)->attalign);

		copy = heap_copytuple(tuple);
		dest = (char *) copy->t_data + th->t_hoff + off;
		if (cfg->typid == INT8OID)
			memcpy(dest, &v, sizeof(int64));
		else
		{
			int32		v32 = (int32) v;

			memcpy(dest, &v32, sizeof(int32));
		}
		return copy;
	}
	else
	{
		Datum		value = versioning_datum_make(v, cfg->typid);
		bool		isnull = false;
		int			col = cfg->attnum;

		return heap_modify_tuple_by_cols(tuple, tupdesc, 1, &col, &value, &isnull);
	}
}

Datum
consistency_version_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	GuardConfig *cfg;
	Relation	rel;
	TupleDesc	tupdesc;
	Datum		d;
	bool		isnull;
	int64		oldv;
	int64		newv;
	bool		set_by_statement;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("consistency.version_guard() can only be called as a trigger")));
	td = (TriggerData *) fcinfo->context;
	rel = td->tg_relation;
	if (!TRIGGER_FIRED_BY_UPDATE(td->tg_event) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be BEFORE UPDATE ... FOR EACH ROW",
						td->tg_trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Use consistency.enable_versioning() to install it.")));

	cfg = guard_config(fcinfo, td);
	tupdesc = RelationGetDescr(rel);
	set_by_statement = bms_is_member(cfg->attnum - FirstLowInvalidHeapAttributeNumber,
									 td->tg_updatedcols);

	/* Strict: the statement must have set the version column itself. */
	if (cfg->strict && !set_by_statement)
	{
		consistency_count(CSTAT_VER_CHECKED);
		consistency_count(CSTAT_VER_STRICT_REFUSED);
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_VERSION_NOT_SET),
				 errmsg("UPDATE of table \"%s\" must set version column \"%s\"",
						RelationGetRelationName(rel), cfg->column),
				 errdetail("Versioning on this table is strict: every UPDATE states the version it read."),
				 cfg->increment ?
				 errhint("Add \"%s = <version read> + 1\" to the SET list (mode 'increment').", cfg->column) :
				 errhint("Add \"%s = <version read>\" to the SET list.", cfg->column),
				 errtablecol(rel, cfg->attnum)));
	}

	d = heap_getattr(td->tg_trigtuple, cfg->attnum, tupdesc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stored version in column \"%s\" of table \"%s\" is null",
						cfg->column, RelationGetRelationName(rel)),
				 errhint("Give every row a version and make the column NOT NULL DEFAULT 1."),
				 errtablecol(rel, cfg->attnum)));
	oldv = versioning_datum_get(d, cfg->typid);

	d = heap_getattr(td->tg_newtuple, cfg->attnum, tupdesc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("new version in column \"%s\" of table \"%s\" is null",
						cfg->column, RelationGetRelationName(rel)),
				 errhint("Set the version column to the version the row was read with."),
				 errtablecol(rel, cfg->attnum)));
	newv = versioning_datum_get(d, cfg->typid);

	/*
	 * Mode 'increment', version set by the statement: the client read
	 * NEW - 1, so NEW = OLD + 1 is accepted as it is.  (That is also the row
	 * update_versioned announced, if it did: the announcement is used up.)
	 * An UPDATE that does not set the version is bumped below, as in mode
	 * 'read'.
	 */
	if (cfg->increment && set_by_statement)
	{
		if (oldv < versioning_max(cfg->typid) && newv == oldv + 1)
		{
			/* update_versioned counted its own row. */
			if (!expected_update(rel, cfg->column, oldv, newv))
				consistency_count(CSTAT_VER_CHECKED);
			return PointerGetDatum(td->tg_newtuple);
		}
		consistency_count(CSTAT_VER_CHECKED);
		consistency_count(CSTAT_VER_CONFLICT);
		report_increment_conflict(rel, cfg->attnum, newv, oldv, cfg->typid);
	}

	if (newv != oldv)
	{
		/* update_versioned checked and bumped this row itself. */
		if (expected_update(rel, cfg->column, oldv, newv))
			return PointerGetDatum(td->tg_newtuple);
		consistency_count(CSTAT_VER_CHECKED);
		consistency_count(CSTAT_VER_CONFLICT);
		versioning_report_conflict(rel, cfg->attnum, newv, oldv);
	}
	consistency_count(CSTAT_VER_CHECKED);

	if (oldv >= versioning_max(cfg->typid))
		versioning_report_overflow(rel, cfg->attnum, oldv);

	return PointerGetDatum(set_version(td->tg_newtuple, tupdesc, cfg, oldv + 1));
}

/* ----------------------------------------------------------------
 * MERGE: one set of updated columns for all its UPDATE actions
 * ----------------------------------------------------------------
 */

static ExecutorStart_hook_type prev_ExecutorStart = NULL;

/* Is trigger tg enabled for this session, as TriggerEnabled() decides? */
static bool
trigger_fires(const Trigger *tg)
{
	if (tg->tgenabled == TRIGGER_DISABLED)
		return false;
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return tg->tgenabled != TRIGGER_FIRES_ON_ORIGIN;
	return tg->tgenabled != TRIGGER_FIRES_ON_REPLICA;
}

/* Is function foid this library's version_guard()? */
static bool
is_version_guard(Oid foid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(foid));
	bool		result = false;

	if (!HeapTupleIsValid(tup))
		return false;
	if (((Form_pg_proc) GETSTRUCT(tup))->prolang == ClanguageId)
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);

		result = !isnull && strcmp(TextDatumGetCString(src), "consistency_version_guard") == 0;
	}
	ReleaseSysCache(tup);
	return result;
}

/*
 * A MERGE is about to update rri's table.  For each version_guard trigger of
 * the table in strict mode or mode 'increment', the statement's UPDATE
 * actions must set its version column in all of them or in none: the trigger
 * sees their SET lists as one (tg_updatedcols is their union), so it would
 * take an action that does not set the version for one that does.
 */
static void
merge_check_target(ResultRelInfo *rri)
{
	TriggerDesc *trigdesc = rri->ri_TrigDesc;
	Relation	rel = rri->ri_RelationDesc;
	int			i;

	if (trigdesc == NULL || !trigdesc->trig_update_before_row)
		return;
	for (i = 0; i < trigdesc->numtriggers; i++)
	{
		Trigger    *tg = &trigdesc->triggers[i];
		GuardArgs	args;
		AttrNumber	attnum;
		int			nupdate = 0;
		int			nset = 0;
		int			k;

		if (!TRIGGER_FOR_ROW(tg->tgtype) || !TRIGGER_FOR_BEFORE(tg->tgtype) ||
			!TRIGGER_FOR_UPDATE(tg->tgtype) || !trigger_fires(tg) ||
			!is_version_guard(tg->tgfoid))
			continue;
		/* bad arguments or column: the trigger reports them if it fires */
		if (!guard_args(tg, rel, false, &args) || (!args.strict && !args.increment))
			continue;
		attnum = get_attnum(RelationGetRelid(rel), args.column);
		if (attnum <= 0)
			continue;

		for (k = 0; k < MERGE_ACTION_LISTS; k++)
		{
			ListCell   *lc;

			foreach(lc, ResultRelInfoMergeActions(rri, k))
			{
				MergeAction *action = ((MergeActionState *) lfirst(lc))->mas_action;

				if (action->commandType != CMD_UPDATE)
					continue;
				nupdate++;
				if (list_member_int(action->updateColnos, attnum))
					nset++;
			}
		}
		if (nset == 0 || nset == nupdate)
			continue;

		if (args.strict)
		{
			consistency_count(CSTAT_VER_STRICT_REFUSED);
			ereport(ERROR,
					(errcode(ERRCODE_CONSISTENCY_VERSION_NOT_SET),
					 errmsg("every UPDATE action of a MERGE on table \"%s\" must set version column \"%s\"",
							RelationGetRelationName(rel), args.column),
					 errdetail("Versioning on this table is strict. The trigger sees the columns set by a MERGE's UPDATE actions as one set, so it cannot check the actions that leave the version out while another sets it."),
					 args.increment ?
					 errhint("Add \"%s = <version read> + 1\" to every UPDATE action (mode 'increment').", args.column) :
					 errhint("Add \"%s = <version read>\" to every UPDATE action.", args.column),
					 errtablecol(rel, attnum)));
		}
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the UPDATE actions of a MERGE on table \"%s\" must set version column \"%s\" in all or none of them",
						RelationGetRelationName(rel), args.column),
				 errdetail("In mode 'increment' an UPDATE that leaves the version out is bumped. The trigger sees the columns set by a MERGE's UPDATE actions as one set, so it would take the actions that leave the version out for stale ones while another sets it."),
				 errhint("Add \"%s = %s + 1\" to the UPDATE actions that do not check the version.",
						 quote_identifier(args.column), quote_identifier(args.column)),
				 errtablecol(rel, attnum)));
	}
}

static void
merge_check_modifytable(ModifyTableState *mtstate)
{
	int			i;

	if (mtstate->operation != CMD_MERGE)
		return;
	for (i = 0; i < mtstate->mt_nrels; i++)
		merge_check_target(&mtstate->resultRelInfo[i]);
}

/*
 * ExecutorStart: check every MERGE of the statement, the top-level one and
 * those of its WITH clause, once their targets are open.
 */
static void
versioning_executor_start(QueryDesc *queryDesc, int eflags)
{
	ListCell   *lc;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0 ||
		(queryDesc->operation != CMD_MERGE && !queryDesc->plannedstmt->hasModifyingCTE))
		return;
	if (queryDesc->planstate != NULL && IsA(queryDesc->planstate, ModifyTableState))
		merge_check_modifytable((ModifyTableState *) queryDesc->planstate);
	foreach(lc, queryDesc->estate->es_auxmodifytables)
		merge_check_modifytable((ModifyTableState *) lfirst(lc));
}

/* ----------------------------------------------------------------
 * enable_versioning / disable_versioning
 * ----------------------------------------------------------------
 */

/*
 * May the current user run the DDL on relid?  Owner only, or anyone with the
 * TRIGGER privilege (owners have it).  42P01 if there is no such relation.
 */
static void
check_ddl_privilege(Oid relid, bool owner_only)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (owner_only)
	{
		if (!object_ownercheck(RelationRelationId, relid, GetUserId()))
			aclcheck_error(ACLCHECK_NOT_OWNER,
						   get_relkind_objtype(get_rel_relkind(relid)), relname);
	}
	else
	{
		AclResult	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER);

		if (aclresult != ACLCHECK_OK)
			aclcheck_error(aclresult, get_relkind_objtype(get_rel_relkind(relid)),
						   relname);
	}
}

/*
 * Open rel for DDL.  The privilege is checked before the lock is taken, as
 * RangeVarCallbackOwnsTable() does for ALTER TABLE, so that a user who may not
 * run the DDL never holds, nor queues for, a lock that blocks the table's
 * readers; and checked again once it is held, in case the relation was dropped
 * or changed hands meanwhile.
 */
static Relation
open_for_ddl(Oid relid, LOCKMODE lockmode, bool owner_only)
{
	Relation	rel;
	char		relkind = get_rel_relkind(relid);

	/* what it is first: a view or sequence is 42809 whoever owns it */
	if (relkind != '\0' && relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(relid)),
				 errdetail("Versioning works on ordinary and partitioned tables.")));
	check_ddl_privilege(relid, owner_only);
	LockRelationOid(relid, lockmode);
	check_ddl_privilege(relid, owner_only);
	rel = table_open(relid, NoLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("Versioning works on ordinary and partitioned tables.")));
	return rel;
}

static char *
qualified_name(Relation rel)
{
	return quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									  RelationGetRelationName(rel));
}

static void
run_ddl(const char *sql)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc < 0)
		elog(ERROR, "SPI_execute failed for \"%s\": %s", sql, SPI_result_code_string(rc));
}

/*
 * The partitioned table whose enable_versioning() gave partition relid its
 * guard trigger, following the chain of clones up (a sub-partition's trigger
 * is a clone of a clone); InvalidOid when relid's trigger is its own, or it
 * has none.
 */
static Oid
guard_cloned_from(Oid relid)
{
	Oid			tgoid = get_trigger_oid(relid, VERSION_GUARD_TRIGGER, true);
	Oid			owner = InvalidOid;
	Relation	tgrel;

	if (!OidIsValid(tgoid))
		return InvalidOid;
	tgrel = table_open(TriggerRelationId, AccessShareLock);
	while (OidIsValid(tgoid))
	{
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;
		Form_pg_trigger tg;

		ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(tgoid));
		scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "could not find tuple for trigger %u", tgoid);
		tg = (Form_pg_trigger) GETSTRUCT(tup);
		if (tg->tgrelid != relid)
			owner = tg->tgrelid;
		tgoid = tg->tgparentid;
		systable_endscan(scan);
	}
	table_close(tgrel, AccessShareLock);
	return owner;
}

/*
 * A partition's guard trigger cloned from its partitioned table's is not the
 * partition's to replace (42710) or drop (2BP01): PostgreSQL refuses both.
 * Say so first, naming the table to run the function on.
 */
static void
check_guard_not_cloned(Relation rel, bool dropping)
{
	Oid			owner;

	if (!rel->rd_rel->relispartition)
		return;
	owner = guard_cloned_from(RelationGetRelid(rel));
	if (!OidIsValid(owner))
		return;
	ereport(ERROR,
			(errcode(dropping ? ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST : ERRCODE_DUPLICATE_OBJECT),
			 errmsg("versioning of partition \"%s\" is set on partitioned table \"%s\"",
					RelationGetRelationName(rel), get_rel_name(owner)),
			 errdetail("The partition's trigger \"%s\" is a clone of the one on \"%s\", and only changes with it.",
					   VERSION_GUARD_TRIGGER, get_rel_name(owner)),
			 dropping ?
			 errhint("Call consistency.disable_versioning() on \"%s\": it applies to every partition.",
					 get_rel_name(owner)) :
			 errhint("Call consistency.enable_versioning() on \"%s\": it applies to every partition.",
					 get_rel_name(owner)),
			 errtable(rel)));
}

/* Does column colname exist (not dropped) in relid? */
static bool
column_exists(Oid relid, const char *colname)
{
	return get_attnum(relid, colname) > 0;
}

/*
 * enable_versioning(rel, version_column, strict [, mode]): the 1.0 function
 * has no mode (it installs mode 'read'); 1.1's takes it as its fourth
 * argument.
 */
static void
enable_versioning(FunctionCallInfo fcinfo, bool has_mode)
{
	Oid			relid;
	char	   *colname;
	bool		strict;
	bool		increment = false;
	Relation	rel;
	Oid			typid;
	AttrNumber	attnum;
	LOCKMODE	lockmode;
	char	   *target;
	StringInfoData sql;

	consistency_arg_not_null(fcinfo, 0, "rel");
	consistency_arg_not_null(fcinfo, 1, "version_column");
	consistency_arg_not_null(fcinfo, 2, "strict");
	relid = PG_GETARG_OID(0);
	colname = NameStr(*PG_GETARG_NAME(1));
	strict = PG_GETARG_BOOL(2);
	if (has_mode)
	{
		char	   *mode = text_to_cstring(consistency_text_arg(fcinfo, 3, "mode", NAMEDATALEN, true));

		if (strcmp(mode, "increment") == 0)
			increment = true;
		else if (strcmp(mode, "read") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid mode \"%s\"", mode),
					 errdetail("The mode is 'read' (the client sends the version it read) or 'increment' (it sends the version it read plus one)."),
					 errhint("ORMs that increment the version themselves, such as SQLAlchemy's version_id_col, need 'increment'.")));
	}
	if (colname[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("version_column must not be empty")));
	if (SystemAttributeByName(colname) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("system column \"%s\" cannot be a version column", colname)));

	/*
	 * Adding the column needs ALTER TABLE's AccessExclusiveLock, and to own the
	 * table; creating the trigger only CREATE TRIGGER's ShareRowExclusiveLock
	 * and the TRIGGER privilege.  Take the lock we need at once, so as never to
	 * upgrade.
	 */
	lockmode = column_exists(relid, colname) ? ShareRowExclusiveLock : AccessExclusiveLock;
	rel = open_for_ddl(relid, lockmode, lockmode == AccessExclusiveLock);
	target = qualified_name(rel);

	/*
	 * Regular inheritance passes no row trigger on: the rows of a child table
	 * would go unchecked, also when updated through this table, while ALTER
	 * TABLE would add the column to them.  (Our lock keeps CREATE TABLE ...
	 * INHERITS and ALTER TABLE ... INHERIT out until the transaction ends.)
	 * Partitions get a clone of a partitioned table's trigger instead.
	 */
	if (rel->rd_rel->relkind == RELKIND_RELATION && rel->rd_rel->relhassubclass &&
		find_inheritance_children(relid, NoLock) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot enable versioning on table \"%s\", which has inheritance children",
						RelationGetRelationName(rel)),
				 errdetail("Regular inheritance does not pass row triggers on to child tables: their rows would be updated unchecked, also through \"%s\".",
						   RelationGetRelationName(rel)),
				 errhint("Enable versioning on each child table, or use a partitioned table, whose partitions all get the trigger."),
				 errtable(rel)));
	check_guard_not_cloned(rel, false);
	/* ALTER TABLE refuses a table this session has open: keep only the lock. */
	table_close(rel, NoLock);

	SPI_connect();
	initStringInfo(&sql);
	if (!column_exists(relid, colname))
	{
		if (lockmode != AccessExclusiveLock)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("version column \"%s\" of table %s was dropped concurrently",
							colname, target)));
		/* PostgreSQL 11+ stores a constant default without rewriting the table. */
		appendStringInfo(&sql, "ALTER TABLE %s ADD COLUMN %s pg_catalog.int8 NOT NULL DEFAULT 1",
						 target, quote_identifier(colname));
		run_ddl(sql.data);
		resetStringInfo(&sql);
	}

	rel = table_open(relid, NoLock);
	attnum = versioning_column(rel, colname, &typid);
	if (!TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attnotnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("version column \"%s\" of table \"%s\" must be NOT NULL",
						colname, RelationGetRelationName(rel)),
				 errhint("Give every row a version, then ALTER TABLE %s ALTER COLUMN %s SET NOT NULL.",
						 target, quote_identifier(colname)),
				 errtablecol(rel, attnum)));
	table_close(rel, NoLock);

	appendStringInfo(&sql,
					 "CREATE OR REPLACE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW"
					 " EXECUTE FUNCTION " CONSISTENCY_SCHEMA ".version_guard(%s%s%s)",
					 quote_identifier(VERSION_GUARD_TRIGGER), target,
					 quote_literal_cstr(colname), strict ? ", 'strict'" : "",
					 increment ? ", 'increment'" : "");
	run_ddl(sql.data);
	SPI_finish();
}

/* 1.0: enable_versioning(rel, version_column, strict), mode 'read'. */
Datum
consistency_enable_versioning(PG_FUNCTION_ARGS)
{
	enable_versioning(fcinfo, false);
	PG_RETURN_VOID();
}

/* 1.1: enable_versioning(rel, version_column, strict, mode). */
Datum
consistency_enable_versioning_1_1(PG_FUNCTION_ARGS)
{
	enable_versioning(fcinfo, true);
	PG_RETURN_VOID();
}

Datum
consistency_disable_versioning(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Relation	rel;
	char	   *target;

	consistency_arg_not_null(fcinfo, 0, "rel");
	relid = PG_GETARG_OID(0);
	/* DROP TRIGGER is the owner's, also when there is no trigger to drop. */
	rel = open_for_ddl(relid, AccessExclusiveLock, true);
	target = qualified_name(rel);
	check_guard_not_cloned(rel, true);
	table_close(rel, NoLock);

	/* Idempotent and quiet: nothing to do if the trigger is not there. */
	if (OidIsValid(get_trigger_oid(relid, VERSION_GUARD_TRIGGER, true)))
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfo(&sql, "DROP TRIGGER %s ON %s",
						 quote_identifier(VERSION_GUARD_TRIGGER), target);
		SPI_connect();
		run_ddl(sql.data);
		SPI_finish();
	}
	PG_RETURN_VOID();
}

void
consistency_versioning_init(void)
{
	DefineCustomEnumVariable("consistency.version_conflict_sqlstate",
							 "SQLSTATE of a version conflict: 40001 (retryable) or YC101.",
							 "40001 (serialization_failure) lets generic retry loops re-run the "
							 "transaction; YC101 is for applications that pass a client-supplied "
							 "version (HTTP If-Match) and must report the conflict instead.",
							 &conflict_sqlstate,
							 CONFLICT_SERIALIZATION_FAILURE,
							 conflict_sqlstate_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = versioning_executor_start;
}
