/*-------------------------------------------------------------------------
 *
 * idempotency_claims.c
 *	  The keys this transaction has claimed with idem_begin(), and the
 *	  per-key locks that make concurrent duplicates wait.
 *
 * A claim is a transaction-level advisory lock on the (scope, key) pair plus
 * an entry here; its row is written only by idem_complete(), with the
 * response, so a fresh key costs one heap tuple.  The lock is what a
 * concurrent duplicate waits on: it can be tried without waiting (wait =>
 * false), it honours lock_timeout and the deadlock detector, and it is
 * released exactly when the claiming transaction ends, so the waiter's next
 * snapshot sees the outcome.  Lock tags use field 4 = 0x4943, which
 * pg_advisory_lock() never uses.
 *
 * Whoever holds a key's lock has first taken a second lock announcing its
 * request's fingerprint (field 4 = 0x4946), and gives it up only after the
 * key's lock, so that a request that will not wait can tell the same request
 * in flight (in_progress) from a different one (YC001) while the first is
 * uncommitted.  A request that has to wait for the key announces nothing
 * while it waits (see idem_lock_key), and a call that ends up claiming
 * nothing (a replay, an in_progress answer) gives both locks back at once
 * (idem_unlock_key), so it neither blocks a lease worker nor other replays.
 *
 * The registry remembers which claims are still unanswered, so that a
 * transaction that claimed a key cannot commit (or PREPARE) without having
 * stored the response: a key is never committed without its effect's
 * response, and a business write done under a claim never commits without
 * its key.  Savepoints are followed exactly: each key's entry is a stack of
 * versions, one per open subtransaction that changed it, so rolling back to
 * a savepoint restores the entry as it was when the savepoint was taken
 * (claimed, completed, released, and the claim's fingerprint and times),
 * however often it was released and claimed again in between.
 *
 * IDENTIFICATION
 *	  src/idempotency_claims.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "consistency.h"
#include "idempotency.h"

/*
 * Hash key: the pair, length-prefixed.  Only the first scopelen + keylen
 * bytes of data are meaningful: claim_hash() and claim_match() look at
 * nothing else, so a key is neither zeroed nor hashed over its full 514 bytes.
 */
typedef struct IdemClaimKey
{
	uint16		scopelen;
	uint16		keylen;
	char		data[IDEM_MAX_SCOPE_BYTES + IDEM_MAX_KEY_BYTES];
} IdemClaimKey;

/* Where a key's claim stands in one version of its entry. */
typedef enum IdemClaimState
{
	CLAIM_NONE,					/* none, or given up with idem_release() */
	CLAIM_OPEN,					/* claimed, response not stored yet */
	CLAIM_COMPLETED				/* response stored by idem_complete() */
} IdemClaimState;

/*
 * One version of a key's entry: as subtransaction subid left it.  prev is the
 * version as it was before subid first changed it (NULL: no entry at all),
 * made by an enclosing subtransaction, so the chain follows the nesting of
 * the open subtransactions, innermost first.
 */
typedef struct IdemClaimVersion
{
	SubTransactionId subid;
	IdemClaimState state;
	IdemClaimInfo info;
	struct IdemClaimVersion *prev;
} IdemClaimVersion;

typedef struct IdemClaim
{
	IdemClaimKey hkey;			/* must be first */
	IdemClaimVersion *top;		/* the current version; never NULL */
} IdemClaim;

/*
 * Claims of the current transaction.  The table lives as long as the backend
 * and is emptied when a transaction ends (its versions live in
 * TopTransactionContext and go with it): building a table for every
 * transaction that claims a key cost more than the claim's own bookkeeping.
 * A table grown past CLAIMS_KEEP entries is dropped instead of emptied.
 */
#define CLAIMS_KEEP 64

static HTAB *claims = NULL;

/* Has this transaction an entry (a claim, or one given up) in the table? */
static inline bool
have_claims(void)
{
	return claims != NULL && hash_get_num_entries(claims) > 0;
}

static void
make_hkey(const IdemKey *k, IdemClaimKey *hkey)
{
	Assert(k->scopelen <= IDEM_MAX_SCOPE_BYTES && k->keylen <= IDEM_MAX_KEY_BYTES);
	hkey->scopelen = k->scopelen;
	hkey->keylen = k->keylen;
	memcpy(hkey->data, k->scope, k->scopelen);
	memcpy(hkey->data + k->scopelen, k->key, k->keylen);
}

static uint32
claim_hash(const void *key, Size keysize)
{
	const IdemClaimKey *h = (const IdemClaimKey *) key;

	return hash_bytes((const unsigned char *) h->data, h->scopelen + h->keylen) ^
		(uint32) h->scopelen;
}

