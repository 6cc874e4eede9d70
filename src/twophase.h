/*-------------------------------------------------------------------------
 *
 * twophase.h
 *	  Interface between the in-doubt two-phase commit modules: gids and the
 *	  decision log (twophase_decisions.c), the listing and verdicts
 *	  (twophase_indoubt.c), and the resolver and its background worker
 *	  (twophase_resolve.c).
 *
 * IDENTIFICATION
 *	  src/twophase.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_TWOPHASE_H
#define CONSISTENCY_TWOPHASE_H

#include "access/transam.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/palloc.h"

/* PostgreSQL's limit on a gid (GIDSIZE in twophase.c, not exported): 199 bytes. */
#define TPC_MAX_GID_BYTES		199
/* The participant label tpc_gid() appends. */
#define TPC_MAX_PARTICIPANT_BYTES	64
/* The nonce in a gid of format 2: 16 lower-case hex digits (64 random bits). */
#define TPC_NONCE_CHARS			16
/* Room for an evidence sentence and a worker's error message. */
#define TPC_MAX_TEXT			1024

/* What the resolver would do with a prepared transaction. */
typedef enum TpcVerdict
{
	TPC_VERDICT_COMMIT,
	TPC_VERDICT_ROLLBACK,
	TPC_VERDICT_IN_PROGRESS,
	TPC_VERDICT_UNKNOWN
} TpcVerdict;

/* One prepared transaction, as pg_prepared_xact() shows it. */
typedef struct TpcPrepared
{
	char	   *gid;
	TransactionId xid;
	Oid			dboid;
	char	   *database;
	Oid			ownerid;
	char	   *owner;
	TimestampTz prepared_at;
} TpcPrepared;

/* A gid made by tpc_gid(): coordinator cluster and transaction. */
typedef struct TpcGid
{
	uint64		sysid;
	Oid			dboid;			/* the coordinator's database: its decision log */
	FullTransactionId fxid;
	bool		has_nonce;		/* format 2 (cy2:); 1.0's format 1 has none */
	char		nonce[TPC_NONCE_CHARS + 1];
} TpcGid;

/* twophase_decisions.c: gids and the decision log */
extern bool tpc_parse_gid(const char *gid, TpcGid *out);
extern bool tpc_same_transaction(const TpcGid *a, const TpcGid *b);
extern bool tpc_decision_applies(const TpcGid *g, const char *gid, const char *row_gid);
extern Oid	tpc_log_relid(const char *relname);
extern Interval *tpc_interval_arg(FunctionCallInfo fcinfo, int argno,
								  const char *argname);

/* twophase_indoubt.c: the prepared transactions and their verdicts */
extern List *tpc_list_prepared(const char *gid, const Interval *min_age,
							   MemoryContext mcxt);
extern TpcVerdict tpc_decide(const TpcPrepared *p, char **evidence);
extern const char *tpc_verdict_name(TpcVerdict v);

/* twophase_resolve.c: the worker's entry point (named in bgw_function_name). */
extern PGDLLEXPORT void consistency_tpc_worker_main(Datum main_arg);

#endif							/* CONSISTENCY_TWOPHASE_H */
