/*-------------------------------------------------------------------------
 *
 * inventory_combine.c
 *	  reserve_now(): reservations made outside any transaction block, whose
 *	  concurrent callers share one transaction and one commit.
 *
 * A reservation made by reserve() in autocommit is a transaction of its own:
 * its commit waits for its WAL flush while it holds its slot, and with many
 * buyers on one SKU most of them queue for a slot whose holder is flushing.
 * reserve_now() is for callers that need no transaction around the
 * reservation: concurrent calls in one database, by one role, are applied
 * together by one of them, the leader, in its own transaction (flat
 * combining).  The others, the followers, wait until the leader has applied
 * their requests, then until its transaction has ended, and answer from it:
 * what the leader committed is theirs, committed and flushed before they
 * return.  A batch that failed, or whose transaction rolled back, is made
 * again by each of its followers alone (inline, as reserve() in the
 * follower's own transaction), so a follower's answer never depends on
 * another caller's error.
 *
 * The queue is one entry per backend in shared memory (so only with
 * shared_preload_libraries); without it, or when a call cannot be combined
 * (see combine_possible), reserve_now() is reserve() in the caller's
 * transaction, which in autocommit is the same answer at the same moment.
 *
 * Protocol.  An entry's state and generation are one atomic word (see
 * CE_WORD); the leaders table, one per database and role, is changed under
 * CombineShared.lock and read without it.  A waiter sleeps on its own latch,
 * which is set only for it: by the leader that settled its entry, or when
 * it is the next to lead.
 * - a caller writes its request into its entry, publishes it PENDING, and
 *	 leads if no leader of its database and role is active; else it sleeps
 *	 until its entry is DONE or FAILED, or still PENDING with no leader
 *	 (then it leads).  If the leaders table has no room for its database
 *	 and role, it withdraws its request and reserves alone;
 * - a leader takes up to COMBINE_MAX_BATCH pending entries of its database
 *	 and role (compare-and-swap PENDING -> TAKEN; its own first, and if the
 *	 previous leader took that one meanwhile, it gives the leadership up and
 *	 waits: no backend holds a batch's locks while it waits for another
 *	 backend's transaction, a wait the deadlock detector cannot see), applies
 *	 them in SKU lock order in one subtransaction (the reservations of one
 *	 SKU stored through one open table, and the fresh ones' units taken
 *	 with one slot operation: apply_batch), waiting at most
 *	 COMBINE_LOCK_TIMEOUT_MS for any lock, and marks them APPLIED with their
 *	 answers (its own DONE).  If the subtransaction failed it marks them
 *	 FAILED and wakes their owners.  Then it leaves the leaders table and
 *	 wakes the first pending caller of its database and role, which leads the
 *	 next batch while this one's commit is flushed; at most
 *	 COMBINE_MAX_COMMITTING batches wait for their commits (the leaders table
 *	 counts them until their transactions end), so the requests made while
 *	 they do wait to make one batch (unless they wait longer than
 *	 COMBINE_PATIENCE_MS: a leader's statement may go on after its batch);
 * - the leader's commit waits as the most demanding synchronous_commit of
 *	 its batch's callers asks (note_strongest, commit_as_strongest); each
 *	 request's time and expiry are its caller's, computed in the caller's
 *	 TimeZone; the rest of a batch's settings are the leader's session's
 *	 (statement_timeout, lock_timeout capped as above), which can only make
 *	 the batch fail, never change an answer; a read-only caller is never
 *	 batched;
 * - at the end of the leader's transaction (an XactCallback: after a
 *	 commit's WAL flush) its APPLIED entries become DONE if it committed,
 *	 with the end of its commit, FAILED if not, and their owners are woken:
 *	 a DONE answer is returned, and the commit becomes the owner's session's
 *	 last committed write (its token, for read-your-writes); a FAILED
 *	 request is reserved inline.  Before it returns, a DONE caller whose
 *	 synchronous_commit asks for a standby waits for that commit as its own
 *	 commit would (SyncRepWaitForLSN; at once if the leader's commit did):
 *	 a leader's wait for a standby ends early, with a WARNING to the
 *	 leader's client only, if the leader is cancelled or terminated, and
 *	 its batch's other callers must not be answered as if replicated.
 * A caller that errors out while waiting withdraws its request if it is
 * still PENDING (a taken one is left to its leader; until it is settled the
 * caller's later calls are made inline); one that exits while leading fails
 * its batch first (before_shmem_exit).
 *
 * Measured: BENCHMARKS.md, "Inventory reservation against a Redis counter"
 * (reserve_now() against reserve() and Redis, 64 clients, the same run).
 *
 * IDENTIFICATION
 *	  src/inventory_combine.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "replication/syncrep.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "consistency.h"
#include "compat.h"
#include "inventory.h"

/*
 * Requests one leader applies in one batch: what the followers of a batch
 * wait for, besides the commit, is the leader applying the requests before
 * theirs.
 */
