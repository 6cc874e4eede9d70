/*-------------------------------------------------------------------------
 *
 * inventory_slots.c
 *	  The slot engine: takes and returns a SKU's stock on its slot rows in
 *	  consistency.inventory, under per-slot locks, rebalancing between slots
 *	  when no single slot can serve a request.
 *
 * A SKU's stock is spread over N rows ("slots"), keyed (sku, slot), each with
 * CHECK (0 <= reserved <= on_hand).  Per-SKU totals are sums over the slots;
 * there is no per-SKU total row, which would be a hot row again.
 *
 * A SKU with several slots: every change to a slot row is made while
 * holding that slot's lock, a transaction-level lock in the advisory lock
 * space (field 4 = 'IV', fields 2-3 = a 56-bit hash of the SKU and the slot
 * number), held to the end of the transaction once the row was changed.
 * The slot lock, not the row lock, is what buyers queue on:
 *
 * - it can be tried without waiting, so a buyer picks a free slot instead of
 *	 queueing behind a busy one, and wait => false answers 'busy';
 * - once granted, the holder's transaction has ended, so the next
 *	 statement's snapshot sees its update and the UPDATE neither waits nor
 *	 re-checks the row;
 * - a slot that was only looked at (not enough there) is released at once,
 *	 so looking never leaves a stray lock behind that could later deadlock;
 * - waits honour lock_timeout and the deadlock detector.
 *
 * The fast path tries the slots one by one without waiting, starting at a
 * per-backend pseudo-random slot, and applies the change with one
 * conditional UPDATE on the first free slot that can take it (made without
 * the executor while the table is as the extension made it:
 * inventory_direct.c).  If none
 * could, and some were busy, it waits for one busy slot (unless !wait).
 * It stops trying after INV_PROBES (4) busy slots and queues on the first
 * of them: a failed try is not free (LockAcquire inserts the lock and
 * proclock into the shared lock table under the partition LWLock, finds the
 * conflict, and deletes them again), and with 64 clients on 16 slots almost
 * every slot is busy.  Measured with perf on a 16-slot SKU (2 cores, noisy),
 * share of the backends' CPU: lock_slot() 0.2% at 8 clients but 6.6% at
 * 64 (LockAcquireExtended 1.7% -> 8.1%, LockReleaseAll 1.8% -> 3.9%, plus
 * 6.5% in the scheduler's task switch and 3.3% in ProcSleep); with at most
 * four tries lock_slot() fell to 5.0% (LockAcquireExtended 6.5%).  The
 * waits themselves (a context switch per queued buyer) remain: they are the
 * queue.
 * Only if that fails too does the slow path lock every slot in order, read
 * them all, and decide on the SKU's totals: a TAKE is 'insufficient' only
 * then, otherwise the available stock is spread evenly over the slots (the
 * rebalance) and taken from one of them.  Under READ COMMITTED the read
 * needs no row locks (every writer going through these functions holds the
 * slot lock until it has committed, so the newest committed version is the
 * truth, and answering 'insufficient' writes no WAL); under REPEATABLE READ
 * or SERIALIZABLE it uses FOR NO KEY UPDATE, so a slot changed after the
 * snapshot raises 40001.  The new values are written only over the values
 * read, so a write that bypassed the slot locks cannot be lost (40001).
 *
 * A SKU with one slot.  A buyer (TAKE) of a pinned one first waits for
 * slot 0's lock, then runs the conditional UPDATE, which finds the row
 * free (made without the executor, as on a slot, while the SKU still has
 * no slot 1; else, or if the row cannot take it, the SQL statement runs
 * and tells the two apart): the lock manager's queue hands the SKU from
 * one committed buyer to the next, waking one waiter.  Queueing inside the
 * UPDATE on the row lock instead (as 1.0 did, and as confirm, release and
 * expiry still do on a one-slot SKU whose row another transaction is
 * changing: they try the row without the executor and without waiting
 * first) wakes the waiters of the holder's transaction at its
 * commit, the first re-checks the new row version (EvalPlanQual) and
 * queues again behind the next holder, and the rest wait on the row's
 * tuple lock.  Measured (1.1, 64 clients on a pinned one-slot SKU, 2
 * cores, synchronous_commit on, 5 alternating rounds): 1.8-2.0x the
 * reservations per second, the same at one client (0.98-1.04x).  An
 * adaptive SKU's buyers still queue on the row: a split waits for slot 0's
 * lock first, and behind a queue of buyers it comes too late (measured, the
 * cold 64-client run on an adaptive SKU: 0.82-0.94x, 2 rounds).  So do a
 * transaction that already touched row 0 without the slot lock (a release,
 * say: it may hold the row) and reserve_all's baskets (a one-slot SKU there
 * takes no lock-table entry).  The slow path locks and reads only the row
 * (FOR NO KEY UPDATE), never the slot lock after it: an UPDATE whose
 * re-check failed keeps the row locked, and taking the slot lock after it
 * would invert the order stock_set uses.  wait => false tries the row with
 * FOR NO KEY UPDATE SKIP LOCKED.
 *
 * Lock order: all waiting is done in (SKU hash, slot) order -- slot lock
 * before row, or the row alone for the other one-slot waits -- so callers
 * that lock several SKUs (reserve_all, expire_reservations) or every slot of
 * one SKU (the slow path, stock_set, stock_add) never deadlock one another.
 * Tries that do not wait may be made in any order.
 *
 * After a backend was told 'insufficient' on a multi-slot SKU, reserve()
 * first checks that SKU's stock under all its slot locks (inv_slots_check)
 * before writing anything, so that the answers after a sell-out write no WAL;
 * if there is enough again, the slots are given back before the normal path
 * writes the reservation row, so no reservation row is written or waited for
 * while slots are held.
 *
 * The number of slots of a SKU is cached per backend; a stale cache makes a
 * fast-path UPDATE find no row (the slow path then reloads it).  The
 * one-slot UPDATEs also require that the SKU has no slot 1, so a cached
 * count of 1 for a SKU that has gained slots finds no row either, and the
 * count is re-read before anything else is done.  (Only an UPDATE that waited
 * for the very stock_set that added the slots can still change row 0: its
 * snapshot predates them.  It then holds row 0's row lock, so every writer
 * of that row waits for it, and a slow path that read the row before it
 * committed writes over the values read only, so it gets 40001.)  The slow
 * path of a one-slot SKU counts the slots after it has locked row 0 and
 * answers a retryable 40001 if there are more now.  A one-slot UPDATE made
 * with a cached count runs on a snapshot the call keeps: if it finds no row,
 * that snapshot showed one slot and the SKU has more now, the UPDATE may have
 * waited for the stock_set that added them and kept row 0 locked after its
 * re-check failed, so the call answers 40001 too, rather than wait for a
 * slot lock while holding row 0 (a stock_add holding the slot locks and
 * waiting for row 0 would deadlock with it).
 *
 * Adaptive SKUs (1.1).  A SKU made by stock_set() without slots carries
 * adaptive = true on its rows; a pinned one (slots => N, and every SKU of
 * 1.0) false.  The flag is cached with the count (read by the same
 * statement, only when the count is read).  The contention signal costs
 * nothing that is not done anyway and involves no timing:
 *
 * - one slot: before its UPDATE, an adaptive TAKE tries slot 0's lock
 *	 without waiting.  Granted: kept to the end of the transaction (no buyer
 *	 ever waits for it; stock_set, stock_add, a split or a merge do, as for
 *	 any slot).  Busy: another TAKE is in progress now; this one UPDATEs as
 *	 before, queueing on the row.  If the UPDATE finds the SKU has several
 *	 slots after all, the try is given back (nothing changed under it).
 * - several slots: every slot tried was busy.
 *
 * INV_SPLIT_EVENTS (2) such TAKEs in a row in one backend (an uncontended
 * TAKE resets the count) make it re-read the count (only then: a split by
 * another backend is learned here) and, if that has not grown, split the
 * SKU in its own transaction (split_and_apply): wait for every slot lock in
 * order, slot 0 first (once slot 0 is held, no stock_set, split or merge can
 * change the count), read every row under its row lock (a one-slot SKU's
 * row 0 is written by buyers without the slot lock; the row comes after the
 * slot lock in the global order), re-check the count and the flag, insert
 * the new rows empty, multiplying the count by INV_SPLIT_FACTOR (4) up to
 * consistency.inventory_max_slots, and let decide() spread the available
 * stock evenly and take the buyer's units.  Four, not two: a crowd reaches
 * 16 slots in two splits instead of four, and every split is a moment in
 * which the whole SKU waits for one transaction (measured: selling out 500
 * units to 64 buyers from one slot, 1.07x the time of a pinned 16-slot SKU
 * against 1.19x when doubling, medians of 8 alternating rounds); yet two
 * contending clients make 4 slots, not 16.  A backend never splits a SKU
 * whose row 0 its transaction has already touched on the one-slot path
 * (touched_row0(): it may hold the row lock, and must not then wait for
 * slot 0's lock).  One client never finds anything busy, so it never
 * splits.  At the ceiling nothing is re-read.  Splits and merges happen only under READ COMMITTED:
 * they read the count and the rows as they are now, which a transaction
 * snapshot would not show.  A backend learns a changed flag (stock_set
 * making a SKU adaptive or pinned) only with the count, i.e. when the count
 * next changes or the cache entry is lost; a stale "adaptive" is harmless,
 * the split re-reads the flag under the locks.
 *
 * Merges (merge_slots(), from maintenance()) take every slot lock and every
 * row lock of a SKU left unsplit for consistency.inventory_merge_after only
 * by trying (SKIP LOCKED for the rows): a busy one means the SKU is not
 * cool, and a merge that never waits can be part of no deadlock, whatever
 * it holds from the SKUs merged before in its batch.  The sums go on row 0,
 * the other rows are deleted.  A batch keeps the slot locks of the SKUs it
 * merged until it commits, at most INV_MAX_SLOT_LOCKS of them (as
 * reserve_all), and pages on past the busy SKUs it skips, in (resized_at,
 * sku) order, so that they do not hold up the cool ones behind them
 * (consistency_merge_slots).  A backend that still believes in several
 * slots finds rows missing: its fast-path UPDATEs find nothing and the slow
 * path reads the rows; if only row 0 is left it gives back the slot locks it
 * took and decides under row 0's row lock, as a one-slot SKU does, since
 * one-slot buyers write row 0 without the slot lock.
 *
 * Races: a one-slot UPDATE that queued on row 0 behind a split still
 * changes row 0 if there is enough there (its snapshot predates slot 1, as
 * after a stock_set; see above); one that then finds too little there tries
 * the new slots without waiting before it answers 40001.  So 40001 after a
 * split or merge is possible but rare (TAP 020: 1 retry in about 2,500
 * transactions of a 64-client sale that split and merged throughout).
 *
 * Every statement runs as the tables' owner (inv_exec): application roles
 * hold no write privilege on consistency.inventory or .reservations.
 *
 * IDENTIFICATION
 *	  src/inventory_slots.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "consistency.h"
#include "stats.h"
#include "inventory.h"

/* Consecutive contended TAKEs after which a backend splits an adaptive SKU. */
#define INV_SPLIT_EVENTS	2