static int
claim_match(const void *key1, const void *key2, Size keysize)
{
	const IdemClaimKey *a = (const IdemClaimKey *) key1;
	const IdemClaimKey *b = (const IdemClaimKey *) key2;

	if (a->scopelen != b->scopelen || a->keylen != b->keylen)
		return 1;
	return memcmp(a->data, b->data, a->scopelen + a->keylen);
}

/* Copies the meaningful bytes only (HASH_ENTER would copy all 514). */
static void *
claim_keycopy(void *dest, const void *src, Size keysize)
{
	const IdemClaimKey *s = (const IdemClaimKey *) src;

	return memcpy(dest, src, offsetof(IdemClaimKey, data) + s->scopelen + s->keylen);
}

static IdemClaim *
lookup_claim(const IdemKey *k, HASHACTION action, bool *found)
{
	IdemClaimKey hkey;

	if (!have_claims() && action == HASH_FIND)
		return NULL;
	if (claims == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(IdemClaimKey);
		ctl.entrysize = sizeof(IdemClaim);
		ctl.hash = claim_hash;
		ctl.match = claim_match;
		ctl.keycopy = claim_keycopy;
		ctl.hcxt = TopMemoryContext;
		claims = hash_create("consistency idempotency claims", 16, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_KEYCOPY |
							 HASH_CONTEXT);
	}
	make_hkey(k, &hkey);
	return (IdemClaim *) hash_search(claims, &hkey, action, found);
}

static uint64
key_hash(const IdemKey *k)
{
	return hash_combine64(hash_bytes_extended((const unsigned char *) k->scope, k->scopelen, 0),
						  hash_bytes_extended((const unsigned char *) k->key, k->keylen, 0));
}

static void
set_tag(LOCKTAG *tag, uint64 h, uint16 kind)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h, kind);
}

/*
 * Tag announcing the fingerprint of a claim in flight: (key, fingerprint
 * hash), or (key, 0) for a claim without a fingerprint.
 */
static void
set_fingerprint_tag(LOCKTAG *tag, const IdemKey *k, text *fingerprint)
{
	uint64		fh = 0;

	if (fingerprint != NULL)
		fh = hash_bytes_extended((const unsigned char *) VARDATA_ANY(fingerprint),
								 VARSIZE_ANY_EXHDR(fingerprint), 0) | 1;
	set_tag(tag, hash_combine64(key_hash(k), fh), CONSISTENCY_LOCKTAG_IDEM_FINGERPRINT);
}

/*
 * Take the transaction-level lock on (scope, key), having first taken the
 * lock announcing fingerprint (NULL: the request has none).  Returns false
 * only when !wait and another transaction holds either.  A waiting caller
 * may get lock_timeout's 55P03 or the deadlock detector's 40P01.
 *
 * A waiting caller announces nothing while it waits: it waits for the
 * announcement of a request with its own fingerprint holding nothing, and
 * when the key itself is busy, it gives its announcement back and waits for
 * the key's holder to finish (a share lock on the key, released as soon as it
 * is granted), then tries again.  So the key's holder is always the one
 * transaction announcing a fingerprint for it, however many wait.
 */
