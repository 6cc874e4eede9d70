/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  The extension's cumulative counters (consistency.stats): the list of
 *	  counters and the one-line calls the capabilities make to bump them.
 *
 * A call only adds to this backend's pending array; src/stats.c adds the
 * pending counts to the database's shared counters at transaction end (with
 * atomic additions, no lock), so counting costs a memory increment on the
 * hot paths.  Without shared_preload_libraries the pending counts are
 * dropped at transaction end.  consistency.track_stats = off (like
 * track_counts) makes the calls count nothing.
 *
 * IDENTIFICATION
 *	  src/stats.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_STATS_H
#define CONSISTENCY_STATS_H

/*
 * The counters, in the order consistency.stats lists them.  Adding one: add
 * it at the end of its capability, and its name in stats.c; the stats file
 * written at shutdown is discarded when the list changes (CSTAT_NUM and the
 * names are part of its header).
 */
typedef enum ConsistencyCounter
{
	/* idempotency keys */
	CSTAT_IDEM_NEW,
	CSTAT_IDEM_REPLAY,
	CSTAT_IDEM_IN_PROGRESS,
	CSTAT_IDEM_MISMATCH,
	CSTAT_IDEM_TAKEOVER,
	CSTAT_IDEM_FENCED,
	CSTAT_IDEM_PURGED,
	/* optimistic versioning */
	CSTAT_VER_CHECKED,
	CSTAT_VER_CONFLICT,
	CSTAT_VER_STRICT_REFUSED,
	/* inventory reservation */
	CSTAT_INV_RESERVED,
	CSTAT_INV_INSUFFICIENT,
	CSTAT_INV_BUSY,
	CSTAT_INV_CONFIRMED,
	CSTAT_INV_RELEASED,
	CSTAT_INV_EXPIRED,
	CSTAT_INV_REBALANCED,
	CSTAT_INV_LOCK_WAIT,
	CSTAT_INV_SPLIT,
	CSTAT_INV_MERGED,
	/* session LSN tokens */
	CSTAT_TOK_WAIT,
	CSTAT_TOK_WAIT_US,
	CSTAT_TOK_MAX_WAIT_US,		/* a maximum, not a sum */
	CSTAT_TOK_TIMEOUT,
	CSTAT_TOK_DIVERGED,
	CSTAT_TOK_WRONG_CLUSTER,
	CSTAT_TOK_STALE_REFUSED,
	CSTAT_TOK_NUDGE,
	/* in-doubt two-phase commit */
	CSTAT_TPC_DECISION,
	CSTAT_TPC_COMMITTED,
	CSTAT_TPC_ROLLED_BACK,
	CSTAT_TPC_HEURISTIC,
	CSTAT_TPC_BUSY,
	CSTAT_NUM
} ConsistencyCounter;

extern PGDLLIMPORT uint64 consistency_stats_pending[CSTAT_NUM];
extern PGDLLIMPORT bool consistency_stats_dirty;
extern PGDLLIMPORT bool consistency_track_stats;

/* Count n events. */
static inline void
consistency_count_n(ConsistencyCounter c, uint64 n)
{
	if (!consistency_track_stats)
		return;
	consistency_stats_pending[c] += n;
	consistency_stats_dirty = true;
}

/* Count one event. */
static inline void
consistency_count(ConsistencyCounter c)
{
	consistency_count_n(c, 1);
}

/* Record a value of a maximum counter (CSTAT_TOK_MAX_WAIT_US). */
static inline void
consistency_count_max(ConsistencyCounter c, uint64 v)
{
	if (!consistency_track_stats)
		return;
	if (v > consistency_stats_pending[c])
		consistency_stats_pending[c] = v;
	consistency_stats_dirty = true;
}

#endif							/* CONSISTENCY_STATS_H */
