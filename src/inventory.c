/*-------------------------------------------------------------------------
 *
 * inventory.c
 *	  Reservations: reserve, reserve_all, confirm, release and
 *	  expire_reservations, the state machine of consistency.reservations.
 *
 * A reservation is one row per SKU ("line") in consistency.reservations,
 * keyed (reservation_id, line); reserve() makes line 0 only, reserve_all()
 * one line per distinct SKU, in lock order.  Its status moves from 'active'
 * to exactly one of 'confirmed' (sold), 'released' or 'expired', and every
 * move changes the SKU's slot rows in the same transaction, so that per SKU
 * reserved = the sum of its active lines at every commit.
 *
 * Idempotency: line 0's primary key is the claim on the reservation id.  A
 * retry (same id, same SKUs and quantities) finds it and answers 'reserved'
 * without taking stock; a concurrent retry waits on the primary key for the
 * first attempt to end (also on the sell-out path, which writes nothing:
 * before answering 'insufficient' it looks for a line 0 it cannot see, and
 * if there is one takes the path that waits).  The same id with other SKUs
 * or quantities is refused (YC202).  An attempt that answers 'insufficient'
 * or 'busy' leaves no row, so its retry tries again.
 *
 * Line 0 is INSERT ... ON CONFLICT (reservation_id, line) DO NOTHING.  Under
 * READ COMMITTED it is done without the executor (insert_line0_direct(),
 * direct_insert.c), with the same speculative insertion, so the same waits
 * and no 23505 whatever the race; the SQL statement remains for REPEATABLE
 * READ and SERIALIZABLE (its 40001) and for a table a DBA changed.
 *
 * The reservation rows are written (and every check made) before any slot
 * is locked, so that the slot UPDATE is the last statement before commit:
 * the hot lock is held only for that UPDATE and the commit.
 *
 * IDENTIFICATION
 *	  src/inventory.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consistency.h"
#include "stats.h"
#include "inventory.h"

PG_FUNCTION_INFO_V1(consistency_reserve);
PG_FUNCTION_INFO_V1(consistency_reserve_now);
PG_FUNCTION_INFO_V1(consistency_reserve_all);
PG_FUNCTION_INFO_V1(consistency_confirm);
PG_FUNCTION_INFO_V1(consistency_release);
PG_FUNCTION_INFO_V1(consistency_expire_reservations);

static InvStmt stmt_insert_line0 = {
	"INSERT INTO " RES_TABLE
	" (reservation_id, line, sku, qty, status, created_at, expires_at)"
	" VALUES ($1, 0, $2, $3, 'active', $4, $5)"
	" ON CONFLICT (reservation_id, line) DO NOTHING",
	5, {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID}
};
static InvStmt stmt_insert_lines = {
	"INSERT INTO " RES_TABLE
	" (reservation_id, line, sku, qty, status, created_at, expires_at)"
	" SELECT $1, u.line, u.sku, u.qty, 'active', $5, $6"
	" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
	" AS u(line, sku, qty)",
	6, {TEXTOID, INT4ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
};
static InvStmt stmt_lookup_share = {
	"SELECT line, sku, qty, status, expires_at OPERATOR(pg_catalog.<=) $2 FROM " RES_TABLE
	" WHERE reservation_id OPERATOR(pg_catalog.=) $1 ORDER BY line FOR SHARE",
	2, {TEXTOID, TIMESTAMPTZOID}
};
static InvStmt stmt_lookup_plain = {
	"SELECT line, sku, qty, status, expires_at OPERATOR(pg_catalog.<=) $2 FROM " RES_TABLE
	" WHERE reservation_id OPERATOR(pg_catalog.=) $1 ORDER BY line",
	2, {TEXTOID, TIMESTAMPTZOID}
};
static InvStmt stmt_lookup_update = {
	"SELECT line, sku, qty, status, expires_at OPERATOR(pg_catalog.<=) $2 FROM " RES_TABLE
	" WHERE reservation_id OPERATOR(pg_catalog.=) $1 ORDER BY line FOR NO KEY UPDATE",
	2, {TEXTOID, TIMESTAMPTZOID}
};
static InvStmt stmt_delete = {
	"DELETE FROM " RES_TABLE " WHERE reservation_id OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};
static InvStmt stmt_set_status = {
	"UPDATE " RES_TABLE " SET status = $2::consistency.reservation_status"
	" WHERE reservation_id OPERATOR(pg_catalog.=) $1",
	2, {TEXTOID, TEXTOID}
};
static InvStmt stmt_expire_pick = {
	"SELECT reservation_id FROM " RES_TABLE
	" WHERE status OPERATOR(pg_catalog.=) 'active' AND line OPERATOR(pg_catalog.=) 0"
	" AND expires_at OPERATOR(pg_catalog.<=) $1"
	" ORDER BY expires_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED",
	2, {TIMESTAMPTZOID, INT4OID}
};
/*
 * Marks the lines expired; one row per SKU: its units, as text, and whether
 * they can be returned (0), or not because the SKU has no stock rows (1) or
 * fewer units reserved than the lines hold (2), which only writes around
 * the functions can cause.
 */
