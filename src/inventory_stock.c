/*-------------------------------------------------------------------------
 *
 * inventory_stock.c
 *	  Stock administration and inspection: stock_set, stock_add, available
 *	  and check_inventory.
 *
 * stock_set and stock_add lock every slot of the SKU in slot order (the
 * global lock order, see inventory_slots.c), read the slot rows, and write a
 * new distribution: each slot keeps (or, when the number of slots changes,
 * gets an even share of) the reserved units, and the available units are
 * spread evenly over the slots.  The per-SKU sums are what matter; a slot is
 * only a lock.  Stock can never drop below what is reserved.
 *
 * IDENTIFICATION
 *	  src/inventory_stock.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "consistency.h"
#include "inventory.h"

PG_FUNCTION_INFO_V1(consistency_stock_set);
PG_FUNCTION_INFO_V1(consistency_stock_set_1_1);
PG_FUNCTION_INFO_V1(consistency_stock_add);
PG_FUNCTION_INFO_V1(consistency_available);
PG_FUNCTION_INFO_V1(consistency_check_inventory);

static InvStmt stmt_trim = {
	"DELETE FROM " INV_TABLE " WHERE sku = $1 AND slot >= $2",
	2, {TEXTOID, INT4OID}
};
static InvStmt stmt_upsert = {
	"INSERT INTO " INV_TABLE " AS i (sku, slot, on_hand, reserved)"
	" SELECT $1, u.slot, u.on_hand, u.reserved FROM unnest($2, $3, $4) AS u(slot, on_hand, reserved)"
	" ON CONFLICT (sku, slot) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved"
	" WHERE (i.on_hand, i.reserved) IS DISTINCT FROM (excluded.on_hand, excluded.reserved)",
	4, {TEXTOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID}
};
/* the same with the adaptive flag ($5), from 1.1 on */
static InvStmt stmt_upsert_flag = {
	"INSERT INTO " INV_TABLE " AS i (sku, slot, on_hand, reserved, adaptive)"
	" SELECT $1, u.slot, u.on_hand, u.reserved, $5 FROM unnest($2, $3, $4) AS u(slot, on_hand, reserved)"
	" ON CONFLICT (sku, slot) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved,"
	" adaptive = excluded.adaptive"
	" WHERE (i.on_hand, i.reserved, i.adaptive) IS DISTINCT FROM"
	" (excluded.on_hand, excluded.reserved, excluded.adaptive)",
	5, {TEXTOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, BOOLOID}
};
static InvStmt stmt_resized_now = {
	"UPDATE " INV_TABLE " SET resized_at = statement_timestamp() WHERE sku = $1 AND slot = 0",
	1, {TEXTOID}
};
static InvStmt stmt_available = {
	"SELECT sum(on_hand - reserved) FROM " INV_TABLE " WHERE sku = $1",
	1, {TEXTOID}
};

/*
 * Every invariant, one row per violation.  The CHECK constraints make some
 * of them impossible through SQL; they are still verified.
 */