#define COMBINE_MAX_BATCH	32
/* Databases and roles with batches at once (the leaders table). */
#define COMBINE_MAX_LEADERS 16
/* How often a waiter also looks by itself (a leader that was cancelled). */
#define COMBINE_POLL_MS		10
/*
 * The longest a leader waits for a lock while applying a batch (unless
 * lock_timeout is shorter): past it the batch fails (55P03) and each of its
 * callers reserves alone, waiting as reserve() waits.
 */
#define COMBINE_LOCK_TIMEOUT_MS 50
/*
 * Batches of one database and role applied and waiting for their
 * transactions to end, at most: the next is led only when fewer wait, so
 * that the requests made meanwhile are applied as one batch, not one each.
 * Two: one whose commit is being flushed and one applied meanwhile, whose
 * commit waits for that flush; a third would only join the second's flush,
 * answering no sooner for having its own transaction, and each transaction
 * costs its own work (with no limit, 64 callers on one SKU made batches of
 * 6.7 requests on average, 43% of them of one; with two, of 21.7).  A
 * caller kept waiting longer than COMBINE_PATIENCE_MS leads anyway: a
 * leader's statement may go on long after its batch.
 */
#define COMBINE_MAX_COMMITTING 2
#define COMBINE_PATIENCE_MS 100

/*
 * An entry's state and generation share one atomic word, so that a leader
 * takes a request (compare-and-swap from PENDING) only in the generation it
 * looked at: the owner writes a request's fields only while its entry is in
 * none of PENDING, TAKEN, APPLIED, then publishes them with a new generation.
 */
typedef enum CombineState
{
	CE_FREE,
	CE_PENDING,					/* queued, not taken */
	CE_TAKEN,					/* being applied by a leader */
	CE_APPLIED,					/* applied, answer set: the leader is committing */
	CE_DONE,					/* the leader committed: the answer stands */
	CE_FAILED					/* not committed, or withdrawn: reserve inline */
} CombineState;

#define CE_STATE(w)			((CombineState) ((w) & 7))
#define CE_GEN(w)			((w) >> 3)
#define CE_WORD(gen, st)	((((gen) & 0x1FFFFFFF) << 3) | (uint32) (st))

typedef struct CombineEntry
{
	pg_atomic_uint32 word;		/* CE_WORD(generation, state) */
	PGPROC	   *proc;			/* the owner (its latch is set to wake it) */
	bool		wait;
	int			sync_commit;	/* the caller's synchronous_commit (SyncCommitLevel) */
	XLogRecPtr	commit_lsn;		/* DONE by another backend: the end of its commit */
	Oid			dboid;
	Oid			userid;
	int64		qty;
	TimestampTz created_at;		/* made at, and expires at: computed by the caller, */
	TimestampTz expires_at;		/* its ttl in its own TimeZone */
	int16		skulen;
	int16		idlen;
	char		answer[16];
	char		sku[INV_MAX_SKU_BYTES];
	char		id[INV_MAX_ID_BYTES];
} CombineEntry;

/*
 * The batches of one database and role: the leader applying one, and how
 * many were applied and wait for their leaders' transactions to end.  In use
 * while either is set; changed under the lock, read without.
 */
