/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Cumulative counters of what the extension does, per database:
 *	  consistency.stats and consistency.stats_reset().
 *
 * The capabilities bump counters with the inline calls of stats.h, which add
 * to this backend's pending array only.  At the end of each transaction
 * (commit, abort or prepare) that counted something, the pending counts are
 * added to the database's shared counters with atomic additions, so a
 * counted call takes no lock and touches no shared cache line; the backend
 * finds its database's slot once (under the slot lock) and keeps it.
 *
 * Each database that counted something (or read the view) has a slot, of at
 * most STATS_MAX_DATABASES.  A slot is freed when its database is dropped:
 * a ProcessUtility hook notes a DROP DATABASE that dropped it, and its
 * transaction's commit frees the slot.  A slot can
 * also outlive its database (one dropped while the library was not loaded,
 * and read back from the file, or dropped on a primary while this server is
 * its standby): when no slot is free, a backend that can read the catalog
 * frees the slots of databases that no longer exist, before giving up.  A
 * database that finds every slot held by other, existing, databases counts
 * nothing, and the view says so in a row with a reason.
 *
 * The shared counters exist only when the library is in
 * shared_preload_libraries (they live in shared memory, which PG15 gives out
 * only to preloaded libraries).  Otherwise consistency.stats returns one row
 * saying so, and the pending counts are dropped at transaction end.
 *
 * consistency.track_stats (bool, on, superuser) switches counting off, as
 * track_counts does for PostgreSQL's own statistics: the calls then count
 * nothing, and the view shows the figures counted so far.  It is there so
 * that the cost of counting can be measured (test/bench/60-stats.sh).
 *
 * Like PostgreSQL's own statistics, the counters survive a clean shutdown
 * (the postmaster writes them to pg_stat/consistency.stat when it exits after
 * a shutdown checkpoint, and reads them back, then removes the file, at the
 * next start) and start from zero after a crash or an immediate shutdown.
 * Free slots are not saved.
 *
 * IDENTIFICATION
 *	  src/stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_control.h"
#include "catalog/pg_database.h"
#include "common/controldata_utils.h"
#include "common/hashfn.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "consistency.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(consistency_stats);
PG_FUNCTION_INFO_V1(consistency_stats_reset);

/* This backend's counts since its last flush (stats.h bumps them). */
uint64		consistency_stats_pending[CSTAT_NUM];
bool		consistency_stats_dirty = false;

/* consistency.track_stats */
bool		consistency_track_stats = true;

/* The capability and name of each counter, as consistency.stats shows them. */
static const struct
{
	const char *capability;
	const char *name;
}			counter_names[CSTAT_NUM] =
{
	[CSTAT_IDEM_NEW] = {"idempotency", "new"},
	[CSTAT_IDEM_REPLAY] = {"idempotency", "replay"},
	[CSTAT_IDEM_IN_PROGRESS] = {"idempotency", "in_progress"},
	[CSTAT_IDEM_MISMATCH] = {"idempotency", "mismatch"},
	[CSTAT_IDEM_TAKEOVER] = {"idempotency", "lease_takeover"},
	[CSTAT_IDEM_FENCED] = {"idempotency", "fenced"},
	[CSTAT_IDEM_PURGED] = {"idempotency", "purged"},
	[CSTAT_VER_CHECKED] = {"versioning", "checked"},
	[CSTAT_VER_CONFLICT] = {"versioning", "conflict"},
	[CSTAT_VER_STRICT_REFUSED] = {"versioning", "strict_refused"},
	[CSTAT_INV_RESERVED] = {"inventory", "reserved"},
	[CSTAT_INV_INSUFFICIENT] = {"inventory", "insufficient"},
	[CSTAT_INV_BUSY] = {"inventory", "busy"},
	[CSTAT_INV_CONFIRMED] = {"inventory", "confirmed"},
	[CSTAT_INV_RELEASED] = {"inventory", "released"},
	[CSTAT_INV_EXPIRED] = {"inventory", "expired"},
	[CSTAT_INV_REBALANCED] = {"inventory", "slot_rebalance"},
	[CSTAT_INV_LOCK_WAIT] = {"inventory", "lock_wait"},
	[CSTAT_INV_SPLIT] = {"inventory", "slot_split"},
	[CSTAT_INV_MERGED] = {"inventory", "slot_merge"},
	[CSTAT_TOK_WAIT] = {"tokens", "wait"},
	[CSTAT_TOK_WAIT_US] = {"tokens", "wait_time_us"},
	[CSTAT_TOK_MAX_WAIT_US] = {"tokens", "max_wait_us"},
	[CSTAT_TOK_TIMEOUT] = {"tokens", "timeout"},
	[CSTAT_TOK_DIVERGED] = {"tokens", "diverged"},
	[CSTAT_TOK_WRONG_CLUSTER] = {"tokens", "wrong_cluster"},
	[CSTAT_TOK_STALE_REFUSED] = {"tokens", "stale_refused"},
	[CSTAT_TOK_NUDGE] = {"tokens", "receive_nudge"},
	[CSTAT_TPC_DECISION] = {"twophase", "decision_logged"},
	[CSTAT_TPC_COMMITTED] = {"twophase", "resolved_commit"},
	[CSTAT_TPC_ROLLED_BACK] = {"twophase", "resolved_rollback"},
	[CSTAT_TPC_HEURISTIC] = {"twophase", "resolved_heuristic"},
	[CSTAT_TPC_BUSY] = {"twophase", "resolve_busy"},
};

