/*-------------------------------------------------------------------------
 *
 * versioning_update.c
 *	  Optimistic versioning, function mode: update_versioned and
 *	  try_update_versioned.
 *
 * update_versioned(rel, key, expected_version, changes, version_column)
 * runs, as the caller (privileges and row-level security apply),
 *
 *	 UPDATE [ONLY] nsp.rel SET c1 = $1, ..., v = v + 1
 *	  WHERE k1 = $m+1 AND ... AND v = $n RETURNING v
 *
 * with every identifier quoted and the key compared with the primary key
 * index's own equality operators.  A 0-row result is told apart by
 * re-reading the row: missing (P0002) or at another version (the conflict).
 * Under READ COMMITTED an UPDATE that waited for a concurrent writer
 * re-checks "v = $n" on the newest row version, so the loser updates nothing
 * and the re-read, with a fresh snapshot, finds the winner's version.
 *
 * On a plain table the UPDATE is made without the executor instead
 * (versioning_direct.c; see below).  The statements are prepared once per
 * (table, version column, set of changed columns) and kept for the
 * backend's life in a hash table; a relcache callback marks a table's
 * entries stale when the table changes (ALTER TABLE, a new primary key,
 * CREATE TRIGGER, ...), and they are rebuilt on next use, with whether the
 * direct update may be used.
 *
 * Values arrive as jsonb and are converted with the column type's input
 * function (with its typmod, so domains, varchar(n) and numeric(p,s) check
 * them): strings give their text, numbers and booleans their JSON text,
 * objects and arrays their JSON text, JSON null gives SQL NULL.  A json or
 * jsonb column receives the value's JSON text whatever its kind.
 *
 * CPU cost (issue 13), in callgrind instructions per iteration of the CPU
 * benchmark's PL/pgSQL loops (test/bench/20-versioning.sh: read a row's
 * version, then update it; one backend; a 1,005-iteration run minus a
 * 5-iteration one, over 1,000; +-2k from how many updates find room for HOT):
 *
 *						hand-written   update_versioned before   after
 *	 PostgreSQL 15		86.2k		   117.8k (1.37x)			 112.6k (1.30x)
 *	 PostgreSQL 18		79.4k-81.6k	   108.7k (1.34x)			 102.7k (1.28x)
 *
 * On 15, the loop's SELECT costs 28.9k and the hand-written UPDATE 57.3k.
 * The caller's PERFORM with its two jsonb_build_object() calls costs 18.9k
 * before this function runs (measured with a built-in function in its
 * place): with the function no dearer than the hand-written UPDATE, the
 * loop would still be 1.22x, out of this file's reach.  The function is
 * 64.7k: its UPDATE through SPI 58.6k, its own work (arguments, privilege
 * check, lock, plan lookup, value coercion, SPI connection) about 5k.
 * Removed: a syscache lookup per JSON key (names are now found in the
 * relation's descriptor; -0.9k) and the UPDATE's RETURNING when nothing can
 * store other than v + 1 (-3.2k; see plan_entry_build).
 *
 * Then (1.1) the UPDATE itself, on a table where the statement could do
 * nothing else, is made without the executor (versioning_direct.c), the
 * statement remaining for every other table and every second attempt.  Same
 * measure, PostgreSQL 15: hand-written 87.8k, update_versioned 87.4k (1.00x);
 * with consistency.update_versioned_direct = off 115.8k (1.32x).
 *
 * IDENTIFICATION
 *	  src/versioning_update.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "consistency.h"
#include "stats.h"
#include "versioning.h"

PG_FUNCTION_INFO_V1(consistency_update_versioned);
PG_FUNCTION_INFO_V1(consistency_try_update_versioned);

/* Argument positions, shared by both functions. */
#define ARG_REL			0
#define ARG_KEY			1
#define ARG_EXPECTED	2
#define ARG_CHANGES		3
#define ARG_VCOLUMN		4

/* A column the statements take a parameter for. */
typedef struct ColInfo
{
	AttrNumber	attnum;
	char	   *name;
	Oid			typid;
	int32		typmod;
	bool		json;			/* json or jsonb (or a domain over one) */
	Oid			ioparam;
	FmgrInfo	input;
} ColInfo;