static InvStmt stmt_expire_mark = {
	"WITH m AS (UPDATE " RES_TABLE " SET status = 'expired'"
	"  WHERE reservation_id OPERATOR(pg_catalog.=) ANY ($1) AND status OPERATOR(pg_catalog.=) 'active'"
	"  RETURNING sku, qty)"
	" SELECT m.sku, pg_catalog.sum(m.qty)::pg_catalog.text,"
	"  CASE WHEN NOT EXISTS (SELECT FROM " INV_TABLE " i WHERE i.sku OPERATOR(pg_catalog.=) m.sku) THEN 1"
	"   WHEN pg_catalog.sum(m.qty) OPERATOR(pg_catalog.>) 9223372036854775807"
	"     OR pg_catalog.sum(m.qty) OPERATOR(pg_catalog.>) (SELECT pg_catalog.sum(i.reserved) FROM " INV_TABLE " i"
	"                               WHERE i.sku OPERATOR(pg_catalog.=) m.sku) THEN 2"
	"   ELSE 0 END"
	" FROM m GROUP BY m.sku",
	1, {TEXTARRAYOID}
};

/* One SKU of a request. */
typedef struct ResLine
{
	InvSku		s;
	int64		qty;
	int			slot;			/* where a TAKE landed (-1: spread) */
} ResLine;

/* How lookup_res() locks the lines it finds. */
typedef enum ResLock
{
	RES_NO_LOCK,				/* while holding slot locks: never wait */
	RES_SHARE,					/* a retry: the answer holds until commit */
	RES_UPDATE					/* confirm, release */
} ResLock;

/* A stored reservation, as looked up. */
typedef struct StoredRes
{
	int			nlines;
	ResLine    *lines;
	char	   *status;
	bool		past_expiry;
} StoredRes;

/* ----------------------------------------------------------------
 * Arguments
 * ----------------------------------------------------------------
 */

static int64
get_qty(FunctionCallInfo fcinfo, int argno)
{
	int64		qty;

	consistency_arg_not_null(fcinfo, argno, "qty");
	qty = PG_GETARG_INT64(argno);
	if (qty <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("qty must be positive"),
				 errdetail("The qty given is %lld.", (long long) qty)));
	return qty;
}

static Interval *
get_ttl(FunctionCallInfo fcinfo, int argno)
{
	Interval   *iv;
	Interval	zero = {0};

	consistency_arg_not_null(fcinfo, argno, "ttl");
	iv = PG_GETARG_INTERVAL_P(argno);
	if (!DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(iv),
										  IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be a positive interval"),
				 errdetail("The ttl given is %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(iv))))));
	return iv;
}

static text *
get_id(FunctionCallInfo fcinfo, int argno)
{
	return consistency_text_arg(fcinfo, argno, "reservation_id", INV_MAX_ID_BYTES, false);
}

/*
 * When a reservation made at now with this ttl expires, computed in the
 * session's TimeZone (a day or a month of ttl is a calendar one there).
 */
TimestampTz
inv_expiry(TimestampTz now, Interval *ttl)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(now),
												   IntervalPGetDatum(ttl)));
}

static int
line_cmp(const void *a, const void *b)
{
	return inv_sku_cmp(&((const ResLine *) a)->s, &((const ResLine *) b)->s);
}

/*
 * reserve_all's arrays: one-dimensional, same length, 1..INV_MAX_LINES
 * elements, no NULLs.  Returns the lines in lock order with duplicate SKUs
 * summed.
 */
static ResLine *
get_lines(FunctionCallInfo fcinfo, int skuarg, int qtyarg, int *nlines)
{
	ArrayType  *skus;
	ArrayType  *qtys;
	Datum	   *sku_d,
			   *qty_d;
	bool	   *sku_n,
			   *qty_n;
	int			ns,
				nq,
				i,
				out;
	ResLine    *lines;
	int64		total;

	consistency_arg_not_null(fcinfo, skuarg, "skus");
	consistency_arg_not_null(fcinfo, qtyarg, "qtys");
	skus = PG_GETARG_ARRAYTYPE_P(skuarg);
	qtys = PG_GETARG_ARRAYTYPE_P(qtyarg);
	if (ARR_NDIM(skus) > 1 || ARR_NDIM(qtys) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("skus and qtys must be one-dimensional arrays")));
	deconstruct_array(skus, TEXTOID, -1, false, TYPALIGN_INT, &sku_d, &sku_n, &ns);
	deconstruct_array(qtys, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &qty_d, &qty_n, &nq);
	if (ns != nq)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("skus and qtys must have the same length"),
				 errdetail("skus has %d elements and qtys has %d.", ns, nq)));
	if (ns == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("skus must not be empty")));
	if (ns > INV_MAX_LINES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many SKUs in one reservation"),
				 errdetail("The request has %d SKUs; the limit is %d.", ns, INV_MAX_LINES)));

	lines = palloc(sizeof(ResLine) * ns);
	for (i = 0; i < ns; i++)
	{
		text	   *sku;
		int			len;

		if (sku_n[i] || qty_n[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", sku_n[i] ? "skus" : "qtys"),
					 errdetail("Element %d is null.", i + 1)));
		sku = DatumGetTextPP(sku_d[i]);
		len = VARSIZE_ANY_EXHDR(sku);
		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sku must not be empty"),
					 errdetail("Element %d of skus is empty.", i + 1)));
		if (len > INV_MAX_SKU_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("sku is too long"),
					 errdetail("Element %d of skus is %d bytes long; the limit is %d bytes.",
							   i + 1, len, INV_MAX_SKU_BYTES)));
		if (DatumGetInt64(qty_d[i]) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("qty must be positive"),
					 errdetail("Element %d of qtys is %lld.", i + 1,
							   (long long) DatumGetInt64(qty_d[i]))));
		inv_sku_init(&lines[i].s, sku);
		lines[i].qty = DatumGetInt64(qty_d[i]);
		lines[i].slot = -1;
	}

	qsort(lines, ns, sizeof(ResLine), line_cmp);
	out = 0;
	for (i = 0; i < ns; i++)
	{
		if (out > 0 && inv_sku_cmp(&lines[out - 1].s, &lines[i].s) == 0)
		{
			if (pg_add_s64_overflow(lines[out - 1].qty, lines[i].qty, &lines[out - 1].qty))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("total qty of SKU \"%s\" is out of range",
								text_to_cstring(lines[i].s.sku))));
			continue;
		}
		lines[out++] = lines[i];
	}
	/* confirm and release return the reservation's total: it must fit too */
	total = lines[0].qty;
	for (i = 1; i < out; i++)
		if (pg_add_s64_overflow(total, lines[i].qty, &total))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("total qty of the reservation is out of range"),
					 errdetail("The quantities of all SKUs must add up to at most %lld.",
							   (long long) PG_INT64_MAX)));
	*nlines = out;
	return lines;
}