/* Databases whose counters are kept; the counters of any further one are not. */
#define STATS_MAX_DATABASES 256

typedef struct StatsDatabase
{
	Oid			dboid;			/* InvalidOid: slot free; set under the lock */
	pg_atomic_uint64 reset_at;	/* TimestampTz of the last reset, or 0 */
	pg_atomic_uint64 counters[CSTAT_NUM];
} StatsDatabase;

typedef struct StatsShared
{
	LWLock	   *lock;			/* protects the slots' dboid */
	pg_atomic_uint32 nfreed;	/* slots freed so far */
	StatsDatabase databases[STATS_MAX_DATABASES];
} StatsShared;

static StatsShared *stats = NULL;

/* This backend's slot, found at its first flush, or NULL. */
static StatsDatabase *my_database = NULL;

/*
 * When this backend last looked for a slot and found none: stats->nfreed at
 * the time (it looks again only once a slot was freed since), and whether
 * that look freed the slots of dropped databases (which needs the catalog).
 */
static bool my_database_full = false;
static bool my_database_full_reclaimed = false;
static uint32 my_database_full_nfreed = 0;

/* The database this transaction's DROP DATABASE drops: its slot is freed at commit. */
static Oid	dropping_database = InvalidOid;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

#define STATS_FILE			PGSTAT_STAT_PERMANENT_DIRECTORY "/consistency.stat"
#define STATS_FILE_MAGIC	0x43535431	/* "CST1" */

static void stats_shmem_request(void);
static void stats_shmem_startup(void);
static void stats_shmem_shutdown(int code, Datum arg);
static void stats_xact_callback(XactEvent event, void *arg);
static void stats_process_utility(PlannedStmt *pstmt, const char *queryString,
								  bool readOnlyTree, ProcessUtilityContext context,
								  ParamListInfo params, QueryEnvironment *queryEnv,
								  DestReceiver *dest, QueryCompletion *qc);

/* Checksum of the counter list, so a file written by another list is ignored. */
static uint32
counter_list_hash(void)
{
	uint32		h = CSTAT_NUM;
	int			i;

	for (i = 0; i < CSTAT_NUM; i++)
	{
		h = hash_combine(h, hash_bytes((const unsigned char *) counter_names[i].capability,
									   strlen(counter_names[i].capability)));
		h = hash_combine(h, hash_bytes((const unsigned char *) counter_names[i].name,
									   strlen(counter_names[i].name)));
	}
	return h;
}

static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(StatsShared));
	RequestNamedLWLockTranche("consistency stats", 1);
}