/*
 * Cache key: the table, its version column and the set of changed columns as
 * a bitmap of attnums.  Only the first nbytes of cols are hashed and
 * compared (the rest are zero), so a narrow update hashes a few bytes.
 */
typedef struct PlanKey
{
	Oid			relid;
	AttrNumber	vattnum;
	uint16		nbytes;
	bits8		cols[MaxHeapAttributeNumber / BITS_PER_BYTE + 1];
} PlanKey;

#define PLAN_KEY_LEN(k) (offsetof(PlanKey, cols) + (k)->nbytes)

typedef struct PlanEntry
{
	PlanKey		key;			/* hash key: must be first */
	bool		valid;			/* false once the table changed */
	int			refcount;		/* calls running with these plans */
	MemoryContext cxt;			/* column info */
	int			nchanges;
	ColInfo    *changes;		/* changed columns, attnum order: $1.. */
	int			nkeys;
	ColInfo    *keys;			/* primary key, index order: then these */
	Oid			vtypid;
	bool		returning;		/* update_plan has RETURNING v (see below) */
	SPIPlanPtr	update_plan;	/* params: changes, keys, expected version */
	SPIPlanPtr	reread_plan;	/* params: keys */
	VersioningDirectPlan direct;	/* update_plan without the executor? */
	AttrNumber *changed;		/* changes' attnums, for the direct update */
} PlanEntry;

static HTAB *plan_cache = NULL;

static uint32
plan_key_hash(const void *key, Size keysize)
{
	return hash_bytes((const unsigned char *) key, PLAN_KEY_LEN((const PlanKey *) key));
}

static int
plan_key_match(const void *key1, const void *key2, Size keysize)
{
	const PlanKey *a = key1;
	const PlanKey *b = key2;

	if (a->nbytes != b->nbytes)
		return 1;
	return memcmp(a, b, PLAN_KEY_LEN(a));
}

/* One name -> value pair of the key or changes argument. */
typedef struct ColumnValue
{
	AttrNumber	attnum;
	JsonbValue	value;
} ColumnValue;

/* What one call was asked to do, checked. */
typedef struct Request
{
	Relation	rel;
	const char *vname;
	AttrNumber	vattnum;
	Oid			vtypid;
	int64		expected;
	Jsonb	   *key;
	int			nchanges;
	ColumnValue *changes;		/* sorted by attnum */
	int			nkeys;
	ColumnValue *keys;
} Request;

/* For the error context of a value that fails its type's input function. */
typedef struct CoerceContext
{
	const char *what;
	const char *column;
} CoerceContext;

/* ----------------------------------------------------------------
 * Plan cache
 * ----------------------------------------------------------------
 */

static void
plan_cache_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	PlanEntry  *e;

	if (plan_cache == NULL)
		return;
	hash_seq_init(&status, plan_cache);
	while ((e = (PlanEntry *) hash_seq_search(&status)) != NULL)
	{
		if (relid == InvalidOid || e->key.relid == relid)
			e->valid = false;
	}
}

static void
colinfo_fill(ColInfo *c, Relation rel, AttrNumber attnum, MemoryContext cxt)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	Oid			typinput;
	Oid			basetype;

	c->attnum = attnum;
	c->name = MemoryContextStrdup(cxt, NameStr(att->attname));
	c->typid = att->atttypid;
	c->typmod = att->atttypmod;
	basetype = getBaseType(att->atttypid);
	c->json = (basetype == JSONOID || basetype == JSONBOID);
	getTypeInputInfo(att->atttypid, &typinput, &c->ioparam);
	fmgr_info_cxt(typinput, &c->input, cxt);
}

/*
 * "OPERATOR(nsp.=)" for the equality operator of operator family opfamily of
 * index access method amoid on type opcintype.  The strategy number is the
 * access method's: btree's is 3, but a GiST primary key (18's PRIMARY KEY
 * (..., p WITHOUT OVERLAPS)) has its operator classes' own, and strategy 3 of
 * GiST's range_ops is && (overlaps), which would match any overlapping key.
 */
