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

#include "access/xlogdefs.h"
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
#define ERRCODE_CONSISTENCY_IDEM_IN_PROGRESS	MAKE_SQLSTATE('Y','C','0','0','6')

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

/*
 * A ProcessUtility hook's call down the chain: the hook installed before it
 * (prev), or PostgreSQL's own.  For the files that include tcop/utility.h.
 */
#define consistency_next_utility(prev, pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc) \
	((prev) != NULL ? \
	 (prev) ((pstmt), (queryString), (readOnlyTree), (context), (params), (queryEnv), (dest), (qc)) : \
	 standard_ProcessUtility((pstmt), (queryString), (readOnlyTree), (context), (params), (queryEnv), (dest), (qc)))

/*
 * Module init functions, each called by _PG_init() in consistency.c and by
 * nothing else: a module never calls a sibling's init.
 */
extern void consistency_idempotency_init(void);		/* idempotency.c */
extern void consistency_idem_claims_init(void);		/* idempotency_claims.c */
extern void consistency_versioning_init(void);		/* versioning.c */
extern void consistency_versioning_update_init(void);	/* versioning_update.c */
extern void consistency_versioning_direct_init(void);	/* versioning_direct.c */
extern void consistency_token_report_init(void);	/* token_report.c */
extern void consistency_token_wait_init(void);		/* token_wait.c */
extern void consistency_token_watcher_init(void);	/* token_watcher.c */
extern void consistency_twophase_indoubt_init(void);	/* twophase_indoubt.c */
extern void consistency_twophase_resolve_init(void);	/* twophase_resolve.c */
extern void consistency_table_owner_init(void);		/* table_owner.c */
extern void consistency_stats_init(void);			/* stats.c (stats.h bumps the counters) */
extern void consistency_maintenance_init(void);		/* maintenance.c */
extern void consistency_inventory_init(void);		/* inventory_slots.c */
extern void consistency_inventory_combine_init(void);	/* inventory_combine.c */

/* YC3xx: session LSN tokens */
#define ERRCODE_CONSISTENCY_TOKEN_MALFORMED		MAKE_SQLSTATE('Y','C','3','0','1')
#define ERRCODE_CONSISTENCY_TOKEN_WRONG_CLUSTER	MAKE_SQLSTATE('Y','C','3','0','2')
#define ERRCODE_CONSISTENCY_TOKEN_DIVERGED		MAKE_SQLSTATE('Y','C','3','0','3')
#define ERRCODE_CONSISTENCY_TOKEN_NOT_REPLAYED	MAKE_SQLSTATE('Y','C','3','0','4')
#define ERRCODE_CONSISTENCY_TOKEN_NOT_PRIMARY	MAKE_SQLSTATE('Y','C','3','0','5')
#define ERRCODE_CONSISTENCY_TOKEN_UNCOMMITTED	MAKE_SQLSTATE('Y','C','3','0','6')

/* YC4xx: in-doubt two-phase commit (twophase_*.c) */
#define ERRCODE_CONSISTENCY_TPC_GID_UNRECOGNISED	MAKE_SQLSTATE('Y','C','4','0','1')
#define ERRCODE_CONSISTENCY_TPC_WRONG_TRANSACTION	MAKE_SQLSTATE('Y','C','4','0','2')
#define ERRCODE_CONSISTENCY_TPC_DECISION_CONFLICT	MAKE_SQLSTATE('Y','C','4','0','3')
#define ERRCODE_CONSISTENCY_TPC_CONTRADICTS_VERDICT	MAKE_SQLSTATE('Y','C','4','0','4')
#define ERRCODE_CONSISTENCY_TPC_WORKER_UNAVAILABLE	MAKE_SQLSTATE('Y','C','4','0','5')
#define ERRCODE_CONSISTENCY_TPC_WORKER_FAILED		MAKE_SQLSTATE('Y','C','4','0','6')

/* spi_plans.c: SPI statements prepared once per backend. */
struct _SPI_plan;
extern struct _SPI_plan *consistency_keep_plan(struct _SPI_plan **cache, const char *sql,
											   int nargs, const Oid *argtypes);

/* A fixed statement of the extension: its text, its parameters' types, its kept plan. */
#define CONSISTENCY_STMT_MAX_ARGS 8
typedef struct ConsistencyStmt
{
	const char *sql;
	int			nargs;
	Oid			argtypes[CONSISTENCY_STMT_MAX_ARGS];
	struct _SPI_plan *plan;		/* NULL until first use */
} ConsistencyStmt;
extern struct _SPI_plan *consistency_stmt_plan(ConsistencyStmt *stmt);
extern void consistency_stmt_check(int rc, const ConsistencyStmt *stmt);

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

extern Oid	consistency_table_oid(ConsistencyTable t);
extern void consistency_become_owner(Oid relid, ConsistencySavedUser *saved);

/* direct_insert.c: one row into an extension table, or one index entry, without the executor */
struct ResultRelInfo;
extern struct ResultRelInfo *consistency_direct_open(Oid relid, int natts, const Oid *types,
													 const bool *isnull);
extern void consistency_direct_insert(struct ResultRelInfo *rri, Datum *values, bool *isnull);
extern int	consistency_direct_insert_new(struct ResultRelInfo *rri, Datum *values,
										  bool *isnull);
typedef struct ConsistencyNewRows ConsistencyNewRows;
extern ConsistencyNewRows *consistency_direct_new_rows_begin(struct ResultRelInfo *rri);
extern int	consistency_direct_new_row(ConsistencyNewRows *nr, Datum *values, bool *isnull,
									   bool likely_new);
extern void consistency_direct_new_rows_end(ConsistencyNewRows *nr);
extern void consistency_direct_close(struct ResultRelInfo *rri);
struct EState;
struct IndexInfo;
struct TupleTableSlot;
extern void consistency_index_entry(Relation rel, Relation idx, struct IndexInfo *ii,
									struct TupleTableSlot *slot, ItemPointer tid,
									struct EState **estate);
extern void consistency_restore_user(const ConsistencySavedUser *saved);

/* direct_update.c: one row's new version and its index entries, without the executor */
extern int	consistency_direct_update_row(Relation rel, struct TupleTableSlot *found, int ncols,
										  int *cols, Datum *values, bool *nulls, bool wait);
struct ScanKeyData;
typedef int (*ConsistencyRowUpdate) (Relation rel, struct TupleTableSlot *found, void *arg);
extern int	consistency_direct_update_by_key(Relation rel, Relation pkey, int nkeys,
											 struct ScanKeyData *skey,
											 ConsistencyRowUpdate update, void *arg);

/*
 * token_report.c: a write another backend committed for this session (a
 * reserve_now() batch's leader) becomes the session's last committed write.
 */
extern void consistency_token_note_commit(XLogRecPtr lsn);

/* args.c: argument checks shared by every SQL-callable function. */
extern void consistency_arg_not_null(FunctionCallInfo fcinfo, int argno,
									 const char *argname);
extern text *consistency_text_arg(FunctionCallInfo fcinfo, int argno,
								  const char *argname, int maxbytes,
								  bool allow_empty);

#endif							/* CONSISTENCY_H */