/* Read the file the postmaster wrote at its last clean shutdown, then remove it. */
static void
stats_load_file(void)
{
	FILE	   *f;
	uint32		header[3];
	int			i;
	int			n = 0;

	f = AllocateFile(STATS_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", STATS_FILE)));
		return;
	}
	if (fread(header, sizeof(header), 1, f) != 1 ||
		header[0] != STATS_FILE_MAGIC || header[1] != counter_list_hash() ||
		header[2] > STATS_MAX_DATABASES)
	{
		ereport(LOG,
				(errmsg("ignoring consistency statistics file \"%s\"", STATS_FILE),
				 errdetail("It was not written by this version of the extension, or is damaged.")));
		goto done;
	}
	for (i = 0; i < (int) header[2]; i++)
	{
		Oid			dboid;
		uint64		values[CSTAT_NUM + 1];
		StatsDatabase *d = &stats->databases[n];
		int			c;

		if (fread(&dboid, sizeof(dboid), 1, f) != 1 ||
			fread(values, sizeof(values), 1, f) != 1)
		{
			ereport(LOG,
					(errmsg("consistency statistics file \"%s\" is truncated", STATS_FILE)));
			break;
		}
		if (!OidIsValid(dboid))
			continue;
		d->dboid = dboid;
		pg_atomic_write_u64(&d->reset_at, values[0]);
		for (c = 0; c < CSTAT_NUM; c++)
			pg_atomic_write_u64(&d->counters[c], values[c + 1]);
		n++;
	}
done:
	FreeFile(f);
	unlink(STATS_FILE);
}