/* ----------------------------------------------------------------
 * Stored reservations
 * ----------------------------------------------------------------
 */

/* Read a reservation's lines; false if there is none. */
static bool
lookup_res(text *id, TimestampTz now, ResLock lock, StoredRes *r)
{
	Datum		v[2];
	uint64		n,
				i;

	v[0] = PointerGetDatum(id);
	v[1] = TimestampTzGetDatum(now);
	n = inv_exec(lock == RES_UPDATE ? &stmt_lookup_update :
				 lock == RES_SHARE ? &stmt_lookup_share : &stmt_lookup_plain, v, NULL, false);
	r->nlines = (int) n;
	if (n == 0)
		return false;
	r->lines = SPI_palloc(sizeof(ResLine) * n);
	for (i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		text	   *sku;

		sku = (text *) DatumGetPointer(SPI_datumTransfer(SPI_getbinval(t, d, 2, &isnull),
														 false, -1));
		inv_sku_init(&r->lines[i].s, sku);
		r->lines[i].qty = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
		r->lines[i].slot = -1;
		if (i == 0)
		{
			r->status = SPI_getvalue(t, d, 4);
			r->past_expiry = DatumGetBool(SPI_getbinval(t, d, 5, &isnull));
		}
	}
	return true;
}

static bool
same_request(const StoredRes *r, const ResLine *lines, int nlines)
{
	int			i;

	if (r->nlines != nlines)
		return false;
	for (i = 0; i < nlines; i++)
		if (r->lines[i].qty != lines[i].qty ||
			inv_sku_cmp(&r->lines[i].s, &lines[i].s) != 0)
			return false;
	return true;
}

static char *
describe_lines(const ResLine *lines, int n)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < n; i++)
		appendStringInfo(&buf, "%s%lld x \"%s\"", i > 0 ? ", " : "",
						 (long long) lines[i].qty, text_to_cstring(lines[i].s.sku));
	return buf.data;
}

static void
error_reused(text *id, const StoredRes *r, const ResLine *lines, int nlines)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_INV_ID_REUSED),
			 errmsg("reservation id \"%s\" was already used for a different reservation",
					text_to_cstring(id)),
			 errdetail("The stored reservation is for %s; this request is for %s.",
					   describe_lines(r->lines, r->nlines), describe_lines(lines, nlines)),
			 errhint("Use a new reservation id for a new reservation; a retry must send the same SKUs and quantities.")));
}

static void
error_expired(text *id)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_INV_EXPIRED),
			 errmsg("reservation \"%s\" has expired", text_to_cstring(id)),
			 errdetail("Its stock was (or will be) returned by consistency.expire_reservations()."),
			 errhint("Reserve again with a new reservation id.")));
}

static void
error_released(text *id)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_INV_RELEASED),
			 errmsg("reservation \"%s\" was released", text_to_cstring(id)),
			 errdetail("Its stock was returned by consistency.release()."),
			 errhint("Reserve again with a new reservation id.")));
}

static void
error_unknown_reservation(text *id)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_INV_UNKNOWN_RESERVATION),
			 errmsg("reservation \"%s\" does not exist", text_to_cstring(id)),
			 errdetail("No committed reservation has this id."),
			 errhint("A reservation answered 'insufficient' or 'busy' was not stored.")));
}

/*
 * A retry found the reservation already stored: answer as the first attempt
 * did, if the request is the same and the reservation still holds (or sold)
 * its stock.
 */
static void
answer_retry(text *id, const StoredRes *r, const ResLine *lines, int nlines)
{
	if (!same_request(r, lines, nlines))
		error_reused(id, r, lines, nlines);
	if (strcmp(r->status, "confirmed") == 0)
		return;
	if (strcmp(r->status, "released") == 0)
		error_released(id);
	if (strcmp(r->status, "expired") == 0 || r->past_expiry)
		error_expired(id);
}

/*
 * Line 0 of a reservation as the direct insert writes it: the columns of
 * consistency.reservations, in order.
 */
#define RES_NATTS 7