static char *
eq_operator(Oid amoid, Oid opfamily, Oid opcintype)
{
	StrategyNumber strategy = IndexEqualStrategy(amoid, opfamily);
	Oid			opno = InvalidOid;
	HeapTuple	tup;
	Form_pg_operator op;
	char	   *result;

	if (strategy != InvalidStrategy)
		opno = get_opfamily_member(opfamily, opcintype, opcintype, strategy);
	if (!OidIsValid(opno))
		elog(ERROR, "no equality operator in operator family %u for type %u",
			 opfamily, opcintype);
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

/* "k1 OPERATOR(..) $n AND k2 OPERATOR(..) $n+1 ..." */
static void
append_key_match(StringInfo buf, PlanEntry *e, char **eqops, int firstparam)
{
	int			i;

	for (i = 0; i < e->nkeys; i++)
		appendStringInfo(buf, "%s%s %s $%d", i > 0 ? " AND " : "",
						 quote_identifier(e->keys[i].name), eqops[i], firstparam + i);
}

static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;

	/* A primary-key lookup: one generic plan, never re-planned per call. */
	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/* Free what entry e holds; it must not be in use. */
static void
plan_entry_release(PlanEntry *e)
{
	Assert(e->refcount == 0);
	if (e->update_plan)
		SPI_freeplan(e->update_plan);
	if (e->reread_plan)
		SPI_freeplan(e->reread_plan);
	if (e->cxt)
		MemoryContextDelete(e->cxt);
	e->update_plan = e->reread_plan = NULL;
	e->cxt = NULL;
}

/*
 * Remove stale entries other than keep that no running call uses: those of
 * dropped tables, and of column sets not used since their table changed.
 * Runs only when an entry is (re)built, which is rare.
 */
static void
plan_cache_sweep(PlanEntry *keep)
{
	HASH_SEQ_STATUS status;
	PlanEntry  *e;

	hash_seq_init(&status, plan_cache);
	while ((e = (PlanEntry *) hash_seq_search(&status)) != NULL)
	{
		if (e == keep || e->valid || e->refcount > 0)
			continue;
		plan_entry_release(e);
		hash_search(plan_cache, &e->key, HASH_REMOVE, NULL);
	}
}

/* Build (or rebuild) entry e's column info and statements; SPI is connected. */
static void
plan_entry_build(PlanEntry *e, Request *r)
{
	Relation	rel = r->rel;
	Oid			pkoid;
	Relation	idx;
	StringInfoData sql;
	Oid		   *argtypes;
	char	  **eqops;
	const char *target;
	const char *vcol;
	int			nargs;
	int			i;

	/*
	 * Drop the old build, unless a running call (one this call is nested in)
	 * still uses it: then it is left behind, a rare and small leak.
	 */
	if (e->refcount == 0)
		plan_entry_release(e);
	e->cxt = NULL;
	e->update_plan = e->reread_plan = NULL;
	e->valid = false;

	pkoid = RelationGetPrimaryKeyIndex_compat(rel, false);
	if (!OidIsValid(pkoid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
				 errdetail("consistency.update_versioned() finds the row by its primary key."),
				 errtable(rel)));

	e->cxt = AllocSetContextCreate(TopMemoryContext, "consistency versioned update",
								   ALLOCSET_SMALL_SIZES);
	e->vtypid = r->vtypid;

	/*
	 * "SET v = v + 1 WHERE ... AND v = $n" can only store expected + 1,
	 * unless something rewrites the new row: a BEFORE ROW UPDATE trigger (the
	 * version_guard trigger among them), a rule, or, on a partitioned table,
	 * a BEFORE INSERT trigger of the partition a row moves to.  Without any
	 * of these, the statement needs no RETURNING, which costs a projection
	 * and a tuple table per call; with one, RETURNING reports what was
	 * stored.  CREATE TRIGGER and CREATE RULE invalidate the relcache entry,
	 * so the entry is rebuilt and this is decided again.
	 */
	e->returning = !(rel->rd_rel->relkind == RELKIND_RELATION &&
					 rel->rd_rules == NULL &&
					 (rel->trigdesc == NULL || !rel->trigdesc->trig_update_before_row));
	e->nchanges = r->nchanges;
	e->changes = MemoryContextAllocZero(e->cxt, sizeof(ColInfo) * r->nchanges);
	for (i = 0; i < r->nchanges; i++)
		colinfo_fill(&e->changes[i], rel, r->changes[i].attnum, e->cxt);

	idx = index_open(pkoid, AccessShareLock);
	e->nkeys = IndexRelationGetNumberOfKeyAttributes(idx);
	e->keys = MemoryContextAllocZero(e->cxt, sizeof(ColInfo) * e->nkeys);
	eqops = palloc(sizeof(char *) * e->nkeys);
	for (i = 0; i < e->nkeys; i++)
	{
		colinfo_fill(&e->keys[i], rel, idx->rd_index->indkey.values[i], e->cxt);
		eqops[i] = eq_operator(idx->rd_rel->relam, idx->rd_opfamily[i], idx->rd_opcintype[i]);
	}
	index_close(idx, AccessShareLock);

	e->changed = MemoryContextAlloc(e->cxt, sizeof(AttrNumber) * e->nchanges);
	for (i = 0; i < e->nchanges; i++)
		e->changed[i] = e->changes[i].attnum;
	versioning_direct_plan(rel, pkoid, &e->direct);

	/* Parameters: changes $1..$c, keys $c+1..$c+k, expected version $c+k+1. */
	nargs = e->nchanges + e->nkeys + 1;
	argtypes = palloc(sizeof(Oid) * nargs);
	for (i = 0; i < e->nchanges; i++)
		argtypes[i] = e->changes[i].typid;
	for (i = 0; i < e->nkeys; i++)
		argtypes[e->nchanges + i] = e->keys[i].typid;
	argtypes[nargs - 1] = INT8OID;

	/* ONLY: a plain table's primary key does not cover inheritance children. */
	target = psprintf("%s%s",
					  rel->rd_rel->relkind == RELKIND_RELATION ? "ONLY " : "",
					  quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												 RelationGetRelationName(rel)));
	vcol = quote_identifier(r->vname);

	initStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE %s SET ", target);
	for (i = 0; i < e->nchanges; i++)
		appendStringInfo(&sql, "%s = $%d, ", quote_identifier(e->changes[i].name), i + 1);
	appendStringInfo(&sql, "%s = %s OPERATOR(pg_catalog.+) 1 WHERE ", vcol, vcol);
	append_key_match(&sql, e, eqops, e->nchanges + 1);
	appendStringInfo(&sql, " AND %s OPERATOR(pg_catalog.=) $%d", vcol, nargs);
	if (e->returning)
		appendStringInfo(&sql, " RETURNING %s", vcol);
	e->update_plan = prepare_kept(sql.data, nargs, argtypes);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s FROM %s WHERE ", vcol, target);
	append_key_match(&sql, e, eqops, 1);
	e->reread_plan = prepare_kept(sql.data, e->nkeys, argtypes + e->nchanges);

	pfree(sql.data);
	pfree(argtypes);
	e->valid = true;
}

