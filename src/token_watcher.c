/*-------------------------------------------------------------------------
 *
 * token_watcher.c
 *	  The replay watcher: a shared-memory registry of backends waiting for a
 *	  token, and a background worker that sets their latches once the
 *	  standby's replay position passes their target.
 *
 * PostgreSQL 15 has no hook or condition variable that fires when the
 * startup process replays a record, so somebody has to look at the replay
 * position.  Rather than every waiter polling it, one process does: while at
 * least one backend waits, the watcher reads GetXLogReplayRecPtr() every
 * 0.5 ms and wakes exactly the waiters whose target it passed; while
 * nobody waits, it sleeps on its latch and costs nothing.  A waiter that is
 * woken re-checks the position itself, so a spurious wake-up is harmless.
 * After a promotion every waiter is woken to re-evaluate (it is then on the
 * primary).  However the worker exits, it first withdraws its latch, so that
 * waiters fall back to polling, and exits with status 1, so that the
 * postmaster restarts it.
 *
 * This needs shared memory, which PostgreSQL 15 only grants from
 * shmem_request_hook, so it exists only when the library is in
 * shared_preload_libraries.  Otherwise consistency_watcher_register()
 * returns false and the waiter polls on its own (token_wait.c).
 *
 * IDENTIFICATION
 *	  src/token_watcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/wait_event.h"

#include "consistency.h"
#include "token.h"

PGDLLEXPORT void consistency_replay_watcher_main(Datum main_arg);

typedef struct WatcherSlot
{
	bool		active;			/* a backend waits for target */
	XLogRecPtr	target;			/* wake it once replay reaches this */
	Latch	   *latch;			/* the waiting backend's latch */
} WatcherSlot;

typedef struct WatcherShared
{
	LWLock	   *lock;			/* protects everything below */
	int			nwaiters;		/* active slots */
	Latch	   *watcher_latch;	/* NULL while the worker is not running */
	int			nslots;
	WatcherSlot slots[FLEXIBLE_ARRAY_MEMBER];
} WatcherShared;

static WatcherShared *watcher = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* How often the worker reads the replay position while somebody waits (µs). */
#define WATCH_PERIOD_US 500

static Size
watcher_shmem_size(void)
{
	return add_size(offsetof(WatcherShared, slots),
					mul_size(MaxBackends, sizeof(WatcherSlot)));
}

static void
watcher_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(watcher_shmem_size());
	RequestNamedLWLockTranche("consistency replay watcher", 1);
}

static void
watcher_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	watcher = ShmemInitStruct("consistency replay watcher", watcher_shmem_size(), &found);
	if (!found)
	{
		watcher->lock = &(GetNamedLWLockTranche("consistency replay watcher"))->lock;
		watcher->nwaiters = 0;
		watcher->watcher_latch = NULL;
		watcher->nslots = MaxBackends;
		memset(watcher->slots, 0, mul_size(MaxBackends, sizeof(WatcherSlot)));
	}
	LWLockRelease(AddinShmemInitLock);
}

static bool exit_callback_registered = false;

static void watcher_backend_exit(int code, Datum arg);

/* This backend's slot, or NULL if it has none. */
static WatcherSlot *
my_slot(void)
{
	if (watcher == NULL || MyProcNumber == INVALID_PROC_NUMBER ||
		MyProcNumber >= watcher->nslots)
		return NULL;
	return &watcher->slots[MyProcNumber];
}

/*
 * Ask to be woken once replay reaches target (again, after a wake-up that
 * did not satisfy us).  False if no watcher runs: the caller must then poll.
 */