/*
 * The qty column's type once found to be bigint or a domain over it; the
 * status enum's type and its 'active' label.  Checked once per type.
 */
static Oid	res_qty_type = InvalidOid;
static Oid	res_status_type = InvalidOid;
static Datum res_status_active;

/* domain_check()'s cache for the qty domain */
static void *res_qty_domain_extra = NULL;

/*
 * Line 0 of n reservations of one SKU by consistency_direct_new_row()
 * (direct_insert.c), which is stmt_insert_line0 without the executor: its
 * start and end cost more than the write.  written[i]: 1 written, 0 ids[i]
 * has a line 0.  False, with nothing done, if the table is not as the
 * extension made it (a DBA's trigger, say): the caller then runs the SQL
 * statement, which honours it.  The qty and status columns' types are read
 * from the open relation; the qty domain is checked as the INSERT checks it,
 * as the tables' owner.  likely_new: the ids are expected to be fresh (see
 * consistency_direct_new_row).
 */
static bool
insert_lines0_direct(int n, text *const *ids, const InvSku *s, const int64 *qty,
					 const TimestampTz *nows, const TimestampTz *expires, bool likely_new,
					 int *written)
{
	Oid			relid = consistency_table_oid(CONSISTENCY_TABLE_RESERVATIONS);
	Oid			types[RES_NATTS] = {TEXTOID, INT4OID, TEXTOID, InvalidOid, InvalidOid,
	TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[RES_NATTS];
	bool		isnull[RES_NATTS] = {false};
	ConsistencySavedUser saved;
	struct ResultRelInfo *rri;
	ConsistencyNewRows *nr = NULL;
	int			i;

	/* as the owner, like the SQL statement: a DBA's domain CHECK may call anything */
	consistency_become_owner(relid, &saved);
	rri = consistency_direct_open(relid, RES_NATTS, types, isnull);
	if (rri != NULL)
	{
		TupleDesc	desc = RelationGetDescr(rri->ri_RelationDesc);
		Oid			qty_type = TupleDescAttr(desc, 3)->atttypid;
		Oid			status_type = TupleDescAttr(desc, 4)->atttypid;

		if (qty_type != res_qty_type && getBaseType(qty_type) == INT8OID)
			res_qty_type = qty_type;
		if (status_type != res_status_type && type_is_enum(status_type))
		{
			res_status_active = DirectFunctionCall2(enum_in, CStringGetDatum("active"),
													ObjectIdGetDatum(status_type));
			res_status_type = status_type;
		}
		if (qty_type == res_qty_type && status_type == res_status_type)
			nr = consistency_direct_new_rows_begin(rri);
		else
			consistency_direct_close(rri);
	}
	if (nr != NULL)
	{
		for (i = 0; i < n; i++)
		{
			if (res_qty_type != INT8OID)
				domain_check(Int64GetDatum(qty[i]), false, res_qty_type,
							 &res_qty_domain_extra, TopMemoryContext);
			values[0] = PointerGetDatum(ids[i]);
			values[1] = Int32GetDatum(0);
			values[2] = PointerGetDatum(s->sku);
			values[3] = Int64GetDatum(qty[i]);
			values[4] = res_status_active;
			values[5] = TimestampTzGetDatum(nows[i]);
			values[6] = TimestampTzGetDatum(expires[i]);
			written[i] = consistency_direct_new_row(nr, values, isnull, likely_new);
		}
		consistency_direct_new_rows_end(nr);
	}
	consistency_restore_user(&saved);
	return nr != NULL;
}

/*
 * Store line 0 unless the id has one (false).  Under READ COMMITTED
 * directly; under REPEATABLE READ or SERIALIZABLE, and for a table a DBA
 * changed, by the SQL statement, whose ON CONFLICT raises 40001 for a line 0
 * committed after the transaction's snapshot.
 */
static bool
insert_line0(text *id, const ResLine *line, TimestampTz now, TimestampTz expires)
{
	Datum		v[5];
	int			written;

	if (!IsolationUsesXactSnapshot() &&
		insert_lines0_direct(1, &id, &line->s, &line->qty, &now, &expires, false, &written))
		return written == 1;
	v[0] = PointerGetDatum(id);
	v[1] = PointerGetDatum(line->s.sku);
	v[2] = Int64GetDatum(line->qty);
	v[3] = TimestampTzGetDatum(now);
	v[4] = TimestampTzGetDatum(expires);
	return inv_exec(&stmt_insert_line0, v, NULL, false) == 1;
}

/*
 * Store the reservation's lines, or find it already stored (false: the
 * caller answers the retry from *stored).
 */
static bool
insert_reservation(text *id, ResLine *lines, int nlines, TimestampTz now,
				   TimestampTz expires, StoredRes *stored)
{
	Datum		v[6];

	if (!insert_line0(id, &lines[0], now, expires))
	{
		if (lookup_res(id, now, RES_SHARE, stored))
			return false;
		/* a conflicting row vanished between the two statements: try once more */
		if (!insert_line0(id, &lines[0], now, expires))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not store reservation \"%s\" because it kept changing",
							text_to_cstring(id)),
					 errhint("Retry the transaction.")));
	}
	if (nlines > 1)
	{
		Datum	   *ln = palloc(sizeof(Datum) * (nlines - 1));
		Datum	   *sk = palloc(sizeof(Datum) * (nlines - 1));
		Datum	   *qt = palloc(sizeof(Datum) * (nlines - 1));
		int			i;

		for (i = 1; i < nlines; i++)
		{
			ln[i - 1] = Int32GetDatum(i);
			sk[i - 1] = PointerGetDatum(lines[i].s.sku);
			qt[i - 1] = Int64GetDatum(lines[i].qty);
		}
		v[0] = PointerGetDatum(id);
		v[1] = PointerGetDatum(construct_array_builtin(ln, nlines - 1, INT4OID));
		v[2] = PointerGetDatum(construct_array_builtin(sk, nlines - 1, TEXTOID));
		v[3] = PointerGetDatum(construct_array_builtin(qt, nlines - 1, INT8OID));
		v[4] = TimestampTzGetDatum(now);
		v[5] = TimestampTzGetDatum(expires);
		inv_exec(&stmt_insert_lines, v, NULL, false);
	}
	return true;
}