bool
idem_lock_key(const IdemKey *k, bool wait, text *fingerprint)
{
	LOCKTAG		fptag;
	LOCKTAG		keytag;

	set_fingerprint_tag(&fptag, k, fingerprint);
	set_tag(&keytag, key_hash(k), CONSISTENCY_LOCKTAG_IDEMPOTENCY);
	for (;;)
	{
		if (LockAcquire(&fptag, ExclusiveLock, false, !wait) == LOCKACQUIRE_NOT_AVAIL)
			return false;		/* the same request is in flight */
		if (LockAcquire(&keytag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			return true;
		/* we will not hold the key yet: stop announcing */
		LockRelease(&fptag, ExclusiveLock, false);
		if (!wait)
			return false;
		LockAcquire(&keytag, ShareLock, false, false);
		LockRelease(&keytag, ShareLock, false);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Give back what idem_lock_key() took in this call, key first, so that the
 * key is never held without its announcement.  For calls that end up
 * claiming nothing; locks this transaction held before the call stay held.
 */
void
idem_unlock_key(const IdemKey *k, text *fingerprint)
{
	LOCKTAG		tag;

	set_tag(&tag, key_hash(k), CONSISTENCY_LOCKTAG_IDEMPOTENCY);
	LockRelease(&tag, ExclusiveLock, false);
	set_fingerprint_tag(&tag, k, fingerprint);
	LockRelease(&tag, ExclusiveLock, false);
}

/*
 * The transactions other than ours that hold a lock on tag in a mode that
 * conflicts with lockmode (only those still running if running_only); *n is
 * set to their number.  A copy: GetLockConflicts() reuses one array on a hot
 * standby.
 */
static VirtualTransactionId *
lock_holders(const LOCKTAG *tag, LOCKMODE lockmode, bool running_only, int *n)
{
	int			count;
	VirtualTransactionId *vxids = GetLockConflicts(tag, lockmode, &count);
	VirtualTransactionId *copy = palloc(sizeof(VirtualTransactionId) * (count + 1));
	int			i;

	*n = 0;
	for (i = 0; i < count; i++)
	{
		/*
		 * A transaction that is ending releases its virtual transaction id
		 * before its advisory locks: skip it, its locks are about to go.
		 */
		if (running_only && VirtualXactLock(vxids[i], false))
			continue;
		copy[(*n)++] = vxids[i];
	}
	return copy;
}

static bool
vxid_in(VirtualTransactionId v, const VirtualTransactionId *set, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (VirtualTransactionIdEquals(v, set[i]))
			return true;
	return false;
}

/*
 * Another transaction held the key when we tried it without waiting (and no
 * visible row tells its request): is its request ours, or another one?
 * Answers IDEM_HOLDER_SAME when the holder announced our fingerprint or none
 * (or we have none: never compared), IDEM_HOLDER_OTHER when it announced
 * another one, and IDEM_HOLDER_GONE when nobody holds the key any more, or it
 * changed hands while we looked (the caller tries again).
 *
 * Only the key's holder counts: it is found by its lock (ExclusiveLock;
 * waiters hold at most a share lock for an instant), and it is the same
 * running transaction before and after the announcements are read, so it
 * held its announcement meanwhile.  Nothing is locked to look.
 *
 * Two windows remain, both microseconds wide and needing the holder to act in
 * between our reads: a transaction that gives the key back after a replay and
 * claims it again (with our fingerprint) while we look, and a subtransaction
 * abort of a claim in a subtransaction holding more than 15 locks (its
 * resource owner then releases them in hash order, possibly the announcement
 * first).  Either could make us answer YC001 for what is the same request.
 */
IdemHolder
idem_key_holder(const IdemKey *k, text *fingerprint)
{
	LOCKTAG		keytag;
	LOCKTAG		tag;
	VirtualTransactionId *before;
	VirtualTransactionId *after;
	VirtualTransactionId *mine;
	VirtualTransactionId *none;
	int			nbefore,
				nafter,
				nmine,
				nnone;
	IdemHolder	answer = IDEM_HOLDER_GONE;
	int			i;

	set_tag(&keytag, key_hash(k), CONSISTENCY_LOCKTAG_IDEMPOTENCY);
	before = lock_holders(&keytag, RowShareLock, true, &nbefore);
	if (nbefore == 0)
		return IDEM_HOLDER_GONE;
	if (fingerprint == NULL)
		return IDEM_HOLDER_SAME;
	set_fingerprint_tag(&tag, k, fingerprint);
	mine = lock_holders(&tag, ExclusiveLock, false, &nmine);
	set_fingerprint_tag(&tag, k, NULL);
	none = lock_holders(&tag, ExclusiveLock, false, &nnone);
	after = lock_holders(&keytag, RowShareLock, true, &nafter);
	for (i = 0; i < nbefore; i++)
	{
		if (!vxid_in(before[i], after, nafter))
			continue;
		if (vxid_in(before[i], mine, nmine) || vxid_in(before[i], none, nnone))
		{
			answer = IDEM_HOLDER_SAME;
			break;
		}
		answer = IDEM_HOLDER_OTHER;
	}
	pfree(before);
	pfree(after);
	pfree(mine);
	pfree(none);
	return answer;
}

/*
 * The claim this transaction holds on the key, or NULL if it holds none (or
 * released it).
 */
const IdemClaimInfo *
idem_claim_get(const IdemKey *k)
{
	IdemClaim  *c = lookup_claim(k, HASH_FIND, NULL);

	if (c == NULL || c->top->state == CLAIM_NONE)
		return NULL;
	c->top->info.completed = (c->top->state == CLAIM_COMPLETED);
	return &c->top->info;
}

/*
 * The key's entry, ready to be changed by the current subtransaction: if an
 * enclosing one made the current version, it is kept as the version to go
 * back to and a copy becomes current.
 */
static IdemClaimVersion *
writable_version(const IdemKey *k)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	bool		found;
	IdemClaim  *c = lookup_claim(k, HASH_ENTER, &found);
	IdemClaimVersion *v;

	if (found && c->top->subid == subid)
		return c->top;
	v = MemoryContextAlloc(TopTransactionContext, sizeof(IdemClaimVersion));
	if (found)
		*v = *c->top;
	else
	{
		memset(v, 0, sizeof(*v));
		v->state = CLAIM_NONE;
	}
	v->subid = subid;
	v->prev = found ? c->top : NULL;
	c->top = v;
	return v;
}

void
idem_claim_register(const IdemKey *k, text *fingerprint, TimestampTz created_at,
					TimestampTz expires_at, bool replaces_row)
{
	IdemClaimVersion *v = writable_version(k);

	v->state = CLAIM_OPEN;
	v->info.fingerprint = NULL;
	if (fingerprint != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		v->info.fingerprint = (text *) PG_DETOAST_DATUM_COPY(PointerGetDatum(fingerprint));
		MemoryContextSwitchTo(old);
	}
	v->info.created_at = created_at;
	v->info.expires_at = expires_at;
	v->info.replaces_row = replaces_row;
	v->info.completed = false;
}

void
idem_claim_mark_completed(const IdemKey *k)
{
	Assert(idem_claim_get(k) != NULL);
	writable_version(k)->state = CLAIM_COMPLETED;
}

void
idem_claim_mark_released(const IdemKey *k)
{
	Assert(idem_claim_get(k) != NULL);
	writable_version(k)->state = CLAIM_NONE;
}

/*
 * Refuse to commit or prepare while a claim is unanswered.  Runs at
 * PRE_COMMIT / PRE_PREPARE, where an error still aborts the transaction.
 */
static void
check_claims_answered(void)
{
	HASH_SEQ_STATUS status;
	IdemClaim  *c;

	hash_seq_init(&status, claims);
	while ((c = (IdemClaim *) hash_seq_search(&status)) != NULL)
	{
		if (c->top->state != CLAIM_OPEN)
			continue;
		hash_seq_term(&status);
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_IDEM_INCOMPLETE),
				 errmsg("idempotency key \"%.*s\" was claimed but not completed",
						c->hkey.keylen, c->hkey.data + c->hkey.scopelen),
				 c->hkey.scopelen > 0 ?
				 errdetail("The key is in scope \"%.*s\". A transaction that claims a key with consistency.idem_begin() or consistency.idem_claim() must store the response with consistency.idem_complete() or consistency.idem_finish() before it commits.",
						   c->hkey.scopelen, c->hkey.data) :
				 errdetail("A transaction that claims a key with consistency.idem_begin() or consistency.idem_claim() must store the response with consistency.idem_complete() or consistency.idem_finish() before it commits."),
				 errhint("Call consistency.idem_complete() or consistency.idem_finish(), give the key up with consistency.idem_release(), or roll back.")));
	}
}