/* How many times as many slots a split makes (see the header). */
#define INV_SPLIT_FACTOR	4

/* Busy slots the fast path finds before it queues on one (see inv_slots_apply). */
#define INV_PROBES			4

/* consistency.inventory_max_slots, consistency.inventory_merge_after (seconds) */
static int	inventory_max_slots = 16;
static int	inventory_merge_after = 5 * 60;

/* ----------------------------------------------------------------
 * Prepared statements (shared helper)
 * ----------------------------------------------------------------
 */

/*
 * The relation whose owner runs the inventory statements: consistency.inventory
 * (consistency.reservations has the same owner, the extension's); cached in
 * table_owner.c, so the hot path makes no catalog look-up for it.
 */
static Oid
inv_table_oid(void)
{
	return consistency_table_oid(CONSISTENCY_TABLE_INVENTORY);
}

/*
 * Execute a kept plan, preparing it on first use, as the tables' owner
 * (src/table_owner.c): application roles hold no write privilege on the
 * inventory tables, and the statements are fixed, fully qualified SQL on them
 * only.  With a snapshot, the statement runs on it (SPI_execute_snapshot),
 * else on a new one as usual.  The caller is connected to SPI.  Returns
 * SPI_processed.
 */
static uint64
exec_as_owner(InvStmt *stmt, Datum *values, const char *nulls, Snapshot snapshot,
			  bool read_only)
{
	ConsistencySavedUser saved;
	int			rc;

	consistency_become_owner(inv_table_oid(), &saved);
	consistency_keep_plan(&stmt->plan, stmt->sql, stmt->nargs, stmt->argtypes);
	if (snapshot == InvalidSnapshot)
		rc = SPI_execute_plan(stmt->plan, values, nulls, read_only, 0);
	else
		rc = SPI_execute_snapshot(stmt->plan, values, nulls, snapshot, InvalidSnapshot,
								  read_only, true, 0);
	consistency_restore_user(&saved);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 stmt->sql, SPI_result_code_string(rc));
	return SPI_processed;
}

uint64
inv_exec(InvStmt *stmt, Datum *values, const char *nulls, bool read_only)
{
	return exec_as_owner(stmt, values, nulls, InvalidSnapshot, read_only);
}

/* $1 = sku, $2 = slot, $3 = qty.  Conditions keep every CHECK true. */
static InvStmt stmt_take = {
	"UPDATE " INV_TABLE " SET reserved = reserved OPERATOR(pg_catalog.+) $3"
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) $2"
	" AND (on_hand OPERATOR(pg_catalog.-) reserved) OPERATOR(pg_catalog.>=) $3",
	3, {TEXTOID, INT4OID, INT8OID}
};
static InvStmt stmt_return = {
	"UPDATE " INV_TABLE " SET reserved = reserved OPERATOR(pg_catalog.-) $3"
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) $2 AND reserved OPERATOR(pg_catalog.>=) $3",
	3, {TEXTOID, INT4OID, INT8OID}
};
static InvStmt stmt_sell = {
	"UPDATE " INV_TABLE " SET reserved = reserved OPERATOR(pg_catalog.-) $3, on_hand = on_hand OPERATOR(pg_catalog.-) $3"
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) $2 AND reserved OPERATOR(pg_catalog.>=) $3",
	3, {TEXTOID, INT4OID, INT8OID}
};
/*
 * The same on a one-slot SKU's row 0, only while the SKU has no slot 1: a
 * backend whose cached slot count is 1 for a SKU that has since gained slots
 * finds no row and takes the path that re-reads the count, rather than
 * change row 0 without its slot lock.
 */
#define ONLY_ONE_SLOT \
	" AND NOT EXISTS (SELECT FROM " INV_TABLE " o" \
	" WHERE o.sku OPERATOR(pg_catalog.=) $1 AND o.slot OPERATOR(pg_catalog.=) 1)"
