/*-------------------------------------------------------------------------
 *
 * idempotency.h
 *	  Interface between the idempotency SQL functions (idempotency.c) and the
 *	  per-transaction claim registry and key locks (idempotency_claims.c).
 *
 * IDENTIFICATION
 *	  src/idempotency.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_IDEMPOTENCY_H
#define CONSISTENCY_IDEMPOTENCY_H

#include "datatype/timestamp.h"

/* Limits on the text arguments, in bytes; README.md documents them. */
#define IDEM_MAX_KEY_BYTES			255
#define IDEM_MAX_SCOPE_BYTES		255
#define IDEM_MAX_FINGERPRINT_BYTES	1024
#define IDEM_MAX_RECOVERY_BYTES		8192

/* A (scope, key) pair as the functions receive it; not NUL-terminated. */
typedef struct IdemKey
{
	const char *scope;
	int			scopelen;
	const char *key;
	int			keylen;
} IdemKey;

/*
 * What idem_begin() decided for a key claimed in this transaction, kept until
 * idem_complete() writes the row: nothing is written at claim time.
 */
typedef struct IdemClaimInfo
{
	text	   *fingerprint;	/* NULL if the request has none */
	TimestampTz created_at;
	TimestampTz expires_at;
	bool		replaces_row;	/* an expired row or an abandoned lease is there */
	bool		completed;		/* idem_complete() ran in this transaction */
} IdemClaimInfo;

/* Who holds a busy key, as far as a request that will not wait can tell. */
typedef enum IdemHolder
{
	IDEM_HOLDER_SAME,			/* our request (or one never compared) */
	IDEM_HOLDER_OTHER,			/* a request with another fingerprint */
	IDEM_HOLDER_GONE			/* nobody any more: try again */
} IdemHolder;

extern bool idem_lock_key(const IdemKey *k, bool wait, text *fingerprint);
extern void idem_unlock_key(const IdemKey *k, text *fingerprint);
extern IdemHolder idem_key_holder(const IdemKey *k, text *fingerprint);
extern const IdemClaimInfo *idem_claim_get(const IdemKey *k);
extern void idem_claim_register(const IdemKey *k, text *fingerprint, TimestampTz created_at,
								TimestampTz expires_at, bool replaces_row);
extern void idem_claim_mark_completed(const IdemKey *k);
extern void idem_claim_mark_released(const IdemKey *k);

#endif							/* CONSISTENCY_IDEMPOTENCY_H */