static PlanEntry *
plan_entry_get(Request *r)
{
	PlanKey		key;
	PlanEntry  *e;
	bool		found;
	int			i;

	if (plan_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(PlanKey);
		ctl.entrysize = sizeof(PlanEntry);
		ctl.hash = plan_key_hash;
		ctl.match = plan_key_match;
		plan_cache = hash_create("consistency versioned-update plans", 64, &ctl,
								 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE);
	}

	memset(&key, 0, sizeof(key));
	key.relid = RelationGetRelid(r->rel);
	key.vattnum = r->vattnum;
	for (i = 0; i < r->nchanges; i++)
	{
		AttrNumber	a = r->changes[i].attnum;

		key.cols[a / BITS_PER_BYTE] |= (bits8) (1 << (a % BITS_PER_BYTE));
	}
	/* changes are sorted by attnum: the last one has the highest */
	key.nbytes = r->changes[r->nchanges - 1].attnum / BITS_PER_BYTE + 1;

	e = (PlanEntry *) hash_search(plan_cache, &key, HASH_ENTER, &found);
	if (!found)
	{
		e->valid = false;
		e->refcount = 0;
		e->cxt = NULL;
		e->update_plan = e->reread_plan = NULL;
	}
	if (!e->valid)
	{
		plan_cache_sweep(e);
		plan_entry_build(e, r);
	}
	return e;
}