/*
 * Is there a line 0 of reservation id that this transaction cannot see: one
 * another transaction is inserting (or deleting), or one committed since
 * this statement's snapshot?  Read through the primary key with a dirty
 * snapshot, which shows rows of transactions in progress; writes nothing and
 * waits for nothing.
 */
static bool
line0_exists(text *id)
{
	Oid			relid;
	Relation	heap;
	Relation	index;
	SnapshotData dirty;
	ScanKeyData key[2];
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		found;

	relid = consistency_table_oid(CONSISTENCY_TABLE_RESERVATIONS);
	heap = table_open(relid, AccessShareLock);
	index = index_open(RelationGetPrimaryKeyIndex_compat(heap, false), AccessShareLock);
	InitDirtySnapshot(dirty);
	ScanKeyInit(&key[0], 1, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(id));
	key[0].sk_collation = index->rd_indcollation[0];
	ScanKeyInit(&key[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(0));
	scan = index_beginscan_compat(heap, index, &dirty, NULL, 2, 0);
	index_rescan(scan, key, 2, NULL, 0);
	slot = table_slot_create(heap, NULL);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	/* Locks are kept to the end of the transaction, as a scan's are. */
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return found;
}

static void
delete_reservation(text *id)
{
	Datum		v[1] = {PointerGetDatum(id)};

	inv_exec(&stmt_delete, v, NULL, false);
}

/*
 * Reserve every line, in lock order; all or nothing.  On failure the lines
 * already taken are put back and the reservation rows deleted; the slot
 * locks stay held to the end of the transaction.
 */
static const char *
reserve_lines(text *id, ResLine *lines, int nlines, TimestampTz now, TimestampTz expires,
			  bool wait)
{
	StoredRes	stored;
	InvSlotResult res = INV_DONE;
	int			i;

	/*
	 * After a sell-out most answers are 'insufficient'.  For a SKU this
	 * backend last found short, check the stock under the slot locks before
	 * writing anything, so that such an answer writes nothing (no WAL flush
	 * while the locks are held).  A retry of a stored reservation must still
	 * be answered as one: look for it before the check, and after it look
	 * for any line 0 of this id, committed or not (an attempt of the same id
	 * may have stored its line and be waiting for a slot this check took).
	 * If there is one, give the slots back and take the normal path, whose
	 * INSERT waits for that attempt and answers as it ends; waiting for it
	 * while holding slot locks could deadlock (it may wait for them, and a
	 * confirm locks the row first).  If there is enough stock after all, the
	 * check gave its locks back and the normal path below runs: writing the
	 * reservation row while holding slot locks could deadlock with a
	 * concurrent attempt of the same id.
	 */
	if (nlines == 1 && inv_sku_looks_short(&lines[0].s))
	{
		int			nlocked;

		if (lookup_res(id, now, RES_SHARE, &stored))
		{
			answer_retry(id, &stored, lines, nlines);
			return "reserved";
		}
		res = inv_slots_check(&lines[0].s, lines[0].qty, wait, &nlocked);
		if (res != INV_DONE)
		{
			if (!line0_exists(id))
				return res == INV_BUSY ? "busy" : "insufficient";
			inv_unlock_slots(&lines[0].s, nlocked);
		}
	}

	if (!insert_reservation(id, lines, nlines, now, expires, &stored))
	{
		answer_retry(id, &stored, lines, nlines);
		return "reserved";
	}
	for (i = 0; i < nlines; i++)
	{
		res = inv_slots_apply(&lines[i].s, lines[i].qty, INV_TAKE, wait, nlines == 1,
							  &lines[i].slot);
		if (res != INV_DONE)
			break;
	}
	if (res == INV_DONE)
		return "reserved";
	while (--i >= 0)
	{
		if (lines[i].slot < 0)
			inv_slots_apply(&lines[i].s, lines[i].qty, INV_RETURN, true, false, &lines[i].slot);
		else
			inv_slot_undo_take(&lines[i].s, lines[i].slot, lines[i].qty);
	}
	delete_reservation(id);
	return res == INV_BUSY ? "busy" : "insufficient";
}

/* ----------------------------------------------------------------
 * SQL-callable functions
 * ----------------------------------------------------------------
 */

/* Count an answer of reserve(), reserve_all() or reserve_now() (a leader counts its batch's). */
void
inv_count_answer(const char *answer)
{
	if (strcmp(answer, "reserved") == 0)
		consistency_count(CSTAT_INV_RESERVED);
	else if (strcmp(answer, "insufficient") == 0)
		consistency_count(CSTAT_INV_INSUFFICIENT);
	else if (strcmp(answer, "busy") == 0)
		consistency_count(CSTAT_INV_BUSY);
}

/*
 * One reservation of one SKU, as reserve() makes it, made at now and
 * expiring at expires (inv_expiry); the arguments are checked.  The answer
 * is counted in consistency.stats if count.
 */
const char *
inv_reserve_one(const InvSku *s, int64 qty, text *id, TimestampTz now, TimestampTz expires,
				bool wait, bool count)
{
	ResLine		line;
	const char *answer;

	line.s = *s;
	line.qty = qty;
	line.slot = -1;
	SPI_connect();
	answer = reserve_lines(id, &line, 1, now, expires, wait);
	SPI_finish();
	if (count)
		inv_count_answer(answer);
	return answer;
}

/*
 * Several reservations of one SKU, each of one line, made together in this
 * transaction (a batch of reserve_now(), inventory_combine.c): the answers
 * are those of the same reserve() calls made one after another, in order.
 * The ids' line 0 rows are stored together, through one open table, each
 * inserted without looking for it first (the ids are expected to be fresh:
 * insert_lines0_direct); an id that has one is answered from it, as
 * reserve() answers a retry.  Then the units of all the fresh ones are taken
 * with one slot operation (one slot row update instead of one each), or, if the
 * SKU cannot give them all, one by one in order, a reservation that gets
 * nothing being deleted again.  The ids must differ (the caller checks), and
 * every caller waits for locks (wait = true).  Each reservation is made at
 * nows[i] and expires at expires[i], as its caller computed them (its ttl in
 * its own TimeZone).  Answers are not counted.
 */
void
inv_reserve_group(const InvSku *s, int n, const int64 *qty, text *const *ids,
				  const TimestampTz *nows, const TimestampTz *expires, const char **answers)
{
	ResLine		line;
	StoredRes	stored;
	bool	   *fresh;
	int		   *written;
	bool		direct;
	int64		total = 0;
	int			nfresh = 0;
	bool		overflow = false;
	int			i;

	if (inv_sku_looks_short(s))
	{
		/* after a sell-out: reserve()'s check that writes nothing */
		for (i = 0; i < n; i++)
			answers[i] = inv_reserve_one(s, qty[i], ids[i], nows[i], expires[i], true, false);
		return;
	}

	fresh = palloc0(sizeof(bool) * n);
	written = palloc(sizeof(int) * n);
	SPI_connect();
	/* the fresh ids' line 0 at once, one open table for all (insert_reservation's first step) */
	direct = !IsolationUsesXactSnapshot() &&
		insert_lines0_direct(n, ids, s, qty, nows, expires, true, written);
	for (i = 0; i < n; i++)
	{
		line.s = *s;
		line.qty = qty[i];
		line.slot = -1;
		/* an id that was there (rare: a retry) is stored or found as reserve() does it */
		fresh[i] = (direct && written[i] == 1) ||
			insert_reservation(ids[i], &line, 1, nows[i], expires[i], &stored);
		if (!fresh[i])
		{
			answer_retry(ids[i], &stored, &line, 1);
			answers[i] = "reserved";
			continue;
		}
		nfresh++;
		overflow |= pg_add_s64_overflow(total, qty[i], &total);
	}
	if (nfresh > 1 && !overflow &&
		inv_slots_apply(s, total, INV_TAKE, true, true, &line.slot) == INV_DONE)
	{
		for (i = 0; i < n; i++)
			if (fresh[i])
				answers[i] = "reserved";
	}
	else
	{
		for (i = 0; i < n; i++)
		{
			InvSlotResult res;

			if (!fresh[i])
				continue;
			res = inv_slots_apply(s, qty[i], INV_TAKE, true, true, &line.slot);
			if (res == INV_DONE)
				answers[i] = "reserved";
			else
			{
				delete_reservation(ids[i]);
				answers[i] = res == INV_BUSY ? "busy" : "insufficient";
			}
		}
	}
	SPI_finish();
	pfree(written);
	pfree(fresh);
}

/* The arguments of reserve() and reserve_now(): sku, qty, reservation_id, ttl, wait. */
typedef struct ReserveArgs
{
	InvSku		s;
	int64		qty;
	text	   *id;
	Interval   *ttl;
	bool		wait;
} ReserveArgs;

static void
get_reserve_args(FunctionCallInfo fcinfo, ReserveArgs *a)
{
	inv_sku_init(&a->s, consistency_text_arg(fcinfo, 0, "sku", INV_MAX_SKU_BYTES, false));
	a->qty = get_qty(fcinfo, 1);
	a->id = get_id(fcinfo, 2);
	a->ttl = get_ttl(fcinfo, 3);
	consistency_arg_not_null(fcinfo, 4, "wait");
	a->wait = PG_GETARG_BOOL(4);
}

/*
 * reserve(sku, qty, reservation_id, ttl, wait) -> reserved | insufficient | busy
 */
Datum
consistency_reserve(PG_FUNCTION_ARGS)
{
	ReserveArgs a;
	TimestampTz now;

	get_reserve_args(fcinfo, &a);
	now = GetCurrentTimestamp();
	PG_RETURN_TEXT_P(cstring_to_text(inv_reserve_one(&a.s, a.qty, a.id, now,
													 inv_expiry(now, a.ttl), a.wait, true)));
}

/*
 * reserve_now(sku, qty, reservation_id, ttl, wait) -> reserved | insufficient | busy
 *
 * reserve(), committed before it returns, outside any transaction block;
 * concurrent calls share a transaction (inventory_combine.c).
 */
Datum
consistency_reserve_now(PG_FUNCTION_ARGS)
{
	ReserveArgs a;

	get_reserve_args(fcinfo, &a);

	/*
	 * Not after another statement of a pipeline (extended protocol, several
	 * Executes before one Sync): they share an implicit transaction, which
	 * the reservation would commit, and which a later failure would roll back
	 * with it.  Checked first: from PostgreSQL 17 on, such a transaction is
	 * also an implicit transaction block.  As the first statement of a
	 * pipeline, it commits as soon as it completes, not at the Sync (as
	 * PreventInTransactionBlock arranges for VACUUM).
	 */
	if (MyXactFlags & XACT_FLAGS_PIPELINING)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("consistency.reserve_now() cannot run inside a pipeline after another statement"),
				 errdetail("reserve_now() commits the reservation before it returns, whatever the transaction does next."),
				 errhint("Send it first in a pipeline, or after a Sync, or call consistency.reserve() in the pipeline's transaction.")));
	/* (a subtransaction, e.g. a PL/pgSQL block with EXCEPTION, counts as a block) */
	if (IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("consistency.reserve_now() cannot run inside a transaction block or a subtransaction"),
				 errdetail("reserve_now() commits the reservation before it returns, whatever the transaction does next."),
				 errhint("Call consistency.reserve() in the transaction, or reserve_now() in autocommit, alone in its statement.")));
	MyXactFlags |= XACT_FLAGS_NEEDIMMEDIATECOMMIT;
	PG_RETURN_TEXT_P(cstring_to_text(inv_reserve_now(&a.s, a.qty, a.id, a.ttl, a.wait)));
}

