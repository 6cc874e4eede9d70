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

extern void idem_claims_init(void);
extern bool idem_lock_key(const IdemKey *k, bool wait);
extern bool idem_claim_held(const IdemKey *k);
extern bool idem_claim_completed(const IdemKey *k);
extern void idem_claim_register(const IdemKey *k);
extern void idem_claim_mark_completed(const IdemKey *k);
extern void idem_claim_mark_released(const IdemKey *k);

#endif							/* CONSISTENCY_IDEMPOTENCY_H */
