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

/* Hash key: the pair, length-prefixed and zero-padded so HASH_BLOBS works. */
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

/* Claims of the current transaction; lives in TopTransactionContext. */
static HTAB *claims = NULL;

static void
make_hkey(const IdemKey *k, IdemClaimKey *hkey)
{
	Assert(k->scopelen <= IDEM_MAX_SCOPE_BYTES && k->keylen <= IDEM_MAX_KEY_BYTES);
	memset(hkey, 0, sizeof(*hkey));
	hkey->scopelen = k->scopelen;
	hkey->keylen = k->keylen;
	memcpy(hkey->data, k->scope, k->scopelen);
	memcpy(hkey->data + k->scopelen, k->key, k->keylen);
}

static IdemClaim *
lookup_claim(const IdemKey *k, HASHACTION action, bool *found)
{
	IdemClaimKey hkey;

	if (claims == NULL)
	{
		HASHCTL		ctl;

		if (action == HASH_FIND)
			return NULL;
		ctl.keysize = sizeof(IdemClaimKey);
		ctl.entrysize = sizeof(IdemClaim);
		ctl.hcxt = TopTransactionContext;
		claims = hash_create("consistency idempotency claims", 16, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
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
 * Take the transaction-level lock on (scope, key).  Returns false only when
 * !wait and another transaction holds it.  A waiting caller may get
 * lock_timeout's 55P03 or the deadlock detector's 40P01.
 *
 * A caller about to create the key's row (a claim, a new lease) passes
 * publish = true: it first takes the lock announcing its fingerprint, so
 * that while it holds the key, a request that will not wait can tell
 * whether it is the same request (idem_inflight_fingerprint_differs).
 */
bool
idem_lock_key(const IdemKey *k, bool wait, bool publish, text *fingerprint)
{
	LOCKTAG		tag;

	if (publish)
	{
		set_fingerprint_tag(&tag, k, fingerprint);
		if (LockAcquire(&tag, ExclusiveLock, false, !wait) == LOCKACQUIRE_NOT_AVAIL)
			return false;		/* the same request is in flight */
	}
	set_tag(&tag, key_hash(k), CONSISTENCY_LOCKTAG_IDEMPOTENCY);
	if (LockAcquire(&tag, ExclusiveLock, false, !wait) != LOCKACQUIRE_NOT_AVAIL)
		return true;
	if (publish)
	{
		/* we will not claim after all: stop announcing */
		set_fingerprint_tag(&tag, k, fingerprint);
		LockRelease(&tag, ExclusiveLock, false);
	}
	return false;
}

/*
 * Is the claim in flight on this key (whose lock another transaction holds)
 * for a different request?  Only when it announced a fingerprint that is not
 * ours: neither our fingerprint's tag nor the no-fingerprint tag is held.
 * Locks taken to test are released at once.
 */
bool
idem_inflight_fingerprint_differs(const IdemKey *k, text *fingerprint)
{
	LOCKTAG		mine;
	LOCKTAG		none;
	bool		free_mine;
	bool		free_none;

	if (fingerprint == NULL)
		return false;
	set_fingerprint_tag(&mine, k, fingerprint);
	set_fingerprint_tag(&none, k, NULL);
	free_mine = LockAcquire(&mine, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
	if (free_mine)
		LockRelease(&mine, ExclusiveLock, false);
	free_none = LockAcquire(&none, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
	if (free_none)
		LockRelease(&none, ExclusiveLock, false);
	return free_mine && free_none;
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
				 errdetail("The key is in scope \"%.*s\". A transaction that claims a key with consistency.idem_begin() must store the response with consistency.idem_complete() before it commits.",
						   c->hkey.scopelen, c->hkey.data) :
				 errdetail("A transaction that claims a key with consistency.idem_begin() must store the response with consistency.idem_complete() before it commits."),
				 errhint("Call consistency.idem_complete(), give the key up with consistency.idem_release(), or roll back.")));
	}
}

static void
idem_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (claims != NULL)
				check_claims_answered();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* the table itself went away with TopTransactionContext */
			claims = NULL;
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

	if (claims == NULL ||
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
idem_claims_init(void)
{
	RegisterXactCallback(idem_xact_callback, NULL);
	RegisterSubXactCallback(idem_subxact_callback, NULL);
}
