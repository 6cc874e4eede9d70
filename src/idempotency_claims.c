/*-------------------------------------------------------------------------
 *
 * idempotency_claims.c
 *	  The keys this transaction has claimed with idem_begin(), and the
 *	  per-key locks that make concurrent duplicates wait.
 *
 * A claim is an uncommitted 'in_progress' row plus a transaction-level
 * advisory lock on the (scope, key) pair.  The lock, not the row, is what a
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
 * its key.  Savepoints are followed: a claim, completion or release made in
 * a subtransaction that rolls back is forgotten with it, like the row.
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

typedef struct IdemClaim
{
	IdemClaimKey hkey;			/* must be first */
	SubTransactionId claimed_subid;
	SubTransactionId completed_subid;	/* InvalidSubTransactionId if not */
	SubTransactionId released_subid;	/* InvalidSubTransactionId if not */
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
lookup_claim(const IdemKey *k, HASHACTION action)
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
	return (IdemClaim *) hash_search(claims, &hkey, action, NULL);
}

/*
 * Take the transaction-level lock on (scope, key).  Returns false only when
 * !wait and another transaction holds it.  A waiting caller may get
 * lock_timeout's 55P03 or the deadlock detector's 40P01.
 */
bool
idem_lock_key(const IdemKey *k, bool wait)
{
	LOCKTAG		tag;
	uint64		h;

	h = hash_combine64(hash_bytes_extended((const unsigned char *) k->scope, k->scopelen, 0),
					   hash_bytes_extended((const unsigned char *) k->key, k->keylen, 0));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 CONSISTENCY_LOCKTAG_IDEMPOTENCY);
	return LockAcquire(&tag, ExclusiveLock, false, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/* Has this transaction claimed the key (and not released it)? */
bool
idem_claim_held(const IdemKey *k)
{
	IdemClaim  *c = lookup_claim(k, HASH_FIND);

	return c != NULL && c->released_subid == InvalidSubTransactionId;
}

/* ... and already stored its response? */
bool
idem_claim_completed(const IdemKey *k)
{
	IdemClaim  *c = lookup_claim(k, HASH_FIND);

	return c != NULL && c->completed_subid != InvalidSubTransactionId;
}

void
idem_claim_register(const IdemKey *k)
{
	IdemClaim  *c = lookup_claim(k, HASH_ENTER);

	c->claimed_subid = GetCurrentSubTransactionId();
	c->completed_subid = InvalidSubTransactionId;
	c->released_subid = InvalidSubTransactionId;
}

void
idem_claim_mark_completed(const IdemKey *k)
{
	IdemClaim  *c = lookup_claim(k, HASH_FIND);

	if (c != NULL)
		c->completed_subid = GetCurrentSubTransactionId();
}

void
idem_claim_mark_released(const IdemKey *k)
{
	IdemClaim  *c = lookup_claim(k, HASH_FIND);

	if (c != NULL)
		c->released_subid = GetCurrentSubTransactionId();
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
		if (c->completed_subid != InvalidSubTransactionId ||
			c->released_subid != InvalidSubTransactionId)
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
		if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			/* the subtransaction's row changes and locks are gone: so is this */
			if (c->claimed_subid == mySubid)
				hash_search(claims, &c->hkey, HASH_REMOVE, NULL);
			else
			{
				if (c->completed_subid == mySubid)
					c->completed_subid = InvalidSubTransactionId;
				if (c->released_subid == mySubid)
					c->released_subid = InvalidSubTransactionId;
			}
		}
		else
		{
			if (c->claimed_subid == mySubid)
				c->claimed_subid = parentSubid;
			if (c->completed_subid == mySubid)
				c->completed_subid = parentSubid;
			if (c->released_subid == mySubid)
				c->released_subid = parentSubid;
		}
	}
}

void
idem_claims_init(void)
{
	RegisterXactCallback(idem_xact_callback, NULL);
	RegisterSubXactCallback(idem_subxact_callback, NULL);
}