static InvStmt stmt_take_one = {
	"UPDATE " INV_TABLE " SET reserved = reserved OPERATOR(pg_catalog.+) $2"
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) 0"
	" AND (on_hand OPERATOR(pg_catalog.-) reserved) OPERATOR(pg_catalog.>=) $2" ONLY_ONE_SLOT,
	2, {TEXTOID, INT8OID}
};
static InvStmt stmt_return_one = {
	"UPDATE " INV_TABLE " SET reserved = reserved OPERATOR(pg_catalog.-) $2"
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) 0 AND reserved OPERATOR(pg_catalog.>=) $2" ONLY_ONE_SLOT,
	2, {TEXTOID, INT8OID}
};
static InvStmt stmt_sell_one = {
	"UPDATE " INV_TABLE " SET reserved = reserved OPERATOR(pg_catalog.-) $2, on_hand = on_hand OPERATOR(pg_catalog.-) $2"
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) 0 AND reserved OPERATOR(pg_catalog.>=) $2" ONLY_ONE_SLOT,
	2, {TEXTOID, INT8OID}
};
static InvStmt stmt_try_row = {
	"SELECT FROM " INV_TABLE " WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) $2"
	" FOR NO KEY UPDATE SKIP LOCKED",
	2, {TEXTOID, INT4OID}
};
/* shared with inventory_stock.c (declared in inventory.h) */
InvStmt		inv_stmt_nslots = {
	"SELECT pg_catalog.max(slot) OPERATOR(pg_catalog.+) 1 FROM " INV_TABLE " WHERE sku OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};
/* the same with the adaptive flag (1.1; all rows of a SKU carry the same) */
static InvStmt stmt_nslots_adaptive = {
	"SELECT pg_catalog.max(slot) OPERATOR(pg_catalog.+) 1, pg_catalog.bool_and(adaptive) FROM " INV_TABLE
	" WHERE sku OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};
InvStmt		inv_stmt_read_all = {
	"SELECT slot, on_hand, reserved FROM " INV_TABLE
	" WHERE sku OPERATOR(pg_catalog.=) $1 ORDER BY slot FOR NO KEY UPDATE",
	1, {TEXTOID}
};
/*
 * Locks row 0 only; the number of slots is read by inv_stmt_nslots in the next
 * statement, whose snapshot is taken after the lock was granted (a count in
 * this statement would be from before a wait for a stock_set that added
 * slots: the re-check after the wait does not recompute it).
 */
static InvStmt stmt_read_one = {
	"SELECT slot, on_hand, reserved FROM " INV_TABLE
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) 0 FOR NO KEY UPDATE",
	1, {TEXTOID}
};
static InvStmt stmt_read_all_plain = {
	"SELECT slot, on_hand, reserved FROM " INV_TABLE " WHERE sku OPERATOR(pg_catalog.=) $1 ORDER BY slot",
	1, {TEXTOID}
};
/* Absolute values, but only over the values read: a lost update is impossible. */
static InvStmt stmt_set_slot = {
	"UPDATE " INV_TABLE " SET on_hand = $3, reserved = $4"
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) $2"
	" AND on_hand OPERATOR(pg_catalog.=) $5 AND reserved OPERATOR(pg_catalog.=) $6",
	6, {TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID, INT8OID}
};

/* ----------------------------------------------------------------
 * SKUs, slot locks
 * ----------------------------------------------------------------
 */

#define INV_HASH_BITS	56

void
inv_sku_init(InvSku *s, text *sku)
{
	s->sku = sku;
	s->hash = hash_bytes_extended((const unsigned char *) VARDATA_ANY(sku),
								  VARSIZE_ANY_EXHDR(sku), 0) &
		((UINT64CONST(1) << INV_HASH_BITS) - 1);
}

/* The global lock order: by hash, then by name (a tie is a hash collision). */
int
inv_sku_cmp(const InvSku *a, const InvSku *b)
{
	int			la,
				lb,
				c;

	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	la = VARSIZE_ANY_EXHDR(a->sku);
	lb = VARSIZE_ANY_EXHDR(b->sku);
	c = memcmp(VARDATA_ANY(a->sku), VARDATA_ANY(b->sku), Min(la, lb));
	if (c != 0)
		return c;
	return (la > lb) - (la < lb);
}

static void
slot_tag(LOCKTAG *tag, const InvSku *s, int slot)
{
	Assert(slot >= 0 && slot < 256);
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId,
						 (uint32) (s->hash >> 24),
						 (uint32) ((s->hash & 0xFFFFFF) << 8) | (uint32) slot,
						 CONSISTENCY_LOCKTAG_INVENTORY);
}

/* Lock a slot; false only if !wait and another transaction holds it. */
static bool
lock_slot(const InvSku *s, int slot, bool wait)
{
	LOCKTAG		tag;

	slot_tag(&tag, s, slot);
	if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
		return true;
	if (!wait)
		return false;
	consistency_count(CSTAT_INV_LOCK_WAIT);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	return true;
}

/*
 * Give back one acquisition of a slot lock, made by this call and used only
 * for reading.  If the transaction took the lock earlier too (and may have
 * changed the row), that earlier acquisition keeps it held.
 */
static void
unlock_slot(const InvSku *s, int slot)
{
	LOCKTAG		tag;

	slot_tag(&tag, s, slot);
	LockRelease(&tag, ExclusiveLock, false);
}

/* Wait for every slot lock of the SKU, in slot order (stock_set, stock_add). */
void
inv_lock_all_slots(const InvSku *s, int nslots)
{
	int			i;

	for (i = 0; i < nslots; i++)
		lock_slot(s, i, true);
}

/* ----------------------------------------------------------------
 * Per-backend cache of the number of slots of each SKU
 * ----------------------------------------------------------------
 */

#define SLOT_CACHE_MAX	4096

typedef struct SlotCacheKey
{
	uint16		len;
	char		data[INV_MAX_SKU_BYTES];
} SlotCacheKey;

typedef struct SlotCacheEntry
{
	SlotCacheKey key;			/* must be first */
	int			nslots;
	bool		short_hint;		/* last TAKE here was 'insufficient' */
	bool		adaptive;		/* splits itself under contention */
	uint8		events;			/* consecutive contended TAKEs */
	TransactionId row0_xid;		/* transaction that last touched row 0 as a one-slot SKU */
} SlotCacheEntry;

static HTAB *slot_cache = NULL;

static void
cache_key(const InvSku *s, SlotCacheKey *k)
{
	int			len = VARSIZE_ANY_EXHDR(s->sku);

	Assert(len <= INV_MAX_SKU_BYTES);
	memset(k, 0, sizeof(*k));
	k->len = len;
	memcpy(k->data, VARDATA_ANY(s->sku), len);
}

static SlotCacheEntry *
cache_lookup(const InvSku *s, HASHACTION action)
{
	SlotCacheKey k;

	if (slot_cache == NULL || (action == HASH_ENTER &&
							   hash_get_num_entries(slot_cache) >= SLOT_CACHE_MAX))
	{
		HASHCTL		ctl;

		if (action != HASH_ENTER)
			return NULL;
		if (slot_cache != NULL)
			hash_destroy(slot_cache);
		ctl.keysize = sizeof(SlotCacheKey);
		ctl.entrysize = sizeof(SlotCacheEntry);
		ctl.hcxt = TopMemoryContext;
		slot_cache = hash_create("consistency inventory slots", 256, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	cache_key(s, &k);
	return (SlotCacheEntry *) hash_search(slot_cache, &k, action, NULL);
}

static SlotCacheEntry *
cache_set(const InvSku *s, int nslots)
{
	SlotCacheEntry *e = cache_lookup(s, HASH_FIND);

	if (e == NULL)
	{
		e = cache_lookup(s, HASH_ENTER);
		e->short_hint = false;
		e->adaptive = false;
		e->events = 0;
		e->row0_xid = InvalidTransactionId;
	}
	e->nslots = nslots;
	return e;
}

static void
set_short_hint(const InvSku *s, bool value)
{
	SlotCacheEntry *e = cache_lookup(s, HASH_FIND);

	if (e != NULL)
		e->short_hint = value;
}

/*
 * Did this backend's last TAKE on this SKU (with several slots) end in
 * 'insufficient'?  reserve() then checks the stock before writing anything.
 */
bool
inv_sku_looks_short(const InvSku *s)
{
	SlotCacheEntry *e;

	/* the check reads without row locks only under READ COMMITTED */
	if (IsolationUsesXactSnapshot())
		return false;
	e = cache_lookup(s, HASH_FIND);
	return e != NULL && e->short_hint && e->nslots > 1;
}

/* Forget a SKU's slot count (stock_set changed it). */
void
inv_forget_slots(const InvSku *s)
{
	cache_lookup(s, HASH_REMOVE);
}

void
inv_error_unknown_sku(text *sku)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_INV_UNKNOWN_SKU),
			 errmsg("unknown SKU \"%s\"", text_to_cstring(sku)),
			 errdetail("consistency.inventory has no stock row for this SKU."),
			 errhint("Create it with consistency.stock_set().")));
}