/*
 * Slot locks are entries in the shared lock table and are held to the end of
 * the transaction; a multi-slot SKU may need all of its slots (the slow
 * path).  Refuse a basket that could hold more than INV_MAX_SLOT_LOCKS of
 * them, so that one call cannot fill the table for every session (53200).
 * One-slot SKUs in a basket, pinned or adaptive, take row locks only, which
 * use no lock table entry (a lone one-slot SKU's buyer takes slot 0's lock:
 * one entry; inv_slots_apply's queue).
 */
static void
check_slot_locks(const ResLine *lines, int nlines)
{
	int			total = 0;
	int			i;

	for (i = 0; i < nlines; i++)
	{
		int			n = inv_nslots(&lines[i].s);

		if (n > 1)
			total += n;
	}
	if (total > INV_MAX_SLOT_LOCKS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many slot locks for one reservation"),
				 errdetail("The SKUs of the request have %d slots in all on their multi-slot SKUs; the limit is %d.",
						   total, INV_MAX_SLOT_LOCKS),
				 errhint("Split the reservation, or give its SKUs fewer slots with consistency.stock_set().")));
}

/*
 * reserve_all(reservation_id, skus, qtys, ttl) -> reserved | insufficient
 */
Datum
consistency_reserve_all(PG_FUNCTION_ARGS)
{
	text	   *id;
	ResLine    *lines;
	int			nlines;
	Interval   *ttl;
	TimestampTz now;
	const char *answer;

	id = get_id(fcinfo, 0);
	lines = get_lines(fcinfo, 1, 2, &nlines);
	ttl = get_ttl(fcinfo, 3);

	SPI_connect();
	check_slot_locks(lines, nlines);
	now = GetCurrentTimestamp();
	answer = reserve_lines(id, lines, nlines, now, inv_expiry(now, ttl), true);
	SPI_finish();
	inv_count_answer(answer);
	PG_RETURN_TEXT_P(cstring_to_text(answer));
}