static InvStmt stmt_check = {
	"WITH s AS ("
	"  SELECT sku, count(*) AS n, max(slot) AS maxslot, sum(on_hand) AS on_hand,"
	"         sum(reserved) AS reserved,"
	"         bool_and(reserved >= 0 AND reserved <= on_hand) AS slots_ok"
	"    FROM " INV_TABLE " GROUP BY sku),"
	" a AS (SELECT sku, sum(qty) AS held FROM " RES_TABLE
	"        WHERE status = 'active' GROUP BY sku),"
	" r AS (SELECT reservation_id, min(sku) AS sku, count(*) AS lines, max(line) AS maxline,"
	"              count(DISTINCT sku) AS skus, count(DISTINCT status) AS statuses"
	"         FROM " RES_TABLE " GROUP BY reservation_id)"
	" SELECT sku, problem FROM ("
	"  SELECT s.sku, format('reserved is %s but active reservations hold %s', s.reserved, coalesce(a.held, 0))"
	"    FROM s LEFT JOIN a ON a.sku = s.sku WHERE s.reserved <> coalesce(a.held, 0)"
	"  UNION ALL"
	"  SELECT a.sku, format('active reservations hold %s units but the SKU has no stock rows', a.held)"
	"    FROM a WHERE NOT EXISTS (SELECT FROM s WHERE s.sku = a.sku)"
	"  UNION ALL"
	"  SELECT sku, format('reserved (%s) is not between 0 and on_hand (%s)', reserved, on_hand)"
	"    FROM s WHERE NOT (reserved >= 0 AND reserved <= on_hand)"
	"  UNION ALL"
	"  SELECT sku, 'a slot has reserved outside 0..on_hand' FROM s WHERE NOT slots_ok"
	"  UNION ALL"
	"  SELECT sku, format('slots are not numbered 0..%s', n - 1) FROM s WHERE maxslot <> n - 1"
	"  UNION ALL"
	"  SELECT sku, format('reservation %s: lines are not numbered 0..%s with one SKU each',"
	"                     quote_literal(reservation_id), lines - 1)"
	"    FROM r WHERE maxline <> lines - 1 OR skus <> lines"
	"  UNION ALL"
	"  SELECT sku, format('reservation %s: lines have different statuses', quote_literal(reservation_id))"
	"    FROM r WHERE statuses > 1"
	" ) AS p(sku, problem) ORDER BY 1, 2",
	0, {InvalidOid}
};

typedef struct StockRow
{
	int			slot;
	int64		on_hand;
	int64		reserved;
} StockRow;

/* Lock every slot of the SKU in order and read them; returns how many. */
static int
lock_and_read(const InvSku *s, int atleast, StockRow *rows)
{
	Datum		v[1] = {PointerGetDatum(s->sku)};
	bool		isnull;
	Datum		d;
	int			want,
				n,
				i;

	inv_exec(&inv_stmt_nslots, v, NULL, false);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	want = isnull ? 0 : DatumGetInt32(d);
	want = Max(want, atleast);
	for (;;)
	{
		inv_lock_all_slots(s, want);
		n = (int) inv_exec(&inv_stmt_read_all, v, NULL, false);
		if (n == 0 || DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[n - 1],
												  SPI_tuptable->tupdesc, 1, &isnull)) < want)
			break;
		/* a concurrent stock_set added slots before we locked them */
		want = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[n - 1],
										   SPI_tuptable->tupdesc, 1, &isnull)) + 1;
	}
	if (n > INV_MAX_SLOTS)
		elog(ERROR, "SKU \"%s\" has %d slot rows, more than the %d allowed",
			 text_to_cstring(s->sku), n, INV_MAX_SLOTS);
	for (i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;

		rows[i].slot = DatumGetInt32(SPI_getbinval(t, td, 1, &isnull));
		rows[i].on_hand = DatumGetInt64(SPI_getbinval(t, td, 2, &isnull));
		rows[i].reserved = DatumGetInt64(SPI_getbinval(t, td, 3, &isnull));
	}
	return n;
}

static void
error_below_reserved(const InvSku *s, int64 on_hand, int64 reserved)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_INV_BELOW_RESERVED),
			 errmsg("stock of SKU \"%s\" cannot drop below its reserved units",
					text_to_cstring(s->sku)),
			 errdetail("The new on_hand would be %lld, but %lld units are reserved.",
					   (long long) on_hand, (long long) reserved),
			 errhint("Release or confirm reservations first, or wait for them to expire.")));
}

/* What write_distribution() does to the adaptive flag. */
typedef enum InvFlag
{
	FLAG_KEEP,					/* stock_add; or a 1.0 database (no such column) */
	FLAG_PINNED,
	FLAG_ADAPTIVE
} InvFlag;

/*
 * Write slots 0..nslots-1 with the given reserved units per slot and the
 * available units spread evenly; drop slots beyond nslots.  stock_set
 * writes the adaptive flag on every row (1.1); FLAG_KEEP leaves it alone:
 * stock_add never changes the number of slots, so it inserts no row.
 */