/* ----------------------------------------------------------------
 * Arguments
 * ----------------------------------------------------------------
 */

static Jsonb *
object_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	Jsonb	   *jb;

	consistency_arg_not_null(fcinfo, argno, argname);
	jb = PG_GETARG_JSONB_P(argno);
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", argname),
				 errdetail("Give {\"column\": value, ...}.")));
	if (JB_ROOT_COUNT(jb) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must name at least one column", argname)));
	return jb;
}

/*
 * The attnum of rel's column named name (len bytes, not terminated), as
 * get_attnum() finds it: 0 for none, negative for a system column.  A narrow
 * table's descriptor is searched directly, which costs far less than a
 * syscache lookup per name; a wide table's, a name that cannot be a column
 * name (get_attnum() compares at most NAMEDATALEN - 1 bytes) and any name not
 * found among the user columns go to get_attnum().
 */
#define ATTNUM_SCAN_MAX_NATTS	64

static AttrNumber
column_attnum(Relation rel, const char *name, int len)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	char	   *cname;
	AttrNumber	attnum;
	int			i;

	if (tupdesc->natts <= ATTNUM_SCAN_MAX_NATTS && len < NAMEDATALEN)
	{
		for (i = 0; i < tupdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);
			const char *an = NameStr(att->attname);

			if (!att->attisdropped && an[0] == (len > 0 ? name[0] : '\0') &&
				strncmp(an, name, len) == 0 && an[len] == '\0')
				return att->attnum;
		}
	}
	cname = pnstrdup(name, len);
	attnum = get_attnum(RelationGetRelid(rel), cname);
	pfree(cname);
	return attnum;
}

/*
 * The name -> value pairs of object jb, each name resolved to a column of
 * rel that is neither dropped, system nor generated.
 */
static ColumnValue *
object_items(Jsonb *jb, Relation rel, const char *argname, int *nitems)
{
	ColumnValue *items = palloc(sizeof(ColumnValue) * JB_ROOT_COUNT(jb));
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		const char *name;
		int			len;
		AttrNumber	attnum;

		if (tok != WJB_KEY)
			continue;
		name = v.val.string.val;
		len = v.val.string.len;
		tok = JsonbIteratorNext(&it, &items[n].value, true);
		Assert(tok == WJB_VALUE);

		attnum = column_attnum(rel, name, len);
		if (attnum <= 0 || TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attgenerated)
			name = pnstrdup(name, len);	/* for the message */
		if (attnum < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
					 errmsg("%s names system column \"%s\"", argname, name),
					 errtable(rel)));
		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of table \"%s\" does not exist",
							name, RelationGetRelationName(rel)),
					 errdetail("It is named in %s.", argname),
					 errtable(rel)));
		if (TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attgenerated)
			ereport(ERROR,
					(errcode(ERRCODE_GENERATED_ALWAYS),
					 errmsg("column \"%s\" of table \"%s\" is a generated column",
							name, RelationGetRelationName(rel)),
					 errdetail("It is named in %s; generated columns cannot be set.", argname),
					 errtablecol(rel, attnum)));
		items[n].attnum = attnum;
		n++;
	}
	*nitems = n;
	return items;
}

static int
item_cmp(const void *a, const void *b)
{
	return (int) ((const ColumnValue *) a)->attnum - (int) ((const ColumnValue *) b)->attnum;
}

static void
coerce_error_callback(void *arg)
{
	CoerceContext *c = (CoerceContext *) arg;

	errcontext("value for column \"%s\" in %s", c->column, c->what);
}

