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
#include "common/controldata_utils.h"
#include "common/hashfn.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
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
	LWLock	   *lock;			/* protects slot assignment */
	int			ndatabases;		/* slots in use */
	StatsDatabase databases[STATS_MAX_DATABASES];
} StatsShared;

static StatsShared *stats = NULL;

/* This backend's slot, found at its first flush. */
static StatsDatabase *my_database = NULL;
static bool my_database_full = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#define STATS_FILE			PGSTAT_STAT_PERMANENT_DIRECTORY "/consistency.stat"
#define STATS_FILE_MAGIC	0x43535431	/* "CST1" */

static void stats_shmem_request(void);
static void stats_shmem_startup(void);
static void stats_shmem_shutdown(int code, Datum arg);
static void stats_xact_callback(XactEvent event, void *arg);

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
		StatsDatabase *d = &stats->databases[stats->ndatabases];
		int			c;

		if (fread(&dboid, sizeof(dboid), 1, f) != 1 ||
			fread(values, sizeof(values), 1, f) != 1)
		{
			ereport(LOG,
					(errmsg("consistency statistics file \"%s\" is truncated", STATS_FILE)));
			break;
		}
		d->dboid = dboid;
		pg_atomic_write_u64(&d->reset_at, values[0]);
		for (c = 0; c < CSTAT_NUM; c++)
			pg_atomic_write_u64(&d->counters[c], values[c + 1]);
		stats->ndatabases++;
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
		stats->ndatabases = 0;
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
	header[0] = STATS_FILE_MAGIC;
	header[1] = counter_list_hash();
	header[2] = stats->ndatabases;
	if (fwrite(header, sizeof(header), 1, f) != 1)
		goto error;
	for (i = 0; i < stats->ndatabases; i++)
	{
		StatsDatabase *d = &stats->databases[i];
		uint64		values[CSTAT_NUM + 1];

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

/*
 * This database's slot, taking a free one the first time; NULL when every
 * slot is taken by other databases.
 */
static StatsDatabase *
database_slot(Oid dboid, bool create)
{
	StatsDatabase *found = NULL;
	int			i;

	LWLockAcquire(stats->lock, create ? LW_EXCLUSIVE : LW_SHARED);
	for (i = 0; i < stats->ndatabases; i++)
		if (stats->databases[i].dboid == dboid)
			found = &stats->databases[i];
	if (found == NULL && create && stats->ndatabases < STATS_MAX_DATABASES)
	{
		found = &stats->databases[stats->ndatabases++];
		found->dboid = dboid;
	}
	LWLockRelease(stats->lock);
	return found;
}

/* Add this backend's pending counts to the shared counters, and clear them. */
static void
stats_flush(void)
{
	int			c;

	if (!consistency_stats_dirty)
		return;
	if (stats != NULL && OidIsValid(MyDatabaseId) && !my_database_full)
	{
		if (my_database == NULL)
		{
			my_database = database_slot(MyDatabaseId, true);
			my_database_full = (my_database == NULL);
		}
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
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			stats_flush();
			break;
		default:
			break;
	}
}

/*
 * consistency.stats(): one row per counter of every database that counted
 * something; without shared memory, one row with the reason.
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
	int			n;
	int			i;
	int			c;

	InitMaterializedSRF(fcinfo, 0);

	if (stats == NULL)
	{
		char	   *datname = get_database_name(MyDatabaseId);
		NameData   *dbname = palloc0(sizeof(NameData));

		memset(nulls, true, sizeof(nulls));
		values[0] = ObjectIdGetDatum(MyDatabaseId);
		nulls[0] = false;
		if (datname != NULL)
		{
			namestrcpy(dbname, datname);
			values[1] = NameGetDatum(dbname);
			nulls[1] = false;
		}
		values[6] = CStringGetTextDatum("consistency is not in shared_preload_libraries: the counters live in shared memory, which only a preloaded library has");
		nulls[6] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		PG_RETURN_NULL();
	}

	/* this backend's own counts so far are shown too */
	stats_flush();
	/* and this database, at zero, before anything was counted in it */
	if (my_database == NULL && !my_database_full && OidIsValid(MyDatabaseId))
	{
		my_database = database_slot(MyDatabaseId, true);
		my_database_full = (my_database == NULL);
	}

	LWLockAcquire(stats->lock, LW_SHARED);
	n = stats->ndatabases;
	for (i = 0; i < n; i++)
	{
		dboids[i] = stats->databases[i].dboid;
		slots[i] = &stats->databases[i];
	}
	LWLockRelease(stats->lock);

	for (i = 0; i < n; i++)
	{
		char	   *datname = get_database_name(dboids[i]);
		NameData   *dbname;
		uint64		reset_at = pg_atomic_read_u64(&slots[i]->reset_at);

		if (datname == NULL)
			continue;			/* dropped database */
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
	PG_RETURN_NULL();
}

/*
 * consistency.stats_reset(): set this database's counters to zero.  Returns
 * false, changing nothing, when there are no shared counters.
 */
Datum
consistency_stats_reset(PG_FUNCTION_ARGS)
{
	StatsDatabase *d;
	int			c;

	if (stats == NULL)
		PG_RETURN_BOOL(false);

	/* counts of this transaction so far go with the old figures */
	memset(consistency_stats_pending, 0, sizeof(consistency_stats_pending));
	consistency_stats_dirty = false;

	d = database_slot(MyDatabaseId, true);
	if (d == NULL)
		PG_RETURN_BOOL(false);
	for (c = 0; c < CSTAT_NUM; c++)
		pg_atomic_write_u64(&d->counters[c], 0);
	pg_atomic_write_u64(&d->reset_at, (uint64) GetCurrentTimestamp());
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
}
