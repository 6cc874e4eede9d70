/*-------------------------------------------------------------------------
 *
 * consistency.h
 *	  Declarations shared by the modules of the consistency extension: each
 *	  module's init function, the extension's own SQLSTATEs, and the argument
 *	  checks every SQL-callable function uses.
 *
 * SQLSTATEs of our own live in class "YC" (implementation-defined classes
 * start with a letter from I to Z).  Retryable conflicts use class 40 instead
 * so that generic retry loops catch them; plain bad input uses the standard
 * class 22 codes.  README.md lists every code.
 *
 * IDENTIFICATION
 *	  src/consistency.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_H
#define CONSISTENCY_H

#include "fmgr.h"
#include "utils/elog.h"

#include "compat.h"

/* Name of the extension's schema; fixed by consistency.control. */
#define CONSISTENCY_SCHEMA "consistency"

/*
 * Field 4 of the advisory lock tags the extension takes, so that they never
 * collide with pg_advisory_lock(), which uses 1 and 2.  Visible in pg_locks
 * as locktype 'advisory' with this objsubid.
 */
#define CONSISTENCY_LOCKTAG_IDEMPOTENCY		0x4943	/* 'IC': a key */
#define CONSISTENCY_LOCKTAG_IDEM_FINGERPRINT	0x4946	/* 'IF': its claim's fingerprint */

/* YC0xx: idempotency keys */
#define ERRCODE_CONSISTENCY_IDEM_KEY_REUSED		MAKE_SQLSTATE('Y','C','0','0','1')
#define ERRCODE_CONSISTENCY_IDEM_NOT_CLAIMED	MAKE_SQLSTATE('Y','C','0','0','2')
#define ERRCODE_CONSISTENCY_IDEM_LEASE_LOST		MAKE_SQLSTATE('Y','C','0','0','3')
#define ERRCODE_CONSISTENCY_IDEM_COMPLETED		MAKE_SQLSTATE('Y','C','0','0','4')
#define ERRCODE_CONSISTENCY_IDEM_INCOMPLETE		MAKE_SQLSTATE('Y','C','0','0','5')

/*
 * YC1xx: optimistic versioning.  A version conflict is 40001 unless
 * consistency.version_conflict_sqlstate selects YC101.
 */
#define ERRCODE_CONSISTENCY_VERSION_CONFLICT	MAKE_SQLSTATE('Y','C','1','0','1')
#define ERRCODE_CONSISTENCY_VERSION_NOT_SET		MAKE_SQLSTATE('Y','C','1','0','2')
#define ERRCODE_CONSISTENCY_ROW_NOT_UPDATED		MAKE_SQLSTATE('Y','C','1','0','3')

/*
 * Inventory reservations (inventory*.c): slot locks use field 4 = 'IV';
 * fields 2 and 3 hold a 56-bit hash of the SKU and the slot number.
 */
#define CONSISTENCY_LOCKTAG_INVENTORY		0x4956	/* 'IV' */

/* YC2xx: inventory reservations */
#define ERRCODE_CONSISTENCY_INV_UNKNOWN_SKU		MAKE_SQLSTATE('Y','C','2','0','1')
#define ERRCODE_CONSISTENCY_INV_ID_REUSED		MAKE_SQLSTATE('Y','C','2','0','2')
#define ERRCODE_CONSISTENCY_INV_EXPIRED			MAKE_SQLSTATE('Y','C','2','0','3')
#define ERRCODE_CONSISTENCY_INV_RELEASED		MAKE_SQLSTATE('Y','C','2','0','4')
#define ERRCODE_CONSISTENCY_INV_CONFIRMED		MAKE_SQLSTATE('Y','C','2','0','5')
#define ERRCODE_CONSISTENCY_INV_UNKNOWN_RESERVATION	MAKE_SQLSTATE('Y','C','2','0','6')
#define ERRCODE_CONSISTENCY_INV_BELOW_RESERVED	MAKE_SQLSTATE('Y','C','2','0','7')