/*
 * The transaction ended: empty the table (the versions its entries point to
 * go with TopTransactionContext), or drop it if it grew large.
 */
static void
forget_claims(void)
{
	HASH_SEQ_STATUS status;
	IdemClaim  *c;

	if (!have_claims())
		return;
	if (hash_get_num_entries(claims) > CLAIMS_KEEP)
	{
		hash_destroy(claims);
		claims = NULL;
		return;
	}
	hash_seq_init(&status, claims);
	while ((c = (IdemClaim *) hash_seq_search(&status)) != NULL)
		hash_search(claims, &c->hkey, HASH_REMOVE, NULL);
}

static void
idem_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (have_claims())
				check_claims_answered();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			forget_claims();
			break;
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			break;
	}
}

/*
 * A subtransaction ends.  Aborted: the versions it made are dropped, bringing
 * back each entry as it was when the subtransaction started (or no entry).
 * Committed: its versions become its parent's, replacing any version the
 * parent made itself (the parent's own "before" version stays below).
 */
static void
idem_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS status;
	IdemClaim  *c;

	if (!have_claims() ||
		(event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
		return;

	hash_seq_init(&status, claims);
	while ((c = (IdemClaim *) hash_seq_search(&status)) != NULL)
	{
		IdemClaimVersion *v = c->top;

		if (v->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			c->top = v->prev;
			pfree(v);
			if (c->top == NULL)
				hash_search(claims, &c->hkey, HASH_REMOVE, NULL);
		}
		else
		{
			IdemClaimVersion *parent = v->prev;

			if (parent != NULL && parent->subid == parentSubid)
			{
				v->prev = parent->prev;
				pfree(parent);
			}
			v->subid = parentSubid;
		}
	}
}

void
consistency_idem_claims_init(void)
{
	RegisterXactCallback(idem_xact_callback, NULL);
	RegisterSubXactCallback(idem_subxact_callback, NULL);
}