/*
 * Does consistency.inventory have the 1.1 columns (adaptive, resized_at)?
 * Not before ALTER EXTENSION ... UPDATE: a 1.0 database keeps working on
 * this library, with every SKU pinned.  A syscache look-up, made only when
 * the slot count is (re-)read.
 */
static bool
inv_has_adaptive(void)
{
	return get_attnum(inv_table_oid(), "adaptive") != InvalidAttrNumber;
}

/*
 * The SKU's number of slots as seen by snapshot (InvalidSnapshot: a new
 * one), or 0 if it has none; *adaptive (if not NULL) whether it is adaptive.
 */
static int
read_slot_info(const InvSku *s, Snapshot snapshot, bool *adaptive)
{
	Datum		v[1];
	bool		isnull;
	Datum		d;
	bool		with_flag = inv_has_adaptive();

	v[0] = PointerGetDatum(s->sku);
	exec_as_owner(with_flag ? &stmt_nslots_adaptive : &inv_stmt_nslots, v, NULL,
				  snapshot, snapshot != InvalidSnapshot);
	if (adaptive != NULL)
	{
		*adaptive = false;
		if (with_flag)
		{
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			*adaptive = !isnull && DatumGetBool(d);
		}
	}
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(d);
}

static int
read_nslots_in(const InvSku *s, Snapshot snapshot)
{
	return read_slot_info(s, snapshot, NULL);
}

/* Read the count and the adaptive flag and cache them; 0: unknown SKU. */
static int
reload_slots(const InvSku *s)
{
	bool		adaptive;
	int			n = read_slot_info(s, InvalidSnapshot, &adaptive);

	if (n > 0)
		cache_set(s, n)->adaptive = adaptive;
	else
		inv_forget_slots(s);
	return n;
}

/*
 * The SKU's number of slots as the newest committed rows have it (this
 * statement's snapshot), or 0 if it has none.
 */
static int
read_nslots(const InvSku *s)
{
	return read_nslots_in(s, InvalidSnapshot);
}

/*
 * The SKU's number of slots: cached, else read (unknown SKU: error).
 * *cached (if not NULL) tells which.
 */
static int
nslots_of(const InvSku *s, bool *cached)
{
	SlotCacheEntry *e = cache_lookup(s, HASH_FIND);
	int			n;

	if (cached != NULL)
		*cached = (e != NULL);
	if (e != NULL)
		return e->nslots;
	n = reload_slots(s);
	if (n == 0)
		inv_error_unknown_sku(s->sku);
	return n;
}

/*
 * The number of slots of a SKU (cached, else read), 0 for an unknown SKU:
 * for reserve_all's limit on slot locks, which leaves the error to the
 * operation itself.
 */
int
inv_nslots(const InvSku *s)
{
	SlotCacheEntry *e = cache_lookup(s, HASH_FIND);
	int			n;

	if (e != NULL)
		return e->nslots;
	n = reload_slots(s);
	return n;
}

/* ----------------------------------------------------------------
 * The fast path
 * ----------------------------------------------------------------
 */

/* Where this backend starts looking; moves on when it finds its slot busy. */
static uint32 start_seed = 0;
static bool start_seeded = false;

/*
 * The one-slot form: row 0, only while the SKU has no other slot; on
 * snapshot if one is given.
 */
static bool
apply_on_one(const InvSku *s, int64 qty, InvSlotOp op, Snapshot snapshot)
{
	Datum		v[2];
	InvStmt    *stmt;

	v[0] = PointerGetDatum(s->sku);
	v[1] = Int64GetDatum(qty);
	stmt = op == INV_TAKE ? &stmt_take_one : op == INV_RETURN ? &stmt_return_one : &stmt_sell_one;
	return exec_as_owner(stmt, v, NULL, snapshot, false) == 1;
}

static void
error_slots_changed(const InvSku *s)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("the slots of SKU \"%s\" changed during the operation",
					text_to_cstring(s->sku)),
			 errdetail("consistency.stock_set(), or a split or merge of an adaptive SKU, changed the number of slots concurrently."),
			 errhint("Retry the transaction.")));
}

static bool
apply_on_slot(const InvSku *s, int slot, int64 qty, InvSlotOp op)
{
	int			direct = inv_direct_apply(s, slot, qty, op);
	Datum		v[3];
	InvStmt    *stmt;

	if (direct >= 0)
		return direct == 1;
	v[0] = PointerGetDatum(s->sku);
	v[1] = Int32GetDatum(slot);
	v[2] = Int64GetDatum(qty);
	stmt = op == INV_TAKE ? &stmt_take : op == INV_RETURN ? &stmt_return : &stmt_sell;
	return inv_exec(stmt, v, NULL, false) == 1;
}

/*
 * Lock a slot row without waiting (FOR NO KEY UPDATE SKIP LOCKED); false if
 * another transaction holds it.
 */
static bool
try_row_lock(const InvSku *s, int slot)
{
	Datum		v[2];

	v[0] = PointerGetDatum(s->sku);
	v[1] = Int32GetDatum(slot);
	return inv_exec(&stmt_try_row, v, NULL, false) == 1;
}

/* Put back a TAKE made on a slot this transaction still holds (reserve_all). */
void
inv_slot_undo_take(const InvSku *s, int slot, int64 qty)
{
	if (!apply_on_slot(s, slot, qty, INV_RETURN))
		elog(ERROR, "could not undo a reservation on slot %d of SKU \"%s\"",
			 slot, text_to_cstring(s->sku));
}

static InvSlotResult slow_path(const InvSku *s, int64 qty, InvSlotOp op,
							   bool wait, bool holding_slot0, int *slot_used);
static InvSlotResult slow_path_one(const InvSku *s, int64 qty, InvSlotOp op,
								   int *slot_used);
static InvSlotResult split_and_apply(const InvSku *s, int64 qty, InvSlotOp op,
									 int *slot_used);

/*
 * A contended TAKE on an adaptive SKU: count it; true when this backend has
 * now seen INV_SPLIT_EVENTS in a row and should split the SKU.
 */
static bool
contention_event(const InvSku *s)
{
	SlotCacheEntry *e = cache_lookup(s, HASH_FIND);

	/*
	 * Splits and merges read the count and the rows as they are now, so
	 * only under READ COMMITTED (a transaction snapshot could predate
	 * another backend's split).
	 */
	if (e == NULL || !e->adaptive || e->nslots >= inventory_max_slots ||
		IsolationUsesXactSnapshot())
		return false;
	if (++e->events < INV_SPLIT_EVENTS)
		return false;
	e->events = 0;
	return true;
}

/* An uncontended TAKE: the events must be consecutive. */
static inline void
no_contention(SlotCacheEntry *e)
{
	if (e != NULL)
		e->events = 0;
}

/*
 * This transaction changed or locked row 0 of the SKU on the one-slot path
 * (without its slot lock): it must not wait for the slot lock afterwards.
 */
static void
note_row0(const InvSku *s)
{
	SlotCacheEntry *e = cache_lookup(s, HASH_FIND);

	if (e != NULL)
		e->row0_xid = GetTopTransactionIdIfAny();
}

static bool
touched_row0(const InvSku *s)
{
	SlotCacheEntry *e = cache_lookup(s, HASH_FIND);
	TransactionId xid = GetTopTransactionIdIfAny();

	return e != NULL && TransactionIdIsValid(xid) && TransactionIdEquals(e->row0_xid, xid);
}

/*
 * After a one-slot UPDATE that may hold row 0 found no row because the SKU
 * has gained slots: try the other slots without waiting (tries may be made
 * in any order) before giving up with 40001.
 */