/* Module init functions, called from _PG_init() in consistency.c. */
extern void consistency_idempotency_init(void);
extern void consistency_versioning_init(void);

/* Session LSN tokens (session_token.c and token_*.c) */
extern void consistency_session_token_init(void);

/* YC3xx: session LSN tokens */
#define ERRCODE_CONSISTENCY_TOKEN_MALFORMED		MAKE_SQLSTATE('Y','C','3','0','1')
#define ERRCODE_CONSISTENCY_TOKEN_WRONG_CLUSTER	MAKE_SQLSTATE('Y','C','3','0','2')
#define ERRCODE_CONSISTENCY_TOKEN_DIVERGED		MAKE_SQLSTATE('Y','C','3','0','3')
#define ERRCODE_CONSISTENCY_TOKEN_NOT_REPLAYED	MAKE_SQLSTATE('Y','C','3','0','4')
#define ERRCODE_CONSISTENCY_TOKEN_NOT_PRIMARY	MAKE_SQLSTATE('Y','C','3','0','5')
#define ERRCODE_CONSISTENCY_TOKEN_UNCOMMITTED	MAKE_SQLSTATE('Y','C','3','0','6')

/* YC4xx: in-doubt two-phase commit (twophase_helpers.c, twophase_resolve.c) */
extern void consistency_twophase_init(void);
#define ERRCODE_CONSISTENCY_TPC_GID_UNRECOGNISED	MAKE_SQLSTATE('Y','C','4','0','1')
#define ERRCODE_CONSISTENCY_TPC_WRONG_TRANSACTION	MAKE_SQLSTATE('Y','C','4','0','2')
#define ERRCODE_CONSISTENCY_TPC_DECISION_CONFLICT	MAKE_SQLSTATE('Y','C','4','0','3')
#define ERRCODE_CONSISTENCY_TPC_CONTRADICTS_VERDICT	MAKE_SQLSTATE('Y','C','4','0','4')
#define ERRCODE_CONSISTENCY_TPC_WORKER_UNAVAILABLE	MAKE_SQLSTATE('Y','C','4','0','5')
#define ERRCODE_CONSISTENCY_TPC_WORKER_FAILED		MAKE_SQLSTATE('Y','C','4','0','6')

/* stats.c: the counters of consistency.stats (stats.h bumps them) */
extern void consistency_stats_init(void);

/* maintenance.c: the settings of consistency.maintenance() */
extern void consistency_maintenance_init(void);

/* spi_plans.c: SPI statements prepared once per backend. */
struct _SPI_plan;
extern struct _SPI_plan *consistency_keep_plan(struct _SPI_plan **cache, const char *sql,
											   int nargs, const Oid *argtypes);

/*
 * table_owner.c: run the extension's own table accesses as the tables' owner,
 * so application roles need no write privilege on them.
 */
typedef struct ConsistencySavedUser
{
	Oid			userid;
	int			sec_context;
} ConsistencySavedUser;

/* The extension's tables that hot paths look up (cached, reset by relcache invalidation). */
typedef enum ConsistencyTable
{
	CONSISTENCY_TABLE_IDEMPOTENCY_KEYS,
	CONSISTENCY_TABLE_INVENTORY,
	CONSISTENCY_TABLE_RESERVATIONS,
	CONSISTENCY_NUM_TABLES
} ConsistencyTable;

extern void consistency_table_owner_init(void);
extern Oid	consistency_table_oid(ConsistencyTable t);
extern void consistency_become_owner(Oid relid, ConsistencySavedUser *saved);
extern void consistency_restore_user(const ConsistencySavedUser *saved);

/* args.c: argument checks shared by every SQL-callable function. */
extern void consistency_arg_not_null(FunctionCallInfo fcinfo, int argno,
									 const char *argname);
extern text *consistency_text_arg(FunctionCallInfo fcinfo, int argno,
								  const char *argname, int maxbytes,
								  bool allow_empty);

#endif							/* CONSISTENCY_H */