/* Convert one jsonb value to a Datum of column c's type. */
static Datum
coerce_value(const ColInfo *c, JsonbValue *v, const char *what, bool *isnull)
{
	ErrorContextCallback errcb;
	CoerceContext ctx;
	char	   *str;
	Datum		result;

	if (v->type == jbvNull)
		str = NULL;
	else if (c->json || v->type == jbvBinary)
	{
		Jsonb	   *jb = JsonbValueToJsonb(v);

		str = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
	else if (v->type == jbvString)
		str = pnstrdup(v->val.string.val, v->val.string.len);
	else if (v->type == jbvNumeric)
		str = DatumGetCString(DirectFunctionCall1(numeric_out,
												  NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvBool)
		str = v->val.boolean ? "true" : "false";
	else
		elog(ERROR, "unexpected jsonb value type %d", (int) v->type);

	ctx.what = what;
	ctx.column = c->name;
	errcb.callback = coerce_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	/* NULL goes through too: a domain's NOT NULL is checked by its input. */
	result = InputFunctionCall((FmgrInfo *) &c->input, str, c->ioparam, c->typmod);
	error_context_stack = errcb.previous;

	*isnull = (str == NULL);
	return result;
}

/* Are the key's columns exactly the primary key's? */
static void
check_key_columns(Request *r, PlanEntry *e)
{
	int			i;
	int			j;
	bool		ok = (r->nkeys == e->nkeys);

	for (i = 0; ok && i < e->nkeys; i++)
	{
		ok = false;
		for (j = 0; j < r->nkeys; j++)
			if (r->keys[j].attnum == e->keys[i].attnum)
				ok = true;
	}
	if (!ok)
	{
		StringInfoData pk;

		initStringInfo(&pk);
		for (i = 0; i < e->nkeys; i++)
			appendStringInfo(&pk, "%s%s", i > 0 ? ", " : "", quote_identifier(e->keys[i].name));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("key must name exactly the primary key columns of table \"%s\"",
						RelationGetRelationName(r->rel)),
				 errdetail("The primary key is (%s).", pk.data),
				 errtable(r->rel)));
	}
}

/* ----------------------------------------------------------------
 * The update
 * ----------------------------------------------------------------
 */

typedef enum UpdateOutcome
{
	OUTCOME_UPDATED,
	OUTCOME_CONFLICT
} UpdateOutcome;

static void
check_update_privilege(Oid relid)
{
	/* Before locking the table: a stranger must not be able to lock it. */
	if (pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_UPDATE, ACLMASK_ANY) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
}