/*
 * The units of a stored reservation.  reserve_all() refuses a total out of
 * range; lines written around the functions can still have one.
 */
static int64
total_qty(text *id, const StoredRes *r)
{
	int64		total = 0;
	int			i;

	for (i = 0; i < r->nlines; i++)
		if (pg_add_s64_overflow(total, r->lines[i].qty, &total))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("total qty of reservation \"%s\" is out of range",
							text_to_cstring(id)),
					 errdetail("Its lines were not written by consistency.reserve_all(), which refuses such a total."),
					 errhint("Run consistency.check_inventory().")));
	return total;
}

/* Move an active reservation to status, applying op to every line. */
static int64
finish_reservation(text *id, const StoredRes *r, const char *status, InvSlotOp op)
{
	Datum		v[2];
	int64		total = total_qty(id, r);
	int			i;

	v[0] = PointerGetDatum(id);
	v[1] = CStringGetTextDatum(status);
	inv_exec(&stmt_set_status, v, NULL, false);
	for (i = 0; i < r->nlines; i++)
	{
		int			slot;

		inv_slots_apply(&r->lines[i].s, r->lines[i].qty, op, true, false, &slot);
	}
	return total;
}

/*
 * confirm(reservation_id) -> units sold
 *
 * Confirming a confirmed reservation again answers the same (a retry).
 */