typedef struct CombineLeader
{
	Oid			dboid;
	Oid			userid;
	int			procno;			/* the leader applying a batch, or -1 */
	int			committing;		/* applied batches not settled yet */
} CombineLeader;

typedef struct CombineShared
{
	LWLock	   *lock;			/* the leaders table */
	int			nentries;
	CombineLeader leaders[COMBINE_MAX_LEADERS];
	CombineEntry entries[FLEXIBLE_ARRAY_MEMBER];
} CombineShared;

static CombineShared *combine = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool callbacks_registered = false;

/*
 * The requests this backend took as leader (entry and generation): being
 * applied, then answered and waiting for this transaction's end.
 */
static int	batch_n = 0;
static int	batch_procno[COMBINE_MAX_BATCH];
static uint32 batch_gen[COMBINE_MAX_BATCH];
/* the strongest synchronous_commit of the applied batch's callers, or -1 */
static int	batch_sync_commit = -1;
/* the leaders table slot of the batch this backend applies, or whose commit it makes */
static int	lead_slot = -1;
static int	commit_slot = -1;
/* XactLastCommitEnd at PRE_COMMIT of a transaction that applied a batch */
static XLogRecPtr batch_commit_end_before = InvalidXLogRecPtr;


static Size
combine_shmem_size(void)
{
	return add_size(offsetof(CombineShared, entries),
					mul_size(MaxBackends, sizeof(CombineEntry)));
}

static void
combine_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(combine_shmem_size());
	RequestNamedLWLockTranche("consistency reserve_now", 1);
}