static void
stats_shmem_startup(void)
{
	bool		found;
	int			i;
	int			c;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats = ShmemInitStruct("consistency stats", sizeof(StatsShared), &found);
	if (!found)
	{
		stats->lock = &(GetNamedLWLockTranche("consistency stats"))->lock;
		pg_atomic_init_u32(&stats->nfreed, 0);
		for (i = 0; i < STATS_MAX_DATABASES; i++)
		{
			stats->databases[i].dboid = InvalidOid;
			pg_atomic_init_u64(&stats->databases[i].reset_at, 0);
			for (c = 0; c < CSTAT_NUM; c++)
				pg_atomic_init_u64(&stats->databases[i].counters[c], 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);

	/* only the postmaster loads and saves the file, as pg_stat_statements does */
	if (!IsUnderPostmaster)
	{
		on_shmem_exit(stats_shmem_shutdown, (Datum) 0);
		if (!found)
			stats_load_file();
	}
}

/* Postmaster exit: save the counters, unless this is a crash. */
static void
stats_shmem_shutdown(int code, Datum arg)
{
	FILE	   *f;
	uint32		header[3];
	int			i;
	int			c;
	int			n = 0;
	ControlFileData *control;
	bool		crc_ok;

	if (code != 0 || stats == NULL)
		return;

	/*
	 * An immediate shutdown exits with code 0 too; only a checkpoint at
	 * shutdown leaves pg_control saying "shut down".  PostgreSQL's own
	 * statistics are discarded when the next start must recover: so are
	 * ours.
	 */
	control = get_controlfile(DataDir, &crc_ok);
	if (!crc_ok || (control->state != DB_SHUTDOWNED &&
					control->state != DB_SHUTDOWNED_IN_RECOVERY))
		return;

	f = AllocateFile(STATS_FILE ".tmp", PG_BINARY_W);
	if (f == NULL)
		goto error;
	/* every backend has exited: no lock needed */
	for (i = 0; i < STATS_MAX_DATABASES; i++)
		if (OidIsValid(stats->databases[i].dboid))
			n++;
	header[0] = STATS_FILE_MAGIC;
	header[1] = counter_list_hash();
	header[2] = n;
	if (fwrite(header, sizeof(header), 1, f) != 1)
		goto error;
	for (i = 0; i < STATS_MAX_DATABASES; i++)
	{
		StatsDatabase *d = &stats->databases[i];
		uint64		values[CSTAT_NUM + 1];

		if (!OidIsValid(d->dboid))
			continue;			/* free */
		values[0] = pg_atomic_read_u64(&d->reset_at);
		for (c = 0; c < CSTAT_NUM; c++)
			values[c + 1] = pg_atomic_read_u64(&d->counters[c]);
		if (fwrite(&d->dboid, sizeof(d->dboid), 1, f) != 1 ||
			fwrite(values, sizeof(values), 1, f) != 1)
			goto error;
	}
	if (FreeFile(f))
	{
		f = NULL;
		goto error;
	}
	(void) durable_rename(STATS_FILE ".tmp", STATS_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", STATS_FILE ".tmp")));
	if (f)
		FreeFile(f);
	unlink(STATS_FILE ".tmp");
}

/* The slot of database dboid, or NULL.  The caller holds the lock. */
static StatsDatabase *
find_slot(Oid dboid)
{
	int			i;

	for (i = 0; i < STATS_MAX_DATABASES; i++)
		if (stats->databases[i].dboid == dboid)
			return &stats->databases[i];
	return NULL;
}

/*
 * A free slot for database dboid, at zero, or NULL if none is free.  The
 * caller holds the lock exclusively.
 */
static StatsDatabase *
take_free_slot(Oid dboid)
{
	StatsDatabase *d = find_slot(InvalidOid);
	int			c;

	if (d == NULL)
		return NULL;
	/* whatever a dropped database left in it goes */
	pg_atomic_write_u64(&d->reset_at, 0);
	for (c = 0; c < CSTAT_NUM; c++)
		pg_atomic_write_u64(&d->counters[c], 0);
	d->dboid = dboid;
	return d;
}

/* Free the slot of database dboid, if it has one. */
static void
free_database_slot(Oid dboid)
{
	StatsDatabase *d;

	LWLockAcquire(stats->lock, LW_EXCLUSIVE);
	d = find_slot(dboid);
	if (d != NULL)
	{
		d->dboid = InvalidOid;
		pg_atomic_fetch_add_u32(&stats->nfreed, 1);
	}
	LWLockRelease(stats->lock);
}

/*
 * Free the slots of databases that no longer exist: dropped while the
 * library was not loaded (the slots came back from the file), or on the
 * primary of this standby.  Reads the catalog, so only in a transaction.
 * Returns how many were freed.
 */
static int
free_dropped_slots(void)
{
	Oid			dboids[STATS_MAX_DATABASES];
	bool		gone[STATS_MAX_DATABASES];
	int			nfreed = 0;
	int			i;

	Assert(IsTransactionState());
	LWLockAcquire(stats->lock, LW_SHARED);
	for (i = 0; i < STATS_MAX_DATABASES; i++)
		dboids[i] = stats->databases[i].dboid;
	LWLockRelease(stats->lock);

	/*
	 * A slot is taken only by a backend connected to its database, after the
	 * CREATE DATABASE committed: read the catalog as of now, not as of a
	 * snapshot or cache entry older than the slots just read.
	 */
	AcceptInvalidationMessages();
	InvalidateCatalogSnapshot();
	for (i = 0; i < STATS_MAX_DATABASES; i++)
		gone[i] = OidIsValid(dboids[i]) &&
			!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboids[i]));

	LWLockAcquire(stats->lock, LW_EXCLUSIVE);
	for (i = 0; i < STATS_MAX_DATABASES; i++)
	{
		/* a freed slot may have been taken again meanwhile: by a live database */
		if (gone[i] && stats->databases[i].dboid == dboids[i])
		{
			stats->databases[i].dboid = InvalidOid;
			nfreed++;
		}
	}
	if (nfreed > 0)
		pg_atomic_fetch_add_u32(&stats->nfreed, nfreed);
	LWLockRelease(stats->lock);
	return nfreed;
}

/* dboid's slot, or a free one taken for it; NULL if there is none free */
static StatsDatabase *
find_or_take_slot(Oid dboid)
{
	StatsDatabase *found;

	LWLockAcquire(stats->lock, LW_EXCLUSIVE);
	found = find_slot(dboid);
	if (found == NULL)
		found = take_free_slot(dboid);
	LWLockRelease(stats->lock);
	return found;
}

/*
 * This database's slot, taking a free one the first time; when none is free
 * and the caller can read the catalog (can_free), after freeing the slots of
 * dropped databases.  NULL when every slot is held by other databases.
 */
static StatsDatabase *
database_slot(Oid dboid, bool can_free)
{
	StatsDatabase *found;

	LWLockAcquire(stats->lock, LW_SHARED);
	found = find_slot(dboid);
	LWLockRelease(stats->lock);
	if (found != NULL)
		return found;

	found = find_or_take_slot(dboid);
	if (found != NULL || !can_free || free_dropped_slots() == 0)
		return found;
	return find_or_take_slot(dboid);
}

/*
 * Find this backend's slot (my_database) if it has none yet; can_free as for
 * database_slot().  False when there is none.  Once none was found, the next
 * look happens only after a slot was freed, or when it can free the slots of
 * dropped databases and the last look could not.
 */
static bool
attach_database(bool can_free)
{
	uint32		nfreed;

	if (my_database != NULL)
		return true;
	if (!OidIsValid(MyDatabaseId))
		return false;
	nfreed = pg_atomic_read_u32(&stats->nfreed);
	if (my_database_full && nfreed == my_database_full_nfreed &&
		(my_database_full_reclaimed || !can_free))
		return false;
	my_database = database_slot(MyDatabaseId, can_free);
	my_database_full = (my_database == NULL);
	my_database_full_reclaimed = can_free;
	my_database_full_nfreed = nfreed;
	return my_database != NULL;
}

/* Add this backend's pending counts to the shared counters, and clear them. */
static void
stats_flush(void)
{
	int			c;

	if (!consistency_stats_dirty)
		return;
	if (stats != NULL && OidIsValid(MyDatabaseId))
	{
		/*
		 * No catalog access here (the transaction has ended).  With no free
		 * slot, the counts wait for a transaction that can free the slots
		 * of dropped databases (stats_xact_callback, consistency_stats),
		 * unless one of this backend's already did and found none.
		 */
		if (!attach_database(false) && !my_database_full_reclaimed)
			return;
		if (my_database != NULL)
		{
			for (c = 0; c < CSTAT_NUM; c++)
			{
				uint64		v = consistency_stats_pending[c];

				if (v == 0)
					continue;
				if (c == CSTAT_TOK_MAX_WAIT_US)
				{
					uint64		old = pg_atomic_read_u64(&my_database->counters[c]);

					while (v > old &&
						   !pg_atomic_compare_exchange_u64(&my_database->counters[c], &old, v))
						;
				}
				else
					pg_atomic_fetch_add_u64(&my_database->counters[c], v);
			}
		}
	}
	memset(consistency_stats_pending, 0, sizeof(consistency_stats_pending));
	consistency_stats_dirty = false;
}

static void
stats_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* the catalog can still be read: a slot can be found now */
			if (consistency_stats_dirty && my_database == NULL && stats != NULL)
				(void) attach_database(true);
			break;
		case XACT_EVENT_COMMIT:
			/* DROP DATABASE committed: its counters go */
			if (OidIsValid(dropping_database))
			{
				free_database_slot(dropping_database);
				dropping_database = InvalidOid;
			}
			stats_flush();
			break;
		case XACT_EVENT_ABORT:
			dropping_database = InvalidOid;
			stats_flush();
			break;
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			stats_flush();
			break;
		default:
			break;
	}
}