static bool
try_other_slots(const InvSku *s, int n, int64 qty, InvSlotOp op, int *slot_used)
{
	int			slot;

	for (slot = 1; slot < n; slot++)
	{
		if (!lock_slot(s, slot, false))
			continue;
		if (apply_on_slot(s, slot, qty, op))
		{
			*slot_used = slot;
			return true;
		}
		unlock_slot(s, slot);
	}
	return false;
}

/*
 * Apply op for qty units of the SKU.  INV_TAKE may answer INV_INSUFFICIENT
 * (decided with every slot locked; the locks are kept to the end of the
 * transaction, so the caller's next statement sees the state the answer was
 * based on) or, only if !wait, INV_BUSY.  *slot_used is the slot changed, or
 * -1 when the slow path spread the change over several.  queue: a TAKE of a
 * pinned one-slot SKU may wait for slot 0's lock (see the header), and an
 * adaptive one's buyer tries it to notice contention; false for
 * reserve_all's baskets of several SKUs, whose one-slot SKUs, pinned or
 * adaptive, take no entry in the shared lock table (see check_slot_locks()
 * in inventory.c).
 */
InvSlotResult
inv_slots_apply(const InvSku *s, int64 qty, InvSlotOp op, bool wait, bool queue,
				int *slot_used)
{
	bool		cached;
	int			n = nslots_of(s, &cached);
	int			start;
	int			first_busy = -1;
	int			nbusy = 0;
	bool		recounted = false;
	int			i;

	if (!start_seeded)
	{
		start_seed = pg_prng_uint32(&pg_global_prng_state);
		start_seeded = true;
	}

	if (n == 1)
	{
		/*
		 * One slot: a pinned SKU's buyer queues on slot 0's lock, an
		 * adaptive SKU's on the row lock (see the header).
		 */
		Snapshot	snapshot = InvalidSnapshot;
		bool		done;
		bool		took0 = false;
		SlotCacheEntry *e = cache_lookup(s, HASH_FIND);

		/*
		 * An adaptive SKU's contention signal: try slot 0's lock without
		 * waiting (kept if granted: no buyer waits for it, only stock_set,
		 * stock_add, a split or a merge).  Busy means another TAKE is in
		 * progress right now.  Not in a basket of several SKUs (!queue): a
		 * basket's one-slot SKUs take no entry in the shared lock table
		 * (check_slot_locks() in inventory.c counts none for them, and a
		 * basket may hold 1000), so a basket neither counts as contention
		 * nor splits a SKU.
		 */
		if (op == INV_TAKE && queue && e != NULL && e->adaptive)
		{
			if (lock_slot(s, 0, false))
			{
				took0 = true;
				no_contention(e);
			}
			else if (contention_event(s) && wait && !touched_row0(s))
			{
				/* re-read the count: another backend may have split it */
				n = reload_slots(s);
				if (n == 0)
					inv_error_unknown_sku(s->sku);
				if (n == 1)
					return split_and_apply(s, qty, op, slot_used);
				cached = false;
				goto multi;
			}
		}

		/*
		 * A pinned SKU's buyers queue on slot 0's lock, then UPDATE a row
		 * nobody else is changing (see the header).  Not after this
		 * transaction touched row 0 without the slot lock: it may hold the
		 * row lock, and the slot lock comes first.
		 */
		if (op == INV_TAKE && wait && queue && !took0 && e != NULL && !e->adaptive &&
			!touched_row0(s))
		{
			lock_slot(s, 0, true);
			took0 = true;
		}

		if (!wait && !try_row_lock(s, 0))
			return INV_BUSY;

		/*
		 * Row 0 without the executor (inventory_direct.c), as the slot
		 * path changes a slot.  It waits for a concurrent writer of the row
		 * only where nobody else queues on the row: this call holds slot
		 * 0's lock, or (!wait) the row's own lock from the try above.
		 * Else a row another transaction is changing is left to the
		 * statement below, which queues on it and re-checks the newest
		 * version, as before; so is a row that cannot take the change and
		 * a SKU that has gained slots, which the statement tells apart.
		 * (Through SPI a one-slot reservation took 280k instructions, a
		 * 16-slot one 194k; callgrind, 1 client, PostgreSQL 15.)
		 */
		if (inv_direct_apply_one(s, qty, op, took0 || !wait) == 1)
		{
			note_row0(s);
			*slot_used = 0;
			return INV_DONE;
		}

		/*
		 * A cached count may be stale: keep the UPDATE's snapshot, to tell
		 * below what it saw.
		 */
		if (cached)
			snapshot = RegisterSnapshot(GetTransactionSnapshot());
		done = apply_on_one(s, qty, op, snapshot);
		note_row0(s);
		if (done)
		{
			if (cached)
				UnregisterSnapshot(snapshot);
			*slot_used = 0;
			return INV_DONE;
		}

		/*
		 * No row: not enough there, or (with a cached count) the SKU has
		 * gained slots since; then it takes the slot path like any
		 * multi-slot SKU, but only if the UPDATE cannot be holding row 0.
		 * If its snapshot saw one slot, it may have waited for the
		 * stock_set (or split) that added the others and, its re-check
		 * failing, kept row 0 locked: waiting for a slot lock now could
		 * deadlock with a stock_add or stock_set that holds the slot locks
		 * and wants row 0.  It tries the other slots without waiting, then
		 * retries (40001), as slow_path_one() does.  If its snapshot
		 * already saw several slots, it found no row to lock.
		 */
		if (cached)
		{
			bool		saw_one = read_nslots_in(s, snapshot) == 1;

			UnregisterSnapshot(snapshot);
			inv_forget_slots(s);
			n = nslots_of(s, NULL);
			/* the slot-0 try was for a one-slot SKU: it changed nothing under it */
			if (n > 1 && took0)
				unlock_slot(s, 0);
			if (n > 1 && saw_one)
			{
				if (try_other_slots(s, n, qty, op, slot_used))
					return INV_DONE;
				error_slots_changed(s);
			}
		}
		if (n == 1)
			return slow_path_one(s, qty, op, slot_used);
	}

multi:
	start = (int) (start_seed % (uint32) n);
	first_busy = -1;
	nbusy = 0;
	for (i = 0; i < n; i++)
	{
		int			slot = (start + i) % n;

		/*
		 * Enough slots found busy: queue on the first of them rather than
		 * probe the rest.  Each failed try costs a lock-table insert and
		 * delete under a partition LWLock; probing all 16 slots of a SKU
		 * with 64 clients was where the extra clients' CPU went.
		 */
		if (wait && nbusy >= INV_PROBES)
			break;

		if (!lock_slot(s, slot, false))
		{
			if (first_busy < 0)
				first_busy = slot;
			nbusy++;
			if (i == 0)			/* someone else works here: start elsewhere next time */
				start_seed = pg_prng_uint32(&pg_global_prng_state);
			continue;
		}
		if (apply_on_slot(s, slot, qty, op))
		{
			if (op == INV_TAKE)
				no_contention(cache_lookup(s, HASH_FIND));
			*slot_used = slot;
			return INV_DONE;
		}
		unlock_slot(s, slot);
	}

	/*
	 * Every slot probed was busy on an adaptive SKU: contention.  Re-read the count
	 * first (another backend may have split it), then split if this
	 * backend has seen enough.
	 */
	if (op == INV_TAKE && wait && nbusy == i && !recounted && n < inventory_max_slots)
	{
		SlotCacheEntry *e = cache_lookup(s, HASH_FIND);

		/* at the ceiling there is nothing to learn or do: no statement */
		if (e != NULL && e->adaptive)
		{
			int			now = reload_slots(s);

			recounted = true;
			if (now == 0)
				inv_error_unknown_sku(s->sku);
			if (now != n)
			{
				n = now;
				if (n == 1)
					return slow_path_one(s, qty, op, slot_used);
				goto multi;
			}
			if (contention_event(s))
				return split_and_apply(s, qty, op, slot_used);
		}
	}

	if (first_busy >= 0)
	{
		if (!wait)
			return INV_BUSY;
		lock_slot(s, first_busy, true);
		if (apply_on_slot(s, first_busy, qty, op))
		{
			*slot_used = first_busy;
			return INV_DONE;
		}
		/* slot 0 is the first the slow path locks: keep it */
		if (first_busy != 0)
			unlock_slot(s, first_busy);
	}
	return slow_path(s, qty, op, wait, first_busy == 0, slot_used);
}