static void
combine_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	combine = ShmemInitStruct("consistency reserve_now", combine_shmem_size(), &found);
	if (!found)
	{
		combine->lock = &(GetNamedLWLockTranche("consistency reserve_now"))->lock;
		combine->nentries = MaxBackends;
		for (i = 0; i < COMBINE_MAX_LEADERS; i++)
			combine->leaders[i].procno = -1;
		for (i = 0; i < MaxBackends; i++)
		{
			pg_atomic_init_u32(&combine->entries[i].word, CE_WORD(0, CE_FREE));
			combine->entries[i].proc = NULL;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * May a caller of (db, role) lead a batch now?  Not while another leads one,
 * nor while COMBINE_MAX_COMMITTING batches wait for their commits, unless
 * the caller ran out of patience.  Read without the lock: a caller that may
 * takes the lock to lead (try_lead), and a leader that stops applying or
 * committing looks for pending requests only after it has changed the
 * table, so one of the two sees the other (both sides put a full barrier in
 * between).
 */
static bool
may_lead(Oid dboid, Oid userid, bool impatient)
{
	int			i;

	for (i = 0; i < COMBINE_MAX_LEADERS; i++)
	{
		volatile CombineLeader *l = &combine->leaders[i];

		if ((l->procno >= 0 || l->committing > 0) &&
			l->dboid == dboid && l->userid == userid)
			return l->procno < 0 && (impatient || l->committing < COMBINE_MAX_COMMITTING);
	}
	return true;
}

/*
 * Become the leader of (db, role) if it may lead and the table has room:
 * true if it leads.  *full is set if it may lead but the table has no slot
 * for its database and role (every slot has another's batches).
 */
static bool
try_lead(Oid dboid, Oid userid, bool impatient, bool *full)
{
	int			i;
	int			free_slot = -1;

	Assert(lead_slot < 0);
	*full = false;
	LWLockAcquire(combine->lock, LW_EXCLUSIVE);
	if (may_lead(dboid, userid, impatient))
	{
		for (i = 0; i < COMBINE_MAX_LEADERS; i++)
		{
			CombineLeader *l = &combine->leaders[i];

			if (l->procno < 0 && l->committing == 0)
			{
				if (free_slot < 0)
					free_slot = i;
			}
			else if (l->dboid == dboid && l->userid == userid)
				break;
		}
		if (i < COMBINE_MAX_LEADERS)
			lead_slot = i;
		else if (free_slot >= 0)
		{
			lead_slot = free_slot;
			combine->leaders[lead_slot].dboid = dboid;
			combine->leaders[lead_slot].userid = userid;
			pg_write_barrier();	/* read without the lock */
		}
		if (lead_slot >= 0)
			combine->leaders[lead_slot].procno = MyProcNumber;
		else
			*full = true;
	}
	LWLockRelease(combine->lock);
	return lead_slot >= 0;
}

/*
 * Wake the owner of an entry.  (Entries are indexed by MyProcNumber, which
 * before 17 is derived from the BackendId, not the PGPROC's index.)
 */
static void
wake(int procno)
{
	SetLatch(&combine->entries[procno].proc->procLatch);
}

/*
 * Wake the owner of the first pending request of (db, role), if it may lead
 * now: it leads the next batch.
 */
static void
wake_next_leader(Oid dboid, Oid userid)
{
	int			i;

	pg_memory_barrier();
	if (!may_lead(dboid, userid, false))
		return;
	for (i = 0; i < combine->nentries; i++)
	{
		CombineEntry *e = &combine->entries[i];

		if (i != MyProcNumber && CE_STATE(pg_atomic_read_u32(&e->word)) == CE_PENDING &&
			e->dboid == dboid && e->userid == userid)
		{
			wake(i);
			break;
		}
	}
}

/*
 * Change this backend's slot in the leaders table, which it holds (as the
 * leader applying a batch, or by a batch of its committing): stop applying
 * and/or add to the count of committing batches.  Then wake the next leader.
 */
static void
change_slot(int slot, bool stop_applying, int committing_delta)
{
	CombineLeader *l = &combine->leaders[slot];
	Oid			dboid = l->dboid;
	Oid			userid = l->userid;

	LWLockAcquire(combine->lock, LW_EXCLUSIVE);
	if (stop_applying)
		l->procno = -1;
	l->committing += committing_delta;
	LWLockRelease(combine->lock);
	wake_next_leader(dboid, userid);
}

/*
 * Stop applying (if this backend leads), counting the batch as committing
 * if its requests wait for this transaction's end.
 */
static void
stop_leading(bool committing)
{
	int			slot = lead_slot;

	if (slot < 0)
		return;
	lead_slot = -1;
	if (committing)
		commit_slot = slot;
	change_slot(slot, true, committing ? 1 : 0);
}

/*
 * The transaction of a batch this backend led has ended: one batch fewer
 * waits for its commit, and the next may be led.
 */
static void
stop_committing(void)
{
	int			slot = commit_slot;

	if (slot < 0)
		return;
	commit_slot = -1;
	change_slot(slot, false, -1);
}

/*
 * Settle the requests this backend took as leader and has not settled yet:
 * TAKEN ones (not applied) fail, APPLIED ones become outcome (DONE or
 * FAILED); their owners are woken.
 */
static void
settle_batch(CombineState outcome, XLogRecPtr commit_lsn)
{
	int			i;

	for (i = 0; i < batch_n; i++)
	{
		CombineEntry *e = &combine->entries[batch_procno[i]];
		uint32		w = pg_atomic_read_u32(&e->word);

		if (w == CE_WORD(batch_gen[i], CE_TAKEN))
			pg_atomic_write_u32(&e->word, CE_WORD(batch_gen[i], CE_FAILED));
		else if (w == CE_WORD(batch_gen[i], CE_APPLIED))
		{
			e->commit_lsn = commit_lsn;
			pg_write_barrier();	/* the owner reads it after the state */
			pg_atomic_write_u32(&e->word, CE_WORD(batch_gen[i], outcome));
		}
		else
			continue;
		if (batch_procno[i] != MyProcNumber)
			wake(batch_procno[i]);
	}
	batch_n = 0;
	batch_sync_commit = -1;
	stop_committing();
}

/*
 * At PRE_COMMIT of a transaction that applied a batch: make its commit wait
 * as the most demanding caller of the batch asked (a flush, a standby's
 * write, flush or apply), as SET LOCAL synchronous_commit would, so that each
 * caller is answered only after its reservation is as durable as its own
 * commit would have made it.  Done here, not while applying: a function
 * with its own SET synchronous_commit clause around the leader's call would
 * restore the value it found at its exit.  It lasts until the end of the
 * commit.
 */
static void
commit_as_strongest(void)
{
	/* SyncCommitLevel's names, as synchronous_commit accepts them */
	static const char *const level_names[] = {
		[SYNCHRONOUS_COMMIT_OFF] = "off",
		[SYNCHRONOUS_COMMIT_LOCAL_FLUSH] = "local",
		[SYNCHRONOUS_COMMIT_REMOTE_WRITE] = "remote_write",
		[SYNCHRONOUS_COMMIT_REMOTE_FLUSH] = "on",
		[SYNCHRONOUS_COMMIT_REMOTE_APPLY] = "remote_apply",
	};

	if (batch_sync_commit > synchronous_commit && batch_sync_commit < lengthof(level_names))
		(void) set_config_option("synchronous_commit", level_names[batch_sync_commit],
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
								 true, 0, false);
}

/*
 * At the end of a transaction that led a batch: its requests' answers stand
 * if it committed (the commit record is flushed, as the strongest
 * synchronous_commit of its callers asks, set at PRE_COMMIT, before
 * XACT_EVENT_COMMIT), else their owners reserve inline.
 */
static void
combine_xact_callback(XactEvent event, void *arg)
{
	if (batch_n == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			commit_as_strongest();
			batch_commit_end_before = XactLastCommitEnd;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* the callers' session tokens take this commit if it wrote */
			settle_batch(CE_DONE, XactLastCommitEnd != batch_commit_end_before ?
						 XactLastCommitEnd : InvalidXLogRecPtr);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			settle_batch(CE_FAILED, InvalidXLogRecPtr);
			break;
		default:
			break;
	}
}

/*
 * Give up this backend's own pending request (on an error while it waited,
 * or at exit): a request already taken is left to its leader.
 */
static void
withdraw(void)
{
	CombineEntry *me = &combine->entries[MyProcNumber];
	uint32		w = pg_atomic_read_u32(&me->word);

	if (CE_STATE(w) == CE_PENDING)
		(void) pg_atomic_compare_exchange_u32(&me->word, &w,
											  CE_WORD(CE_GEN(w), CE_FAILED));
}

/*
 * Lead a batch of this caller's database and role if it may.  If it may but
 * the leaders table is full (more databases and roles with batches at once
 * than COMBINE_MAX_LEADERS), it gives its request up, so that the call is
 * made alone at once rather than polling for room.
 */
static bool
lead_or_give_up(bool impatient)
{
	CombineEntry *me = &combine->entries[MyProcNumber];
	bool		full;

	if (!may_lead(me->dboid, me->userid, impatient))
		return false;
	if (try_lead(me->dboid, me->userid, impatient, &full))
		return true;
	if (full)
		withdraw();
	return false;
}

static void
combine_exit(int code, Datum arg)
{
	if (combine == NULL || MyProcNumber < 0 || MyProcNumber >= combine->nentries)
		return;
	settle_batch(CE_FAILED, InvalidXLogRecPtr);
	withdraw();
	stop_leading(false);
}

/*
 * Can this call be combined?  Not without the shared queue, not in a
 * transaction that already has a transaction id (it may hold locks a leader
 * would wait for, and a leader's batch would commit with what it wrote) or
 * led a batch, only under READ COMMITTED (a batch runs under the leader's
 * level), and not in a read-only transaction (a leader would write for it;
 * inline, the write is refused, 25006, as reserve()'s is).
 */
static bool
combine_possible(void)
{
	return combine != NULL && batch_n == 0 &&
		MyProcNumber >= 0 && MyProcNumber < combine->nentries &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()) &&
		XactIsoLevel == XACT_READ_COMMITTED && !XactReadOnly;
}

/* A request of the batch, copied out of its entry. */
typedef struct CombineReq
{
	int			procno;
	uint32		gen;
	InvSku		s;
	int64		qty;
	text	   *id;
	TimestampTz created_at;
	TimestampTz expires_at;
	bool		wait;
	int			sync_commit;
	const char *answer;
} CombineReq;

static int
req_cmp(const void *a, const void *b)
{
	const CombineReq *x = a;
	const CombineReq *y = b;

	return inv_sku_cmp(&x->s, &y->s);
}

/*
 * Apply the batch, sorted by SKU.  Consecutive requests for one SKU that
 * wait for locks and name different reservation ids are made together
 * (inv_reserve_group: one slot operation for all of them); any other
 * request alone, as reserve() makes it.
 */
static void
apply_batch(CombineReq *reqs, int n)
{
	int			i = 0;

	while (i < n)
	{
		int			j = i + 1;
		int			k;

		while (j < n && reqs[j].wait && reqs[i].wait &&
			   inv_sku_cmp(&reqs[i].s, &reqs[j].s) == 0)
		{
			for (k = i; k < j; k++)
				if (VARSIZE_ANY_EXHDR(reqs[k].id) == VARSIZE_ANY_EXHDR(reqs[j].id) &&
					memcmp(VARDATA_ANY(reqs[k].id), VARDATA_ANY(reqs[j].id),
						   VARSIZE_ANY_EXHDR(reqs[j].id)) == 0)
					break;
			if (k < j)
				break;			/* the same id twice: the second sees the first's outcome */
			j++;
		}
		if (j - i > 1)
		{
			int64		qty[COMBINE_MAX_BATCH];
			text	   *ids[COMBINE_MAX_BATCH];
			TimestampTz nows[COMBINE_MAX_BATCH];
			TimestampTz expires[COMBINE_MAX_BATCH];
			const char *answers[COMBINE_MAX_BATCH];

			for (k = i; k < j; k++)
			{
				qty[k - i] = reqs[k].qty;
				ids[k - i] = reqs[k].id;
				nows[k - i] = reqs[k].created_at;
				expires[k - i] = reqs[k].expires_at;
			}
			inv_reserve_group(&reqs[i].s, j - i, qty, ids, nows, expires, answers);
			for (k = i; k < j; k++)
				reqs[k].answer = answers[k - i];
		}
		else
			reqs[i].answer = inv_reserve_one(&reqs[i].s, reqs[i].qty, reqs[i].id,
											 reqs[i].created_at, reqs[i].expires_at,
											 reqs[i].wait, false);
		i = j;
	}
}

/*
 * Take a pending request of (db, role) into the batch; false if it is not
 * one or was taken or withdrawn meanwhile.
 */
static bool
take(int procno, Oid dboid, Oid userid, CombineReq *r)
{
	CombineEntry *e = &combine->entries[procno];
	uint32		w = pg_atomic_read_u32(&e->word);

	if (CE_STATE(w) != CE_PENDING)
		return false;
	pg_read_barrier();
	if (e->dboid != dboid || e->userid != userid)
		return false;
	/* the fields read belong to generation CE_GEN(w) if this succeeds */
	if (!pg_atomic_compare_exchange_u32(&e->word, &w, CE_WORD(CE_GEN(w), CE_TAKEN)))
		return false;
	r->procno = procno;
	r->gen = CE_GEN(w);
	r->qty = e->qty;
	r->created_at = e->created_at;
	r->expires_at = e->expires_at;
	r->wait = e->wait;
	r->sync_commit = e->sync_commit;
	r->answer = NULL;
	inv_sku_init(&r->s, cstring_to_text_with_len(e->sku, e->skulen));
	r->id = cstring_to_text_with_len(e->id, e->idlen);
	return true;
}

/*
 * Remember the most demanding synchronous_commit among the batch's callers;
 * commit_as_strongest() applies it just before the commit.
 */
static void
note_strongest(const CombineReq *reqs, int n)
{
	int			i;

	batch_sync_commit = -1;
	for (i = 0; i < n; i++)
		batch_sync_commit = Max(batch_sync_commit, reqs[i].sync_commit);
}

/*
 * Apply a batch as leader; this backend's own request is pending and is
 * taken first.  Returns with the leadership given up, this backend's entry
 * DONE or FAILED and the others APPLIED (settled at this transaction's end)
 * or FAILED.  A cancel (statement_timeout included) is re-thrown after the
 * batch was failed.
 */
static void
lead_batch(void)
{
	CombineReq	reqs[COMBINE_MAX_BATCH];
	volatile int n = 0;
	int			i;
	Oid			dboid = MyDatabaseId;
	Oid			userid = GetUserId();
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	Assert(batch_n == 0);

	/*
	 * Our own request first.  If the previous leader took it (between our
	 * look at it and our try_lead), we do not lead: a batch's locks are held
	 * to the end of its leader's transaction, and we are about to wait on our
	 * latch for another backend's transaction to end, a wait the deadlock
	 * detector does not see.  That backend's statement may go on and wait for
	 * those locks.  So a backend never holds a batch's locks while it waits
	 * for another's batch: the next pending caller leads instead.
	 */
	if (!take(MyProcNumber, dboid, userid, &reqs[0]))
	{
		stop_leading(false);
		return;
	}
	batch_procno[0] = MyProcNumber;
	batch_gen[0] = reqs[0].gen;
	n = batch_n = 1;
	for (i = 0; i < combine->nentries && n < COMBINE_MAX_BATCH; i++)
	{
		if (i == MyProcNumber || !take(i, dboid, userid, &reqs[n]))
			continue;
		batch_procno[n] = i;
		batch_gen[n] = reqs[n].gen;
		n++;
		batch_n = n;
	}

	/* in lock order, as reserve_all() takes its lines */
	qsort(reqs, n, sizeof(CombineReq), req_cmp);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		/*
		 * Every caller of this database and role waits while the batch is
		 * applied: a lock held for long (a DBA's open transaction on one
		 * SKU) must not hold them all up.  Waits for the previous batch's
		 * commit are short.
		 */
		int			save_nestlevel = NewGUCNestLevel();

		if (LockTimeout == 0 || LockTimeout > COMBINE_LOCK_TIMEOUT_MS)
			(void) set_config_option("lock_timeout", CppAsString2(COMBINE_LOCK_TIMEOUT_MS),
									 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
									 true, 0, false);
		apply_batch(reqs, n);
		AtEOXact_GUC(false, save_nestlevel);	/* lock_timeout as it was */
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();

	if (edata != NULL)
	{
		settle_batch(CE_FAILED, InvalidXLogRecPtr);
		stop_leading(false);
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		return;
	}
	note_strongest(reqs, n);
	for (i = 0; i < n; i++)
	{
		CombineEntry *e = &combine->entries[reqs[i].procno];
		bool		own = reqs[i].procno == MyProcNumber;

		inv_count_answer(reqs[i].answer);
		strlcpy(e->answer, reqs[i].answer, sizeof(e->answer));
		pg_write_barrier();		/* the owner reads the answer after the state */
		pg_atomic_write_u32(&e->word, CE_WORD(reqs[i].gen, own ? CE_DONE : CE_APPLIED));
	}
	stop_leading(batch_n > 0);
}

/* A reservation made alone, as reserve() makes it, in this backend's transaction. */
static const char *
reserve_alone(InvSku *s, int64 qty, text *id, Interval *ttl, bool wait)
{
	TimestampTz now = GetCurrentTimestamp();

	return inv_reserve_one(s, qty, id, now, inv_expiry(now, ttl), wait, true);
}

/*
 * reserve_now()'s reservation, combined with concurrent ones when possible
 * (see the file's header).  The arguments were checked by the caller.
 */
const char *
inv_reserve_now(InvSku *s, int64 qty, text *id, Interval *ttl, bool wait)
{
	CombineEntry *me;
	uint32		w;
	uint32		gen;
	volatile bool lead = false;
	volatile CombineState state = CE_FREE;
	char		answer[16];
	volatile XLogRecPtr commit_lsn = InvalidXLogRecPtr;

	if (!combine_possible())
		return reserve_alone(s, qty, id, ttl, wait);
	me = &combine->entries[MyProcNumber];
	w = pg_atomic_read_u32(&me->word);
	if (CE_STATE(w) == CE_DONE)
	{
		/* a request given up on (an error while waiting) that was committed after all */
		pg_read_barrier();
		consistency_token_note_commit(me->commit_lsn);
	}
	if (CE_STATE(w) == CE_PENDING || CE_STATE(w) == CE_TAKEN || CE_STATE(w) == CE_APPLIED)
		return reserve_alone(s, qty, id, ttl, wait);	/* a request we gave up on is still out */
	if (!callbacks_registered)
	{
		before_shmem_exit(combine_exit, (Datum) 0);
		RegisterXactCallback(combine_xact_callback, NULL);
		callbacks_registered = true;
	}

	gen = CE_GEN(w) + 1;
	me->proc = MyProc;
	me->dboid = MyDatabaseId;
	me->userid = GetUserId();
	me->qty = qty;
	/* computed here: a leader's TimeZone may count a day of ttl otherwise */
	me->created_at = GetCurrentTimestamp();
	me->expires_at = inv_expiry(me->created_at, ttl);
	me->wait = wait;
	me->sync_commit = synchronous_commit;
	me->commit_lsn = InvalidXLogRecPtr;
	me->skulen = VARSIZE_ANY_EXHDR(s->sku);
	memcpy(me->sku, VARDATA_ANY(s->sku), me->skulen);
	me->idlen = VARSIZE_ANY_EXHDR(id);
	memcpy(me->id, VARDATA_ANY(id), me->idlen);
	pg_write_barrier();
	pg_atomic_write_u32(&me->word, CE_WORD(gen, CE_PENDING));
	pg_memory_barrier();

	PG_TRY();
	{
		lead = lead_or_give_up(false);

		/*
		 * Lead a batch, or wait for our request to be settled by a leader
		 * (which sets our latch when it is) or to be woken as the next leader.
		 * A caller that finds its own request taken by the previous leader
		 * when it comes to lead gives the leadership up and waits like a
		 * follower (lead_batch).
		 */
		for (;;)
		{
			if (lead)
			{
				lead_batch();
				lead = false;
			}
			state = CE_STATE(pg_atomic_read_u32(&me->word));
			if (state == CE_DONE || state == CE_FAILED)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 COMBINE_POLL_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			state = CE_STATE(pg_atomic_read_u32(&me->word));
			if (state == CE_DONE || state == CE_FAILED)
				break;
			if (state == CE_PENDING)
			{
				bool		impatient = false;

				if (!may_lead(me->dboid, me->userid, false))
					impatient = TimestampDifferenceExceeds(me->created_at, GetCurrentTimestamp(),
														   COMBINE_PATIENCE_MS);
				lead = lead_or_give_up(impatient);
			}
		}
		pg_read_barrier();
		if (state == CE_DONE)
		{
			strlcpy(answer, me->answer, sizeof(answer));
			commit_lsn = me->commit_lsn;
		}
	}
	PG_CATCH();
	{
		withdraw();
		stop_leading(false);	/* if we were leading */
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (state != CE_DONE)
		return reserve_alone(s, qty, id, ttl, wait);
	/*
	 * Committed by its leader, whose commit waited for a standby as the most
	 * demanding of its callers asked, unless that wait was cancelled (see the
	 * file's header): wait for it as our own commit would have, with its
	 * WARNING if we are cancelled in turn.  The local flush was the leader's
	 * (it cannot be cancelled).  A no-op unless our synchronous_commit asks
	 * for a standby and one is named.
	 */
	if (!XLogRecPtrIsInvalid(commit_lsn))
	{
		HOLD_INTERRUPTS();
		SyncRepWaitForLSN(commit_lsn, true);
		RESUME_INTERRUPTS();
	}
	/* the session's last committed write, for read-your-writes */
	consistency_token_note_commit(commit_lsn);
	return pstrdup(answer);
}

void
consistency_inventory_combine_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = combine_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = combine_shmem_startup;
}