/*
 * The database DROP DATABASE dbname will drop, locked as dropdb() locks it
 * (get_db_info()'s loop: look the name up, lock the database, and look
 * again in case it was renamed meanwhile), so that the drop finds the same
 * one; InvalidOid if there is none.
 */
static Oid
database_to_drop(const char *dbname)
{
	for (;;)
	{
		Oid			dboid = get_database_oid(dbname, true);
		HeapTuple	tup;
		bool		same;

		if (!OidIsValid(dboid))
			return InvalidOid;
		/* also takes in the invalidations of a rename we waited for */
		LockSharedObject(DatabaseRelationId, dboid, 0, AccessExclusiveLock);
		tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
		same = HeapTupleIsValid(tup) &&
			strcmp(NameStr(((Form_pg_database) GETSTRUCT(tup))->datname), dbname) == 0;
		if (HeapTupleIsValid(tup))
			ReleaseSysCache(tup);
		if (same)
			return dboid;
		UnlockSharedObject(DatabaseRelationId, dboid, 0, AccessExclusiveLock);
	}
}

/*
 * DROP DATABASE: once it has dropped the database, note it, and its
 * transaction's commit frees its slot (the commit follows the statement: it
 * cannot run in a transaction block).  A ProcessUtility hook, not an
 * object_access_hook: from PostgreSQL 17 on, any object_access_hook makes
 * every backend recompute its search path's final form at each use, and
 * every function that sets search_path (all of this extension's) would pay.
 */
static void
stats_process_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Oid			dboid = InvalidOid;

	if (IsA(pstmt->utilityStmt, DropdbStmt) && stats != NULL)
		dboid = database_to_drop(((DropdbStmt *) pstmt->utilityStmt)->dbname);

	consistency_next_utility(prev_ProcessUtility, pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);

	/* it returned: dropped (a drop that fails raises an error) */
	if (OidIsValid(dboid))
		dropping_database = dboid;
}