/* ----------------------------------------------------------------
 * The slow path: every slot locked, decide on the totals
 * ----------------------------------------------------------------
 */

typedef struct SlotRow
{
	int			slot;
	int64		on_hand;
	int64		reserved;
	int64		new_on_hand;
	int64		new_reserved;
} SlotRow;

static int
read_slots_by(const InvSku *s, InvStmt *stmt, SlotRow *rows)
{
	Datum		v[1];
	uint64		n,
				i;

	v[0] = PointerGetDatum(s->sku);
	n = inv_exec(stmt, v, NULL, false);
	if (n > INV_MAX_SLOTS)
		elog(ERROR, "SKU \"%s\" has %d slot rows, more than the %d allowed",
			 text_to_cstring(s->sku), (int) n, INV_MAX_SLOTS);
	for (i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		rows[i].slot = DatumGetInt32(SPI_getbinval(t, d, 1, &isnull));
		rows[i].on_hand = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
		rows[i].reserved = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
		rows[i].new_on_hand = rows[i].on_hand;
		rows[i].new_reserved = rows[i].reserved;
	}
	return (int) n;
}

static int
read_slots(const InvSku *s, SlotRow *rows, bool lock_rows)
{
	return read_slots_by(s, lock_rows ? &inv_stmt_read_all : &stmt_read_all_plain, rows);
}

static int
read_all_slots(const InvSku *s, SlotRow *rows)
{
	return read_slots(s, rows, IsolationUsesXactSnapshot());
}

static void
write_changed_slots(const InvSku *s, SlotRow *rows, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		Datum		v[6];

		if (rows[i].new_on_hand == rows[i].on_hand &&
			rows[i].new_reserved == rows[i].reserved)
			continue;
		v[0] = PointerGetDatum(s->sku);
		v[1] = Int32GetDatum(rows[i].slot);
		v[2] = Int64GetDatum(rows[i].new_on_hand);
		v[3] = Int64GetDatum(rows[i].new_reserved);
		v[4] = Int64GetDatum(rows[i].on_hand);
		v[5] = Int64GetDatum(rows[i].reserved);
		if (inv_exec(&stmt_set_slot, v, NULL, false) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("slot %d of SKU \"%s\" was changed concurrently",
							rows[i].slot, text_to_cstring(s->sku)),
					 errdetail("A write that bypassed the consistency functions changed the slot while its lock was held."),
					 errhint("Retry the transaction.")));
	}
}

/*
 * With every slot of the SKU locked and read into rows[0..n-1]: apply op
 * to the totals, or answer INV_INSUFFICIENT.
 */
static InvSlotResult
decide(const InvSku *s, SlotRow *rows, int n, int64 qty, InvSlotOp op, int *slot_used)
{
	int			i;

	*slot_used = -1;
	if (op == INV_TAKE)
	{
		int64		avail = 0;
		int64		rest;
		int			target = 0;

		for (i = 0; i < n; i++)
		{
			int64		a = rows[i].on_hand - rows[i].reserved;

			avail += a;
			if (a > rows[target].on_hand - rows[target].reserved)
				target = i;
		}
		if (avail < qty)
		{
			set_short_hint(s, true);
			return INV_INSUFFICIENT;
		}

		/* rebalance: what stays available is spread evenly over the slots */
		consistency_count(CSTAT_INV_REBALANCED);
		rest = avail - qty;
		for (i = 0; i < n; i++)
		{
			int64		share = rest / n + (i < rest % n ? 1 : 0);

			rows[i].new_reserved = rows[i].reserved + (i == target ? qty : 0);
			rows[i].new_on_hand = rows[i].new_reserved + share;
		}
		*slot_used = rows[target].slot;
	}
	else
	{
		int64		left = qty;

		for (i = 0; i < n && left > 0; i++)
		{
			int64		d = Min(rows[i].reserved, left);

			rows[i].new_reserved = rows[i].reserved - d;
			if (op == INV_SELL)
				rows[i].new_on_hand = rows[i].on_hand - d;
			left -= d;
		}
		if (left > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("SKU \"%s\" has less stock reserved than its active reservations hold",
							text_to_cstring(s->sku)),
					 errdetail("Returning %lld units, but only %lld are reserved over all slots.",
							   (long long) qty, (long long) (qty - left)),
					 errhint("Run consistency.check_inventory() and repair the stock with consistency.stock_set().")));
	}
	write_changed_slots(s, rows, n);
	return INV_DONE;
}

/*
 * The slow path of a one-slot SKU.  The row lock is the slot lock here:
 * the fast path may already hold it (an UPDATE whose re-check failed keeps
 * the row locked), so taking the slot lock now would be a second lock taken
 * in the opposite order to stock_set's and could deadlock.  Only the row is
 * locked and read.  If the SKU has gained slots meanwhile (stock_set), this
 * backend's picture is stale and it gives up with a retryable 40001 rather
 * than wait for other slots while holding this row.
 */
static InvSlotResult
slow_path_one(const InvSku *s, int64 qty, InvSlotOp op, int *slot_used)
{
	SlotRow		row;
	Datum		v[1];
	HeapTuple	t;
	TupleDesc	d;
	bool		isnull;

	v[0] = PointerGetDatum(s->sku);
	if (inv_exec(&stmt_read_one, v, NULL, false) != 1)
	{
		inv_forget_slots(s);
		inv_error_unknown_sku(s->sku);
	}
	t = SPI_tuptable->vals[0];
	d = SPI_tuptable->tupdesc;
	row.slot = DatumGetInt32(SPI_getbinval(t, d, 1, &isnull));
	row.on_hand = row.new_on_hand = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
	row.reserved = row.new_reserved = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
	note_row0(s);

	/*
	 * Count the slots in a new statement: its snapshot is taken after the
	 * row lock was granted, so it sees every slot a stock_set we waited for
	 * added (and with row 0 locked, no stock_set can change them now).
	 */
	if (read_nslots(s) != 1)
	{
		inv_forget_slots(s);
		error_slots_changed(s);
	}
	return decide(s, &row, 1, qty, op, slot_used);
}

static InvSlotResult
slow_path(const InvSku *s, int64 qty, InvSlotOp op, bool wait,
		  bool holding_slot0, int *slot_used)
{
	SlotRow		rows[INV_MAX_SLOTS];
	int			locked = holding_slot0 ? 1 : 0;
	int			n;
	int			want;

	want = nslots_of(s, NULL);
	for (;;)
	{
		for (; locked < want; locked++)
		{
			if (!lock_slot(s, locked, wait))
			{
				/* only without wait: give back what this call took, unchanged */
				while (--locked >= 0)
					unlock_slot(s, locked);
				return INV_BUSY;
			}
		}
		n = read_all_slots(s, rows);
		if (n == 0)
		{
			inv_forget_slots(s);
			inv_error_unknown_sku(s->sku);
		}
		want = rows[n - 1].slot + 1;
		cache_set(s, want);
		if (want == 1 && locked > 1)
		{
			/*
			 * Merged into one slot since the count was cached: row 0 is now
			 * changed by one-slot buyers that hold no slot lock, so decide
			 * under its row lock, as a one-slot SKU does.  The slots this
			 * call took were only read.
			 */
			inv_unlock_slots(s, locked);
			return slow_path_one(s, qty, op, slot_used);
		}
		if (want <= locked)
			break;
		/* more slots than we knew of (stock_set meanwhile): lock those too */
	}

	return decide(s, rows, n, qty, op, slot_used);
}