Datum
consistency_confirm(PG_FUNCTION_ARGS)
{
	text	   *id = get_id(fcinfo, 0);
	StoredRes	r;
	int64		sold;

	SPI_connect();
	if (!lookup_res(id, GetCurrentTimestamp(), RES_UPDATE, &r))
		error_unknown_reservation(id);
	if (strcmp(r.status, "confirmed") == 0)
		sold = total_qty(id, &r);
	else if (strcmp(r.status, "released") == 0)
		error_released(id);
	else if (strcmp(r.status, "expired") == 0 || r.past_expiry)
		error_expired(id);
	else
	{
		sold = finish_reservation(id, &r, "confirmed", INV_SELL);
		consistency_count(CSTAT_INV_CONFIRMED);
	}
	SPI_finish();
	PG_RETURN_INT64(sold);
}

/*
 * release(reservation_id) -> units returned to stock (0 if it was already
 * released or expired)
 */
Datum
consistency_release(PG_FUNCTION_ARGS)
{
	text	   *id = get_id(fcinfo, 0);
	StoredRes	r;
	int64		returned = 0;

	SPI_connect();
	if (!lookup_res(id, GetCurrentTimestamp(), RES_UPDATE, &r))
		error_unknown_reservation(id);
	if (strcmp(r.status, "confirmed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_INV_CONFIRMED),
				 errmsg("reservation \"%s\" is already confirmed", text_to_cstring(id)),
				 errdetail("Its stock was sold; releasing it would put sold units back on sale."),
				 errhint("Return sold units with consistency.stock_add().")));
	if (strcmp(r.status, "active") == 0)
	{
		returned = finish_reservation(id, &r, "released", INV_RETURN);
		consistency_count(CSTAT_INV_RELEASED);
	}
	SPI_finish();
	PG_RETURN_INT64(returned);
}

/* The expired lines of one SKU; line first, so line_cmp() sorts these. */
typedef struct ExpiredSku
{
	ResLine		line;
	char	   *units;			/* sum of the lines' qty, as text */
	int			state;			/* see stmt_expire_mark */
} ExpiredSku;

/*
 * expire_reservations(batch_size) -> number of reservations expired
 *
 * Takes up to batch_size active reservations past their expiry, skipping
 * any another transaction is confirming or releasing (SKIP LOCKED), marks
 * them expired and returns their stock: one slot operation per SKU, in lock
 * order, made last so the slot locks are held only until this batch commits.
 */
Datum
consistency_expire_reservations(PG_FUNCTION_ARGS)
{
	int32		batch;
	Datum		v[2];
	uint64		nres,
				nsku,
				i;
	ExpiredSku *skus;

	consistency_arg_not_null(fcinfo, 0, "batch_size");
	batch = PG_GETARG_INT32(0);
	if (batch <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be positive"),
				 errdetail("The batch_size given is %d.", batch)));

	SPI_connect();
	v[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	v[1] = Int32GetDatum(batch);
	nres = inv_exec(&stmt_expire_pick, v, NULL, false);
	if (nres > 0)
	{
		Datum	   *ids = palloc(sizeof(Datum) * nres);

		for (i = 0; i < nres; i++)
		{
			bool		isnull;

			ids[i] = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull),
									   false, -1);
		}
		v[0] = PointerGetDatum(construct_array_builtin(ids, (int) nres, TEXTOID));
		nsku = inv_exec(&stmt_expire_mark, v, NULL, false);
		skus = palloc(sizeof(ExpiredSku) * nsku);
		for (i = 0; i < nsku; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;

			inv_sku_init(&skus[i].line.s, (text *) DatumGetPointer(
							 SPI_datumTransfer(SPI_getbinval(t, d, 1, &isnull), false, -1)));
			skus[i].units = SPI_getvalue(t, d, 2);
			skus[i].state = DatumGetInt32(SPI_getbinval(t, d, 3, &isnull));
			if (skus[i].state == 0)
				skus[i].line.qty = DatumGetInt64(DirectFunctionCall1(int8in,
																	 CStringGetDatum(skus[i].units)));
		}
		/* one operation per SKU, in lock order */
		qsort(skus, nsku, sizeof(ExpiredSku), line_cmp);
		for (i = 0; i < nsku; i++)
		{
			int			slot;

			/*
			 * Lines whose stock cannot be returned (only writes around the
			 * functions can cause that) are expired all the same, with a
			 * warning, so that they cannot make every later run fail.
			 */
			if (skus[i].state == 1)
				ereport(WARNING,
						(errcode(ERRCODE_CONSISTENCY_INV_UNKNOWN_SKU),
						 errmsg("expired reservation lines of unknown SKU \"%s\" without returning stock",
								text_to_cstring(skus[i].line.s.sku)),
						 errdetail("consistency.inventory has no stock row for this SKU; the lines held %s units.",
								   skus[i].units),
						 errhint("Run consistency.check_inventory().")));
			else if (skus[i].state == 2)
				ereport(WARNING,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("expired reservation lines of SKU \"%s\" without returning stock",
								text_to_cstring(skus[i].line.s.sku)),
						 errdetail("The lines held %s units, more than the SKU has reserved.",
								   skus[i].units),
						 errhint("Run consistency.check_inventory().")));
			else
				inv_slots_apply(&skus[i].line.s, skus[i].line.qty, INV_RETURN, true, false,
								&slot);
		}
	}
	SPI_finish();
	consistency_count_n(CSTAT_INV_EXPIRED, nres);
	PG_RETURN_INT64((int64) nres);
}