bool
consistency_watcher_register(XLogRecPtr target)
{
	WatcherSlot *slot = my_slot();
	Latch	   *wake;

	if (slot == NULL)
		return false;
	if (!exit_callback_registered)
	{
		/* a FATAL error while waiting exits without unwinding: unregister then */
		before_shmem_exit(watcher_backend_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	LWLockAcquire(watcher->lock, LW_EXCLUSIVE);
	wake = watcher->watcher_latch;
	if (wake != NULL)
	{
		if (!slot->active)
			watcher->nwaiters++;
		slot->active = true;
		slot->target = target;
		slot->latch = MyLatch;
	}
	LWLockRelease(watcher->lock);
	if (wake == NULL)
		return false;
	SetLatch(wake);
	return true;
}

void
consistency_watcher_unregister(void)
{
	WatcherSlot *slot = my_slot();

	if (slot == NULL)
		return;
	LWLockAcquire(watcher->lock, LW_EXCLUSIVE);
	if (slot->active)
	{
		slot->active = false;
		watcher->nwaiters--;
	}
	LWLockRelease(watcher->lock);
}

static void
watcher_backend_exit(int code, Datum arg)
{
	consistency_watcher_unregister();
}

/*
 * Wake the waiters whose target replay has reached (all of them after a
 * promotion).  A woken slot stays registered but is disarmed until its
 * backend re-arms or unregisters it.  Returns how many still wait.
 */
static int
wake_satisfied(XLogRecPtr replayed, bool promoted, Latch **latches)
{
	int			nwake = 0;
	int			waiting;
	int			i;

	LWLockAcquire(watcher->lock, LW_EXCLUSIVE);
	waiting = watcher->nwaiters;
	for (i = 0; i < watcher->nslots && waiting > 0; i++)
	{
		WatcherSlot *slot = &watcher->slots[i];

		if (!slot->active || slot->target == InvalidXLogRecPtr)
			continue;
		if (promoted || slot->target <= replayed)
		{
			latches[nwake++] = slot->latch;
			slot->target = InvalidXLogRecPtr;
		}
	}
	LWLockRelease(watcher->lock);

	for (i = 0; i < nwake; i++)
		SetLatch(latches[i]);
	return waiting - nwake;
}

/*
 * However the worker exits (SIGTERM, or an ERROR or FATAL, which end a
 * background worker), waiters must stop counting on it: they then poll, and
 * re-register with its successor.  Runs before LWLocks are released.
 */
static void
watcher_worker_exit(int code, Datum arg)
{
	LWLockAcquire(watcher->lock, LW_EXCLUSIVE);
	if (watcher->watcher_latch == MyLatch)
		watcher->watcher_latch = NULL;
	LWLockRelease(watcher->lock);
}

void
consistency_replay_watcher_main(Datum main_arg)
{
	Latch	  **latches;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	latches = palloc(sizeof(Latch *) * MaxBackends);

	before_shmem_exit(watcher_worker_exit, (Datum) 0);
	LWLockAcquire(watcher->lock, LW_EXCLUSIVE);
	watcher->watcher_latch = MyLatch;
	LWLockRelease(watcher->lock);

	while (!ShutdownRequestPending)
	{
		int			waiting;
		bool		promoted = !RecoveryInProgress();

		waiting = wake_satisfied(GetXLogReplayRecPtr(NULL), promoted, latches);

		if (waiting > 0)
		{
			/* finer than WaitLatch()'s millisecond timeouts; registrations need no wake-up */
			pg_usleep(WATCH_PERIOD_US);
			if (!PostmasterIsAlive())
				proc_exit(1);
		}
		else
		{
			/* nobody waits: sleep until a waiter registers (it sets our latch) */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}

	/*
	 * Exit status 1, not 0: the postmaster restarts a worker that exits with
	 * 1 after bgw_restart_time, but unregisters one that exits with 0 for
	 * good.  So a watcher terminated by mistake (kill -TERM) comes back; at
	 * shutdown the postmaster starts no new workers anyway.
	 */
	proc_exit(1);
}

/*
 * Called from _PG_init: set up the registry and the worker when preloaded.
 */
void
consistency_token_watcher_init(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = watcher_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = watcher_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "consistency");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "consistency_replay_watcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "consistency replay watcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "consistency replay watcher");
	RegisterBackgroundWorker(&worker);
}