/*
 * For a SKU that looks short: lock every slot in order and read the totals
 * before anything is written.  INV_INSUFFICIENT (locks kept to the end of
 * the transaction, as always) and INV_BUSY are answers that wrote nothing,
 * so they need no transaction id and no WAL flush.  INV_DONE means there is
 * enough now; the slots were only read and are unlocked again, and the
 * caller takes the normal path.  *nlocked is the number of slots (0..n-1)
 * this call holds locked on return: after INV_INSUFFICIENT the caller may
 * still give them back with inv_unlock_slots(), having written nothing.
 */
InvSlotResult
inv_slots_check(const InvSku *s, int64 qty, bool wait, int *nlocked)
{
	SlotRow		rows[INV_MAX_SLOTS];
	int			want = nslots_of(s, NULL);
	int			locked = 0;
	int64		avail = 0;
	int			n,
				i;

	for (;;)
	{
		for (; locked < want; locked++)
		{
			if (!lock_slot(s, locked, wait))
			{
				while (--locked >= 0)
					unlock_slot(s, locked);
				*nlocked = 0;
				return INV_BUSY;
			}
		}
		n = read_all_slots(s, rows);
		if (n == 0)
		{
			inv_forget_slots(s);
			inv_error_unknown_sku(s->sku);
		}
		want = rows[n - 1].slot + 1;
		cache_set(s, want);
		if (want <= locked)
			break;
	}
	for (i = 0; i < n; i++)
		avail += rows[i].on_hand - rows[i].reserved;
	if (avail < qty)
	{
		*nlocked = locked;
		return INV_INSUFFICIENT;
	}
	/* enough: give the (unchanged) slots back before the caller writes */
	inv_unlock_slots(s, locked);
	*nlocked = 0;
	set_short_hint(s, false);
	return INV_DONE;
}

/*
 * Give back one acquisition of slots 0..nlocked-1, taken by inv_slots_check()
 * and used only for reading.
 */
void
inv_unlock_slots(const InvSku *s, int nlocked)
{
	while (--nlocked >= 0)
		unlock_slot(s, nlocked);
}

/* ----------------------------------------------------------------
 * Adaptive SKUs: split under contention, merge when cool
 * ----------------------------------------------------------------
 */

/* $1 = sku, $2 = first new slot, $3 = new number of slots */
static InvStmt stmt_add_slots = {
	"INSERT INTO " INV_TABLE " (sku, slot, on_hand, reserved, adaptive)"
	" SELECT $1, g, 0, 0, true FROM pg_catalog.generate_series($2, $3 OPERATOR(pg_catalog.-) 1) AS g",
	3, {TEXTOID, INT4OID, INT4OID}
};
static InvStmt stmt_resized = {
	"UPDATE " INV_TABLE " SET resized_at = pg_catalog.statement_timestamp()"
	" WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.=) 0",
	1, {TEXTOID}
};
/*
 * The SKUs maintenance() may merge: adaptive, several slots, unsplit for $1
 * seconds; at most $2, oldest first.  (resized_at, sku) is a total order
 * (no resized_at first, SKUs byte by byte), so that a batch pages on past
 * the SKUs it skipped as busy: the _after form starts behind ($3, $4), the
 * last SKU of the page before.
 */
#define MERGE_SINCE "coalesce(z.resized_at, '-infinity'::pg_catalog.timestamptz)"
#define MERGE_SKU	"(z.sku COLLATE pg_catalog.\"C\")"
#define MERGE_CANDIDATES \
	"SELECT z.sku, " MERGE_SINCE " FROM " INV_TABLE " z" \
	" WHERE z.slot OPERATOR(pg_catalog.=) 0 AND z.adaptive" \
	"   AND " MERGE_SINCE " OPERATOR(pg_catalog.<=)" \
	"       (pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))" \
	"   AND EXISTS (SELECT FROM " INV_TABLE " o" \
	"               WHERE o.sku OPERATOR(pg_catalog.=) z.sku AND o.slot OPERATOR(pg_catalog.=) 1)"
#define MERGE_CANDIDATES_ORDER " ORDER BY " MERGE_SINCE ", " MERGE_SKU " LIMIT $2"
static InvStmt stmt_merge_candidates = {
	MERGE_CANDIDATES MERGE_CANDIDATES_ORDER,
	2, {FLOAT8OID, INT4OID}
};
static InvStmt stmt_merge_candidates_after = {
	MERGE_CANDIDATES
	"   AND (" MERGE_SINCE " OPERATOR(pg_catalog.>) $3"
	"        OR (" MERGE_SINCE " OPERATOR(pg_catalog.=) $3 AND " MERGE_SKU " OPERATOR(pg_catalog.>) $4))"
	MERGE_CANDIDATES_ORDER,
	4, {FLOAT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID}
};
static InvStmt stmt_read_all_skip = {
	"SELECT slot, on_hand, reserved FROM " INV_TABLE
	" WHERE sku OPERATOR(pg_catalog.=) $1 ORDER BY slot FOR NO KEY UPDATE SKIP LOCKED",
	1, {TEXTOID}
};
static InvStmt stmt_drop_slots = {
	"DELETE FROM " INV_TABLE " WHERE sku OPERATOR(pg_catalog.=) $1 AND slot OPERATOR(pg_catalog.>=) 1",
	1, {TEXTOID}
};

/*
 * Split an adaptive SKU in the buyer's own transaction and apply the
 * buyer's TAKE.  Every slot lock is taken in order, waiting (slot 0 first:
 * once it is held, no stock_set, split or merge can change the count), then
 * every row is read under its row lock: a one-slot SKU's row 0 is changed
 * by buyers that hold no slot lock, and its row lock comes after the slot
 * lock in the global order.  The caller holds no lock on row 0 (see
 * touched_row0()).  The count and the flag are re-read under the locks: a
 * SKU that was pinned, reached the ceiling or was split by another backend
 * meanwhile is only served, as the slow path would.  The new slots
 * (INV_SPLIT_FACTOR times as many, up to consistency.inventory_max_slots)
 * are inserted empty, and decide() spreads what stays available evenly over
 * all of them.
 */
static InvSlotResult
split_and_apply(const InvSku *s, int64 qty, InvSlotOp op, int *slot_used)
{
	SlotRow		rows[INV_MAX_SLOTS];
	int			want = nslots_of(s, NULL);
	int			locked = 0;
	int			n,
				m,
				i;
	bool		adaptive = false;
	int64		avail = 0;

	Assert(op == INV_TAKE);
	for (;;)
	{
		for (; locked < want; locked++)
			lock_slot(s, locked, true);
		want = read_slot_info(s, InvalidSnapshot, &adaptive);
		if (want == 0)
		{
			inv_forget_slots(s);
			inv_error_unknown_sku(s->sku);
		}
		if (want <= locked)
			break;
	}
	n = read_slots(s, rows, true);
	if (n == 0)
	{
		inv_forget_slots(s);
		inv_error_unknown_sku(s->sku);
	}
	if (rows[n - 1].slot != n - 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("slots of SKU \"%s\" are not numbered 0..%d", text_to_cstring(s->sku), n - 1),
				 errhint("Run consistency.check_inventory(), then consistency.stock_set().")));
	cache_set(s, n)->adaptive = adaptive;
	for (i = 0; i < n; i++)
		avail += rows[i].on_hand - rows[i].reserved;

	m = n;
	if (adaptive && n < inventory_max_slots && avail >= qty)
		m = Min(INV_SPLIT_FACTOR * n, inventory_max_slots);
	if (m > n)
	{
		Datum		v[3];

		for (i = n; i < m; i++)
		{
			lock_slot(s, i, true);	/* in order; nobody else knows it yet */
			rows[i].slot = i;
			rows[i].on_hand = rows[i].new_on_hand = 0;
			rows[i].reserved = rows[i].new_reserved = 0;
		}
		v[0] = PointerGetDatum(s->sku);
		v[1] = Int32GetDatum(n);
		v[2] = Int32GetDatum(m);
		inv_exec(&stmt_add_slots, v, NULL, false);
		inv_exec(&stmt_resized, v, NULL, false);
		consistency_count(CSTAT_INV_SPLIT);
		cache_set(s, m);
	}
	return decide(s, rows, m, qty, op, slot_used);
}