static void
write_distribution(const InvSku *s, int nslots, const int64 *reserved, int64 avail,
				   InvFlag flag)
{
	Datum		sl[INV_MAX_SLOTS],
				oh[INV_MAX_SLOTS],
				rs[INV_MAX_SLOTS];
	Datum		v[4];
	int			i;

	for (i = 0; i < nslots; i++)
	{
		int64		share = avail / nslots + (i < avail % nslots ? 1 : 0);

		sl[i] = Int32GetDatum(i);
		rs[i] = Int64GetDatum(reserved[i]);
		oh[i] = Int64GetDatum(reserved[i] + share);
	}
	v[0] = PointerGetDatum(s->sku);
	v[1] = Int32GetDatum(nslots);
	inv_exec(&stmt_trim, v, NULL, false);
	v[1] = PointerGetDatum(construct_array_builtin(sl, nslots, INT4OID));
	v[2] = PointerGetDatum(construct_array_builtin(oh, nslots, INT8OID));
	v[3] = PointerGetDatum(construct_array_builtin(rs, nslots, INT8OID));
	if (flag == FLAG_KEEP)
		inv_exec(&stmt_upsert, v, NULL, false);
	else
	{
		Datum		vf[5] = {v[0], v[1], v[2], v[3], BoolGetDatum(flag == FLAG_ADAPTIVE)};

		inv_exec(&stmt_upsert_flag, vf, NULL, false);
	}
	inv_forget_slots(s);
}

/*
 * stock_set(sku, on_hand, slots) -> available units.  From 1.1 on, slots
 * NULL (the default) makes the SKU adaptive: a new SKU gets one slot, an
 * existing one keeps its count; a number pins the count.  1.0's entry point
 * (slots required, default 1 in its SQL) pins.
 */
static Datum
stock_set(FunctionCallInfo fcinfo, bool null_slots_adaptive)
{
	InvSku		s;
	int64		on_hand;
	int32		nslots;
	StockRow	rows[INV_MAX_SLOTS];
	int64		reserved[INV_MAX_SLOTS];
	int64		total_reserved = 0;
	bool		adaptive = false;
	InvFlag		flag;
	int			n,
				i;

	inv_sku_init(&s, consistency_text_arg(fcinfo, 0, "sku", INV_MAX_SKU_BYTES, false));
	consistency_arg_not_null(fcinfo, 1, "on_hand");
	on_hand = PG_GETARG_INT64(1);
	if (on_hand < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_hand must not be negative"),
				 errdetail("The on_hand given is %lld.", (long long) on_hand)));
	if (null_slots_adaptive && PG_ARGISNULL(2))
	{
		adaptive = true;
		nslots = 0;				/* decided below: the current count, or 1 */
	}
	else
	{
		consistency_arg_not_null(fcinfo, 2, "slots");
		nslots = PG_GETARG_INT32(2);
	}
	if (!adaptive && (nslots < 1 || nslots > INV_MAX_SLOTS))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("slots must be between 1 and %d", INV_MAX_SLOTS),
				 errdetail("The slots given is %d.", nslots)));

	SPI_connect();
	n = lock_and_read(&s, nslots, rows);
	if (adaptive)
		nslots = Max(n, 1);
	flag = get_attnum(consistency_table_oid(CONSISTENCY_TABLE_INVENTORY), "adaptive") == InvalidAttrNumber ?
		FLAG_KEEP : adaptive ? FLAG_ADAPTIVE : FLAG_PINNED;
	for (i = 0; i < n; i++)
		total_reserved += rows[i].reserved;
	if (on_hand < total_reserved)
		error_below_reserved(&s, on_hand, total_reserved);
	/* each slot keeps its reserved units if it stays, else they are spread */
	if (n == nslots)
		for (i = 0; i < n; i++)
			reserved[i] = rows[i].reserved;
	else
		for (i = 0; i < nslots; i++)
			reserved[i] = total_reserved / nslots + (i < total_reserved % nslots ? 1 : 0);
	write_distribution(&s, nslots, reserved, on_hand - total_reserved, flag);
	/* maintenance() merges an adaptive SKU left unsplit for merge_after since */
	if (flag == FLAG_ADAPTIVE && n != nslots)
	{
		Datum		v[1] = {PointerGetDatum(s.sku)};

		inv_exec(&stmt_resized_now, v, NULL, false);
	}
	SPI_finish();
	PG_RETURN_INT64(on_hand - total_reserved);
}