static UpdateOutcome
update_versioned(FunctionCallInfo fcinfo, bool raise_conflict, int64 *result)
{
	Request		r;
	Oid			relid;
	Jsonb	   *changes;
	PlanEntry  *e;
	Datum	   *values;
	char	   *nulls;
	int			nargs;
	int			i;
	int			j;
	VersioningExpectation saved;
	volatile UpdateOutcome outcome = OUTCOME_UPDATED;
	volatile int64 found_version = 0;
	SPIPlanPtr	update_plan;
	SPIPlanPtr	reread_plan;
	bool		returning;
	VersioningDirectPlan direct;
	const AttrNumber *changed;
	int			attempt;
	bool		isnull;

	consistency_arg_not_null(fcinfo, ARG_REL, "rel");
	consistency_arg_not_null(fcinfo, ARG_EXPECTED, "expected_version");
	consistency_arg_not_null(fcinfo, ARG_VCOLUMN, "version_column");
	r.key = object_arg(fcinfo, ARG_KEY, "key");
	changes = object_arg(fcinfo, ARG_CHANGES, "changes");
	relid = PG_GETARG_OID(ARG_REL);
	r.expected = PG_GETARG_INT64(ARG_EXPECTED);
	r.vname = NameStr(*PG_GETARG_NAME(ARG_VCOLUMN));

	check_update_privilege(relid);	/* 42P01 if there is no such relation */
	r.rel = table_open(relid, RowExclusiveLock);
	if (r.rel->rd_rel->relkind != RELKIND_RELATION &&
		r.rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(r.rel)),
				 errdetail("consistency.update_versioned() works on ordinary and partitioned tables.")));
	r.vattnum = versioning_column(r.rel, r.vname, &r.vtypid);

	r.changes = object_items(changes, r.rel, "changes", &r.nchanges);
	for (i = 0; i < r.nchanges; i++)
		if (r.changes[i].attnum == r.vattnum)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("changes must not set version column \"%s\"", r.vname),
					 errdetail("update_versioned() sets it to expected_version + 1 itself."),
					 errtablecol(r.rel, r.vattnum)));
	qsort(r.changes, r.nchanges, sizeof(ColumnValue), item_cmp);
	r.keys = object_items(r.key, r.rel, "key", &r.nkeys);

	consistency_count(CSTAT_VER_CHECKED);
	SPI_connect();
	e = plan_entry_get(&r);
	update_plan = e->update_plan;
	reread_plan = e->reread_plan;
	returning = e->returning;
	direct = e->direct;
	changed = e->changed;

	/*
	 * From here on the entry is in use: a call nested in this one (from a
	 * trigger, or an input function) must not free it or these plans.
	 */
	e->refcount++;
	versioning_expect_update(relid, r.vname, r.expected, &saved);
	PG_TRY();
	{
		check_key_columns(&r, e);

		/* Parameters: changes (attnum order), key (index order), expected version. */
		nargs = e->nchanges + e->nkeys + 1;
		values = palloc(sizeof(Datum) * nargs);
		nulls = palloc(nargs + 1);
		for (i = 0; i < e->nchanges; i++)
		{
			Assert(r.changes[i].attnum == e->changes[i].attnum);
			values[i] = coerce_value(&e->changes[i], &r.changes[i].value, "changes", &isnull);
			nulls[i] = isnull ? 'n' : ' ';
		}
		for (i = 0; i < e->nkeys; i++)
		{
			for (j = 0; r.keys[j].attnum != e->keys[i].attnum; j++)
				;
			if (r.keys[j].value.type == jbvNull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("key value for column \"%s\" must not be null", e->keys[i].name),
						 errtablecol(r.rel, e->keys[i].attnum)));
			values[e->nchanges + i] = coerce_value(&e->keys[i], &r.keys[j].value, "key", &isnull);
			nulls[e->nchanges + i] = ' ';
		}
		values[nargs - 1] = Int64GetDatum(r.expected);
		nulls[nargs - 1] = ' ';
		nulls[nargs] = '\0';

		for (attempt = 1;; attempt++)
		{
			int			rc;
			int64		found;
			int			direct_result;

			/* At the type's maximum the update could only overflow: just look. */
			if (r.expected < versioning_max(r.vtypid))
			{
				/*
				 * Announce this attempt's row to version_guard again: on an
				 * earlier attempt the guard may have used the announcement
				 * up before another BEFORE trigger skipped the row.
				 */
				if (attempt > 1)
				{
					VersioningExpectation outer_unused;

					versioning_expect_update(relid, r.vname, r.expected, &outer_unused);
				}
				/*
				 * First without the executor, where the table allows it
				 * (versioning_direct.c): 1 updated, 0 no row matched, -1
				 * not done, nothing changed.  A second attempt is always
				 * the statement.
				 */
				direct_result = -1;
				if (direct.usable && attempt == 1)
				{
					VersioningDirectRow row;
					bool	   *isnulls = palloc(sizeof(bool) * e->nchanges);

					for (i = 0; i < e->nchanges; i++)
						isnulls[i] = (nulls[i] == 'n');
					row.keys = values + e->nchanges;
					row.nchanges = e->nchanges;
					row.changed = changed;
					row.values = values;
					row.nulls = isnulls;
					row.vattnum = r.vattnum;
					row.vtypid = r.vtypid;
					row.expected = r.expected;
					direct_result = versioning_direct_update(r.rel, &direct, &row);
					pfree(isnulls);
				}
				if (direct_result == 1)
				{
					*result = r.expected + 1;
					break;
				}
				if (direct_result == -1)
				{
					rc = SPI_execute_plan(update_plan, values, nulls, false, 0);
					if (rc != (returning ? SPI_OK_UPDATE_RETURNING : SPI_OK_UPDATE))
						elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
					if (SPI_processed > 1)
						elog(ERROR, "update_versioned updated " UINT64_FORMAT " rows", SPI_processed);
				}
				if (direct_result == -1 && SPI_processed == 1)
				{
					/* No RETURNING: nothing could store other than v + 1. */
					*result = returning ?
						versioning_datum_get(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc,
														   1, &isnull),
											 r.vtypid) :
						r.expected + 1;
					break;
				}
			}

			/* Nothing updated: is the row missing, or at another version? */
			rc = SPI_execute_plan(reread_plan, values + e->nchanges, nulls + e->nchanges,
								  false, 0);
			if (rc != SPI_OK_SELECT)
				elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
			if (SPI_processed == 0)
				ereport(ERROR,
						(errcode(ERRCODE_NO_DATA_FOUND),
						 errmsg("no row in table \"%s\" has key %s",
								RelationGetRelationName(r.rel),
								JsonbToCString(NULL, &r.key->root, VARSIZE(r.key))),
						 errtable(r.rel)));
			found = versioning_datum_get(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull),
										 r.vtypid);
			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("version column \"%s\" of table \"%s\" is null in the row with key %s",
								r.vname, RelationGetRelationName(r.rel),
								JsonbToCString(NULL, &r.key->root, VARSIZE(r.key))),
						 errdetail("A row without a version cannot be updated with a version check."),
						 errhint("Set the version of existing rows and make the column NOT NULL, as consistency.enable_versioning() requires."),
						 errtablecol(r.rel, r.vattnum)));
			if (found != r.expected)
			{
				found_version = found;
				outcome = OUTCOME_CONFLICT;
				break;
			}
			if (found >= versioning_max(r.vtypid))
				versioning_report_overflow(r.rel, r.vattnum, found);

			/*
			 * The row is there at the expected version, yet was not updated:
			 * a row-level security policy for UPDATE hides it, or a BEFORE
			 * UPDATE trigger skipped it.  (Or it was replaced meanwhile
			 * under a reused key: try once more.)
			 */
			if (attempt == 2)
				ereport(ERROR,
						(errcode(ERRCODE_CONSISTENCY_ROW_NOT_UPDATED),
						 errmsg("row of table \"%s\" with key %s was not updated",
								RelationGetRelationName(r.rel),
								JsonbToCString(NULL, &r.key->root, VARSIZE(r.key))),
						 errdetail("The row is at the expected version %lld, but the UPDATE did not change it.",
								   (long long) r.expected),
						 errhint("A row-level security policy for UPDATE hides the row from the current user, or a BEFORE UPDATE trigger skipped it."),
						 errtable(r.rel)));
		}
	}
	PG_FINALLY();
	{
		versioning_expect_restore(&saved);
		e->refcount--;
	}
	PG_END_TRY();

	SPI_finish();
	if (outcome == OUTCOME_CONFLICT)
		consistency_count(CSTAT_VER_CONFLICT);
	if (outcome == OUTCOME_CONFLICT && raise_conflict)
		versioning_report_conflict(r.rel, r.vattnum, r.expected, found_version);
	table_close(r.rel, NoLock);
	return outcome;
}

Datum
consistency_update_versioned(PG_FUNCTION_ARGS)
{
	int64		result = 0;

	update_versioned(fcinfo, true, &result);
	PG_RETURN_INT64(result);
}

/* The same, but a version conflict (only) returns NULL. */
Datum
consistency_try_update_versioned(PG_FUNCTION_ARGS)
{
	int64		result = 0;

	if (update_versioned(fcinfo, false, &result) == OUTCOME_CONFLICT)
		PG_RETURN_NULL();
	PG_RETURN_INT64(result);
}

/*
 * A schema renamed or dropped: the kept statements name tables by schema, and
 * the relcache callback does not fire for the tables in it.  Start afresh.
 */
static void
plan_cache_invalidate_namespace(Datum arg, int cacheid, uint32 hashvalue)
{
	plan_cache_invalidate(arg, InvalidOid);
}

void
consistency_versioning_update_init(void)
{
	CacheRegisterRelcacheCallback(plan_cache_invalidate, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, plan_cache_invalidate_namespace, (Datum) 0);
}
