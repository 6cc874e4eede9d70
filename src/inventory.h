/*-------------------------------------------------------------------------
 *
 * inventory.h
 *	  Interface between the reservation functions (inventory.c), the stock
 *	  administration functions (inventory_stock.c) and the slot engine that
 *	  moves stock under slot locks (inventory_slots.c).
 *
 * IDENTIFICATION
 *	  src/inventory.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_INVENTORY_H
#define CONSISTENCY_INVENTORY_H

#include "datatype/timestamp.h"
#include "executor/spi.h"

/* Limits; README.md documents them. */
#define INV_MAX_SKU_BYTES		255
#define INV_MAX_ID_BYTES		255
#define INV_MAX_SLOTS			64
#define INV_MAX_LINES			1000
/* slot locks one reserve_all may hold: the slots of its multi-slot SKUs */
#define INV_MAX_SLOT_LOCKS		512

#define INV_TABLE	"consistency.inventory"
#define RES_TABLE	"consistency.reservations"

/* A statement prepared on first use and kept for the backend's life. */
typedef struct InvStmt
{
	const char *sql;
	int			nargs;
	Oid			argtypes[8];
	SPIPlanPtr	plan;
} InvStmt;

/* Statements both inventory_slots.c and inventory_stock.c run (defined in the former). */
extern InvStmt inv_stmt_nslots;		/* number of slots of a SKU */
extern InvStmt inv_stmt_read_all;	/* every slot of a SKU, row-locked, in slot order */

extern uint64 inv_exec(InvStmt *stmt, Datum *values, const char *nulls,
					   bool read_only);

/* What a slot operation does to the SKU's stock. */
typedef enum InvSlotOp
{
	INV_TAKE,					/* reserve: reserved += qty */
	INV_RETURN,					/* release/expire: reserved -= qty */
	INV_SELL					/* confirm: reserved -= qty, on_hand -= qty */
} InvSlotOp;

typedef enum InvSlotResult
{
	INV_DONE,
	INV_INSUFFICIENT,			/* all slots locked: not enough available */
	INV_BUSY					/* only without wait: a slot lock was busy */
} InvSlotResult;

/* A SKU as the functions receive it, with its lock hash. */
typedef struct InvSku
{
	text	   *sku;
	uint64		hash;			/* 56-bit hash: orders and names slot locks */
} InvSku;

extern void inv_sku_init(InvSku *s, text *sku);
extern int	inv_sku_cmp(const InvSku *a, const InvSku *b);
extern InvSlotResult inv_slots_apply(const InvSku *s, int64 qty, InvSlotOp op,
									 bool wait, bool queue, int *slot_used);
extern bool inv_sku_looks_short(const InvSku *s);
extern int	inv_nslots(const InvSku *s);
extern InvSlotResult inv_slots_check(const InvSku *s, int64 qty, bool wait,
									 int *nlocked);
extern void inv_unlock_slots(const InvSku *s, int nlocked);
extern void inv_slot_undo_take(const InvSku *s, int slot, int64 qty);
extern void inv_lock_all_slots(const InvSku *s, int nslots);
extern void inv_forget_slots(const InvSku *s);
extern void inv_error_unknown_sku(text *sku);

/* inventory_direct.c: the fast path's one-slot UPDATE without the executor (-1: not done) */
extern int	inv_direct_apply(const InvSku *s, int slot, int64 qty, InvSlotOp op);
extern int	inv_direct_apply_one(const InvSku *s, int64 qty, InvSlotOp op, bool wait);

/* inventory.c: one reservation, as reserve() makes it (arguments checked). */
extern TimestampTz inv_expiry(TimestampTz now, Interval *ttl);
extern const char *inv_reserve_one(const InvSku *s, int64 qty, text *id, TimestampTz now,
								   TimestampTz expires, bool wait, bool count);
extern void inv_reserve_group(const InvSku *s, int n, const int64 *qty, text *const *ids,
							  const TimestampTz *nows, const TimestampTz *expires,
							  const char **answers);
extern void inv_count_answer(const char *answer);	/* consistency.stats */
/* inventory_combine.c: the same, combined with concurrent reserve_now() calls. */
extern const char *inv_reserve_now(InvSku *s, int64 qty, text *id, Interval *ttl, bool wait);

#endif							/* CONSISTENCY_INVENTORY_H */