/*
 * Merge one adaptive SKU back into one slot, if it is cool: every slot lock
 * and every row lock is only tried (a busy one means the SKU is not cool,
 * and a merge that never waits cannot be part of a deadlock, whatever it
 * holds from the SKUs merged before it in the batch).  The sums go on row 0
 * (reservations have no slot), slots 1..n-1 are deleted.  room is how many
 * more slot locks the batch may hold.  Returns the number of slot locks
 * kept to the end of the transaction (the SKU's slots) if merged, 0 if the
 * SKU was skipped, -1 if its slots do not fit in room (nothing locked).
 */
static int
merge_sku(const InvSku *s, int room)
{
	SlotRow		rows[INV_MAX_SLOTS];
	Datum		v[1];
	bool		adaptive;
	int			n,
				locked,
				i;

	n = read_slot_info(s, InvalidSnapshot, &adaptive);
	if (n <= 1 || !adaptive)
		return 0;
	if (n > room)
		return -1;
	for (locked = 0; locked < n; locked++)
		if (!lock_slot(s, locked, false))
			break;
	if (locked == n)
	{
		/* under slot 0's lock the count cannot change any more */
		if (read_slot_info(s, InvalidSnapshot, &adaptive) != n || !adaptive)
			locked = -1;
	}
	if (locked != n)
	{
		inv_unlock_slots(s, locked < 0 ? n : locked);
		return 0;
	}
	if (read_slots_by(s, &stmt_read_all_skip, rows) != n)
	{
		/* a row is locked (a one-slot buyer with a stale count): not cool */
		inv_unlock_slots(s, n);
		return 0;
	}
	for (i = 1; i < n; i++)
	{
		rows[0].new_on_hand += rows[i].on_hand;
		rows[0].new_reserved += rows[i].reserved;
	}
	v[0] = PointerGetDatum(s->sku);
	inv_exec(&stmt_drop_slots, v, NULL, false);
	write_changed_slots(s, rows, 1);	/* the sums on row 0, over the values read */
	inv_exec(&stmt_resized, v, NULL, false);
	inv_forget_slots(s);
	consistency_count(CSTAT_INV_MERGED);
	return n;
}

/*
 * Candidates are read in pages of this many: as many as one batch can merge
 * (every candidate has at least two slots), so that a batch that skips no
 * SKU reads one page.
 */
#define MERGE_PAGE	(INV_MAX_SLOT_LOCKS / 2)

/*
 * Read the next page of merge candidates into skus (allocated in cxt): the
 * first page if after_sku is NULL, else the one behind (*since, after_sku).
 * *since becomes the position of the page's last SKU.  Returns how many
 * were read.  Connects to SPI itself, so that the result is freed at once.
 */
static int
merge_candidates(text **skus, TimestampTz *since, text *after_sku, MemoryContext cxt)
{
	Datum		v[4];
	uint64		n,
				i;
	MemoryContext old;

	SPI_connect();
	v[0] = Float8GetDatum((double) inventory_merge_after);
	v[1] = Int32GetDatum(MERGE_PAGE);
	if (after_sku == NULL)
		n = inv_exec(&stmt_merge_candidates, v, NULL, true);
	else
	{
		v[2] = TimestampTzGetDatum(*since);
		v[3] = PointerGetDatum(after_sku);
		n = inv_exec(&stmt_merge_candidates_after, v, NULL, true);
	}
	Assert(n <= MERGE_PAGE);
	old = MemoryContextSwitchTo(cxt);
	for (i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		skus[i] = DatumGetTextPCopy(SPI_getbinval(t, d, 1, &isnull));
		if (i == n - 1)
			*since = DatumGetTimestampTz(SPI_getbinval(t, d, 2, &isnull));
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	return (int) n;
}

/*
 * merge_slots(batch_size) -> number of SKUs merged back into one slot: the
 * adaptive SKUs with several slots left unsplit for
 * consistency.inventory_merge_after, oldest first; maintenance() calls it
 * and commits after each batch.
 *
 * A batch merges at most batch_size SKUs and keeps at most
 * INV_MAX_SLOT_LOCKS slot locks: a merged SKU's slot locks are held until
 * the batch commits, each an entry in the shared lock table, and 500 cool
 * SKUs of 16 slots would otherwise hold 8,000 of them, more than the table
 * has with the default settings (53200 for every session, and the next run
 * would pick the same SKUs and fail again).  The batch ends before the SKU
 * whose slots would pass the limit; a SKU has at most INV_MAX_SLOTS, so
 * every batch can merge its first cool candidate.  (What is counted is the
 * merged SKUs' slots, an upper bound on the entries they add: a lock this
 * transaction already held adds none.)
 *
 * A busy SKU is skipped and keeps its place in the queue: the batch pages
 * on behind it, in (resized_at, sku) order, so that busy SKUs at the head
 * cannot keep the cool ones behind them from being merged.  Otherwise the
 * batch ends only when the candidates do: 0 means that none could be merged
 * now, which is when maintenance() stops.  Each SKU is looked at in an SPI
 * connection of its own, so a batch that skips many keeps no memory for
 * them.
 */
PG_FUNCTION_INFO_V1(consistency_merge_slots);

Datum
consistency_merge_slots(PG_FUNCTION_ARGS)
{
	int32		batch_size;
	text	   *skus[MERGE_PAGE];
	TimestampTz since = 0;
	text	   *after_sku = NULL;
	MemoryContext callcxt = CurrentMemoryContext;
	MemoryContext pagecxt;
	int64		merged = 0;
	int			locks = 0;
	bool		done = false;

	consistency_arg_not_null(fcinfo, 0, "batch_size");
	batch_size = PG_GETARG_INT32(0);
	if (batch_size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be positive"),
				 errdetail("The batch_size given is %d.", batch_size)));

	/* merges only under READ COMMITTED (see contention_event()); a 1.0 table has none */
	if (IsolationUsesXactSnapshot() || !inv_has_adaptive())
		PG_RETURN_INT64(0);

	pagecxt = AllocSetContextCreate(callcxt, "consistency merge_slots candidates",
									ALLOCSET_DEFAULT_SIZES);
	while (!done)
	{
		int			n,
					i;

		MemoryContextReset(pagecxt);
		n = merge_candidates(skus, &since, after_sku, pagecxt);
		for (i = 0; i < n && !done; i++)
		{
			InvSku		s;
			int			kept;

			inv_sku_init(&s, skus[i]);
			SPI_connect();
			kept = merge_sku(&s, INV_MAX_SLOT_LOCKS - locks);
			SPI_finish();
			if (kept < 0)
				done = true;	/* the next batch merges it */
			else if (kept > 0)
			{
				merged++;
				locks += kept;
				done = merged >= batch_size;
			}
		}
		if (n < MERGE_PAGE)
			done = true;
		else if (!done)
		{
			/* page on behind the last SKU of this page */
			if (after_sku != NULL)
				pfree(after_sku);
			after_sku = (text *) MemoryContextAlloc(callcxt, VARSIZE_ANY(skus[n - 1]));
			memcpy(after_sku, skus[n - 1], VARSIZE_ANY(skus[n - 1]));
		}
	}
	MemoryContextDelete(pagecxt);
	PG_RETURN_INT64(merged);
}

void
consistency_inventory_init(void)
{
	DefineCustomIntVariable("consistency.inventory_max_slots",
							"Number of slots an adaptive SKU may split itself into.",
							"A SKU created by stock_set() without slots starts with one slot and "
							"quadruples its slots under contention, up to this ceiling.  1 turns splitting off.",
							&inventory_max_slots,
							16, 1, INV_MAX_SLOTS,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("consistency.inventory_merge_after",
							"How long an adaptive SKU must stay unsplit before consistency.maintenance() merges it.",
							"maintenance() merges such a SKU back into one slot when none of its slots is busy.",
							&inventory_merge_after,
							5 * 60, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}