/* 1.0: slots => N, default 1 */
Datum
consistency_stock_set(PG_FUNCTION_ARGS)
{
	return stock_set(fcinfo, false);
}

/* 1.1: slots => NULL (the default) for an adaptive SKU */
Datum
consistency_stock_set_1_1(PG_FUNCTION_ARGS)
{
	return stock_set(fcinfo, true);
}

/*
 * stock_add(sku, delta) -> available units
 */
Datum
consistency_stock_add(PG_FUNCTION_ARGS)
{
	InvSku		s;
	int64		delta;
	StockRow	rows[INV_MAX_SLOTS];
	int64		reserved[INV_MAX_SLOTS];
	int64		total_reserved = 0;
	int64		total_on_hand = 0;
	int64		new_on_hand;
	int			n,
				i;

	inv_sku_init(&s, consistency_text_arg(fcinfo, 0, "sku", INV_MAX_SKU_BYTES, false));
	consistency_arg_not_null(fcinfo, 1, "delta");
	delta = PG_GETARG_INT64(1);
	if (delta == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delta must not be zero")));

	SPI_connect();
	n = lock_and_read(&s, 0, rows);
	if (n == 0)
		inv_error_unknown_sku(s.sku);
	for (i = 0; i < n; i++)
	{
		total_reserved += rows[i].reserved;
		total_on_hand += rows[i].on_hand;
		reserved[i] = rows[i].reserved;
		if (rows[i].slot != i)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("slots of SKU \"%s\" are not numbered 0..%d", text_to_cstring(s.sku), n - 1),
					 errhint("Run consistency.check_inventory(), then consistency.stock_set().")));
	}
	if (pg_add_s64_overflow(total_on_hand, delta, &new_on_hand))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("on_hand of SKU \"%s\" would be out of range", text_to_cstring(s.sku)),
				 errdetail("on_hand is %lld and delta is %lld.",
						   (long long) total_on_hand, (long long) delta)));
	if (new_on_hand < total_reserved)
		error_below_reserved(&s, new_on_hand, total_reserved);
	write_distribution(&s, n, reserved, new_on_hand - total_reserved, FLAG_KEEP);
	SPI_finish();
	PG_RETURN_INT64(new_on_hand - total_reserved);
}

/*
 * available(sku) -> on_hand - reserved over all slots: a plain read, no lock
 * (works on a standby).
 */
Datum
consistency_available(PG_FUNCTION_ARGS)
{
	text	   *sku = consistency_text_arg(fcinfo, 0, "sku", INV_MAX_SKU_BYTES, false);
	Datum		v[1] = {PointerGetDatum(sku)};
	bool		isnull;
	Datum		d;

	SPI_connect();
	inv_exec(&stmt_available, v, NULL, true);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		inv_error_unknown_sku(sku);
	/* sum(bigint) is numeric */
	d = DirectFunctionCall1(numeric_int8, d);
	SPI_finish();
	PG_RETURN_DATUM(d);
}

/*
 * check_inventory() -> TABLE(sku, problem): every invariant violation.
 */
Datum
consistency_check_inventory(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		n,
				i;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	n = inv_exec(&stmt_check, NULL, NULL, true);
	for (i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2];

		values[0] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &nulls[0]);
		values[1] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &nulls[1]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	PG_RETURN_NULL();
}