/* The row of the current database that says why it has no counters. */
static void
reason_row(ReturnSetInfo *rsinfo, const char *reason)
{
	Datum		values[7];
	bool		nulls[7];
	char	   *datname = get_database_name(MyDatabaseId);

	memset(nulls, true, sizeof(nulls));
	values[0] = ObjectIdGetDatum(MyDatabaseId);
	nulls[0] = false;
	if (datname != NULL)
	{
		NameData   *dbname = palloc0(sizeof(NameData));

		namestrcpy(dbname, datname);
		values[1] = NameGetDatum(dbname);
		nulls[1] = false;
	}
	values[6] = CStringGetTextDatum(reason);
	nulls[6] = false;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * consistency.stats(): one row per counter of every database that counted
 * something; without shared memory, one row with the reason, and so when the
 * current database has no slot.
 *	  -> (datid, datname, capability, counter, value, stats_reset, reason)
 */
Datum
consistency_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[7];
	bool		nulls[7];
	Oid			dboids[STATS_MAX_DATABASES];
	StatsDatabase *slots[STATS_MAX_DATABASES];
	int			n = 0;
	int			i;
	int			c;
	bool		dropped = false;

	InitMaterializedSRF(fcinfo, 0);

	if (stats == NULL)
	{
		reason_row(rsinfo, "consistency is not in shared_preload_libraries: the counters live in shared memory, which only a preloaded library has");
		PG_RETURN_NULL();
	}

	/* this database, at zero before anything was counted in it */
	(void) attach_database(true);
	/* and this backend's own counts so far */
	stats_flush();

	LWLockAcquire(stats->lock, LW_SHARED);
	for (i = 0; i < STATS_MAX_DATABASES; i++)
	{
		if (!OidIsValid(stats->databases[i].dboid))
			continue;
		dboids[n] = stats->databases[i].dboid;
		slots[n] = &stats->databases[i];
		n++;
	}
	LWLockRelease(stats->lock);

	for (i = 0; i < n; i++)
	{
		char	   *datname = get_database_name(dboids[i]);
		NameData   *dbname;
		uint64		reset_at = pg_atomic_read_u64(&slots[i]->reset_at);

		if (datname == NULL)
		{
			dropped = true;		/* its slot is freed below */
			continue;
		}
		dbname = palloc0(sizeof(NameData));
		namestrcpy(dbname, datname);
		memset(nulls, false, sizeof(nulls));
		values[0] = ObjectIdGetDatum(dboids[i]);
		values[1] = NameGetDatum(dbname);
		values[5] = TimestampTzGetDatum((TimestampTz) reset_at);
		nulls[5] = (reset_at == 0);
		nulls[6] = true;
		for (c = 0; c < CSTAT_NUM; c++)
		{
			values[2] = CStringGetTextDatum(counter_names[c].capability);
			values[3] = CStringGetTextDatum(counter_names[c].name);
			values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&slots[i]->counters[c]));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}

	if (dropped)
		(void) free_dropped_slots();
	if (my_database == NULL && OidIsValid(MyDatabaseId))
		reason_row(rsinfo,
				   psprintf("consistency keeps the counters of at most %d databases, and other databases hold every slot: nothing is counted in this one",
							STATS_MAX_DATABASES));
	PG_RETURN_NULL();
}

/*
 * consistency.stats_reset(): set this database's counters to zero.  Returns
 * false, changing nothing, when there are no shared counters, or none for
 * this database (every slot is held by other databases).
 */
Datum
consistency_stats_reset(PG_FUNCTION_ARGS)
{
	int			c;

	if (stats == NULL)
		PG_RETURN_BOOL(false);

	/* counts of this transaction so far go with the old figures */
	memset(consistency_stats_pending, 0, sizeof(consistency_stats_pending));
	consistency_stats_dirty = false;

	if (!attach_database(true))
		PG_RETURN_BOOL(false);
	for (c = 0; c < CSTAT_NUM; c++)
		pg_atomic_write_u64(&my_database->counters[c], 0);
	pg_atomic_write_u64(&my_database->reset_at, (uint64) GetCurrentTimestamp());
	PG_RETURN_BOOL(true);
}

void
consistency_stats_init(void)
{
	DefineCustomBoolVariable("consistency.track_stats",
							 "Collects the counters of consistency.stats.",
							 "When off, the extension's calls count nothing; the counters keep their values.",
							 &consistency_track_stats,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	RegisterXactCallback(stats_xact_callback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = stats_process_utility;
}
