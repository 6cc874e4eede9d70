/*-------------------------------------------------------------------------
 *
 * twophase_helpers.c
 *	  In-doubt two-phase commit, the read side: the gid helper tpc_gid(), the
 *	  coordinator's decision log (tpc_log_decision), the resolver's verdict
 *	  for one prepared transaction, and the listing prepared_xacts().
 *
 * Protocol (presumed abort).  A coordinator transaction calls tpc_gid() to
 * name its participants' prepared transactions; the gid embeds this
 * cluster's system identifier, the coordinator's database and its full
 * transaction id.  After every participant has prepared, the same
 * transaction calls tpc_log_decision(gid, 'commit') and commits; only then
 * does phase 2 (COMMIT PREPARED) start.  So a commit decision exists if and
 * only if the coordinator transaction committed with it, and a resolver
 * decides by looking, in this order, at:
 *	 1. the coordinator transaction's status (pg_xact_status): still running
 *		means phase 2 may still come, so nothing is touched;
 *	 2. then, with a snapshot taken after step 1, the decision log: a commit
 *		decision means COMMIT PREPARED, anything else ROLLBACK PREPARED.
 * Reading the status first matters: a decision read before the status could
 * miss a commit that happened in between and then see "committed" with no
 * decision.  Step 2 uses the latest snapshot even under REPEATABLE READ.
 *
 * A coordinator that loses the end of its history (failover to a standby
 * that had not received it, point-in-time recovery, a restored backup) hands
 * the lost xids out again.  So the gid also carries a random nonce, one per
 * coordinator transaction; a decision counts for a gid only if it was logged
 * under the same nonce (sibling gids share it).  Gids of format 1 (made by
 * version 1.0, no nonce) keep 1.0's rule: any format-1 gid of the same xid.
 *
 * Both logs are written by the functions only, as the tables' owner
 * (table_owner.c); no application role holds INSERT, UPDATE or DELETE on
 * them.  The guard triggers check every row written, whoever writes it.
 *
 * The listing reads lock information once (GetLockStatusData, what pg_locks
 * shows) and attributes it to prepared transactions by their dummy PGPROC
 * (no pid; recognised by the ExclusiveLock it holds on its own xid); a waiter is
 * blocked by a prepared transaction when its requested mode conflicts with
 * a mode the prepared transaction holds on the same lock.
 *
 * IDENTIFICATION
 *	  src/twophase_helpers.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "replication/syncrep.h"
#include "storage/lock.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "consistency.h"
#include "stats.h"
#include "twophase.h"

PG_FUNCTION_INFO_V1(consistency_tpc_gid);
PG_FUNCTION_INFO_V1(consistency_tpc_log_decision);
PG_FUNCTION_INFO_V1(consistency_tpc_decisions_guard);
PG_FUNCTION_INFO_V1(consistency_prepared_xacts);
PG_FUNCTION_INFO_V1(consistency_tpc_prune_decisions);

/* GUC: how long a transaction whose coordinator status is lost waits before rollback. */
static int	tpc_grace_period = 300;

/* The last transaction whose xid tpc_gid() made durable, and its nonce. */
static FullTransactionId durable_fxid = {0};
static char durable_nonce[TPC_NONCE_CHARS + 1];

/* Prefixes of the gids: format 1 (1.0, no nonce), format 2 (tpc_gid() now). */
#define GID_PREFIX_V1 "cy1:"
#define GID_PREFIX "cy2:"

typedef enum TpcStmt
{
	STMT_LIST,
	STMT_DECISION,
	STMT_CONFLICT,
	STMT_INSERT,
	STMT_INSERT_NONCE,
	STMT_PRUNE,
	NUM_STMTS
} TpcStmt;

typedef struct TpcStmtDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[5];
} TpcStmtDef;

static const TpcStmtDef stmt_defs[NUM_STMTS] = {
	[STMT_LIST] = {
		"SELECT p.gid, p.transaction, p.dbid, d.datname, p.ownerid,"
		" pg_catalog.pg_get_userbyid(p.ownerid), p.prepared"
		" FROM pg_catalog.pg_prepared_xact() p"
		" LEFT JOIN pg_catalog.pg_database d ON d.oid = p.dbid"
		" WHERE ($1::pg_catalog.text IS NULL OR p.gid = $1)"
		" AND pg_catalog.statement_timestamp() - p.prepared >= $2"
		" ORDER BY p.prepared, p.gid",
		2, {TEXTOID, INTERVALOID}
	},
	/*
	 * The decisions for this gid, or for any other gid of the same xid; the
	 * caller keeps those of the same coordinator transaction (same nonce).
	 */
	[STMT_DECISION] = {
		"SELECT decision, pg_catalog.to_char(pg_catalog.timezone('UTC', decided_at), 'YYYY-MM-DD HH24:MI:SS.US \"UTC\"'), gid"
		" FROM consistency.tpc_decisions"
		" WHERE gid OPERATOR(pg_catalog.=) $1"
		" OR (coordinator_sysid OPERATOR(pg_catalog.=) $2 AND coordinator_xid OPERATOR(pg_catalog.=) $3)"
		" ORDER BY gid OPERATOR(pg_catalog.=) $1 DESC, gid",
		3, {TEXTOID, INT8OID, XID8OID}
	},
	/* other decisions for this gid, or for any gid of the same xid (the caller filters) */
	[STMT_CONFLICT] = {
		"SELECT gid, decision FROM consistency.tpc_decisions"
		" WHERE (gid OPERATOR(pg_catalog.=) $4"
		" OR (coordinator_sysid OPERATOR(pg_catalog.=) $1 AND coordinator_xid OPERATOR(pg_catalog.=) $2))"
		" AND decision OPERATOR(pg_catalog.<>) $3"
		" ORDER BY gid OPERATOR(pg_catalog.=) $4 DESC, gid",
		4, {INT8OID, XID8OID, TEXTOID, TEXTOID}
	},
	/* the decision log of a database still at 1.0 (no nonce column) */
	[STMT_INSERT] = {
		"INSERT INTO consistency.tpc_decisions"
		" (gid, decision, coordinator_sysid, coordinator_xid, decided_at)"
		" VALUES ($1, $2, $3, $4, pg_catalog.clock_timestamp())"
		" ON CONFLICT (gid) DO NOTHING",
		4, {TEXTOID, TEXTOID, INT8OID, XID8OID}
	},
	[STMT_INSERT_NONCE] = {
		"INSERT INTO consistency.tpc_decisions"
		" (gid, decision, coordinator_sysid, coordinator_xid, coordinator_nonce, decided_at)"
		" VALUES ($1, $2, $3, $4, $5, pg_catalog.clock_timestamp())"
		" ON CONFLICT (gid) DO NOTHING",
		5, {TEXTOID, TEXTOID, INT8OID, XID8OID, TEXTOID}
	},
	/*
	 * Decisions older than $1, except those of a coordinator transaction that
	 * still has a participant prepared in this cluster: the gid itself, or a
	 * gid with the same transaction prefix (format 1: cy1:sysid:db:xid;
	 * format 2: cy2:sysid:db:xid:nonce) followed by a label.
	 */
	[STMT_PRUNE] = {
		"DELETE FROM consistency.tpc_decisions d"
		" WHERE d.decided_at OPERATOR(pg_catalog.<) (pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) $1)"
		" AND NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_xact() p"
		"  WHERE p.gid OPERATOR(pg_catalog.=) d.gid"
		"  OR p.gid OPERATOR(pg_catalog.=) pg_catalog.substring(d.gid, '^(cy1:[0-9]+:[0-9]+:[0-9]+|cy2:[0-9]+:[0-9]+:[0-9]+:[0-9a-f]{16})')"
		"  OR pg_catalog.starts_with(p.gid, (pg_catalog.substring(d.gid, '^(cy1:[0-9]+:[0-9]+:[0-9]+|cy2:[0-9]+:[0-9]+:[0-9]+:[0-9a-f]{16})') OPERATOR(pg_catalog.||) ':')))",
		1, {INTERVALOID}
	},
};

static SPIPlanPtr stmt_plans[NUM_STMTS];

static SPIPlanPtr
get_plan(TpcStmt s)
{
	return consistency_keep_plan(&stmt_plans[s], stmt_defs[s].sql, stmt_defs[s].nargs,
								 stmt_defs[s].argtypes);
}

static void
check_spi(int rc, TpcStmt s)
{
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 stmt_defs[s].sql, SPI_result_code_string(rc));
}

/* ----------------------------------------------------------------
 * Arguments and gids
 * ----------------------------------------------------------------
 */

/* A non-negative interval argument (min_age). */
Interval *
tpc_interval_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	Interval   *iv;
	Interval	zero = {0};

	consistency_arg_not_null(fcinfo, argno, argname);
	iv = PG_GETARG_INTERVAL_P(argno);
	if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(iv),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", argname),
				 errdetail("The %s given is %s.", argname,
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(iv))))));
	return iv;
}

/* Parse an unsigned decimal of at most 20 digits ending at a ':' or NUL. */
static bool
parse_u64(const char **p, uint64 *out)
{
	const char *s = *p;
	uint64		v = 0;
	int			n = 0;

	while (*s >= '0' && *s <= '9')
	{
		uint64		d = (uint64) (*s - '0');

		if (v > (PG_UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
		n++;
	}
	if (n == 0 || n > 20 || (n > 1 && **p == '0'))
		return false;
	*p = s;
	*out = v;
	return true;
}

/*
 * Recognise a gid made by tpc_gid():
 *	 cy2:<system identifier>:<database oid>:<full xid>:<nonce>[:<participant>]
 * or by 1.0's tpc_gid():
 *	 cy1:<system identifier>:<database oid>:<full xid>[:<participant>]
 * Decimal numbers without leading zeros and a nonce of 16 lower-case hex
 * digits, so that one coordinator transaction has exactly one spelling.
 */
bool
tpc_parse_gid(const char *gid, TpcGid *out)
{
	const char *p = gid;
	uint64		sysid;
	uint64		dboid;
	uint64		fxid;
	bool		v2;
	int			i;

	if (strncmp(p, GID_PREFIX, strlen(GID_PREFIX)) == 0)
		v2 = true;
	else if (strncmp(p, GID_PREFIX_V1, strlen(GID_PREFIX_V1)) == 0)
		v2 = false;
	else
		return false;
	p += strlen(GID_PREFIX);
	if (!parse_u64(&p, &sysid) || *p++ != ':')
		return false;
	if (!parse_u64(&p, &dboid) || dboid > PG_UINT32_MAX || dboid == InvalidOid || *p++ != ':')
		return false;
	if (!parse_u64(&p, &fxid))
		return false;
	if (!FullTransactionIdIsNormal(FullTransactionIdFromU64(fxid)))
		return false;
	memset(out->nonce, 0, sizeof(out->nonce));
	if (v2)
	{
		if (*p++ != ':')
			return false;
		for (i = 0; i < TPC_NONCE_CHARS; i++)
		{
			if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
				return false;
			out->nonce[i] = p[i];
		}
		p += TPC_NONCE_CHARS;
	}
	if (*p != '\0' && *p != ':')
		return false;
	out->sysid = sysid;
	out->dboid = (Oid) dboid;
	out->fxid = FullTransactionIdFromU64(fxid);
	out->has_nonce = v2;
	return true;
}

/*
 * Whether two parsed gids name the same coordinator transaction: same
 * cluster, database and xid, and the same nonce (or both of format 1).
 */
bool
tpc_same_transaction(const TpcGid *a, const TpcGid *b)
{
	return a->sysid == b->sysid && a->dboid == b->dboid &&
		FullTransactionIdEquals(a->fxid, b->fxid) &&
		a->has_nonce == b->has_nonce &&
		(!a->has_nonce || strcmp(a->nonce, b->nonce) == 0);
}

/* The table relid of one of the 2PC logs. */
Oid
tpc_log_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid(CONSISTENCY_SCHEMA, false);
	Oid			relid = get_relname_relid(relname, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", CONSISTENCY_SCHEMA, relname),
				 errhint("Install the extension with CREATE EXTENSION consistency.")));
	return relid;
}

static char *
gid_arg(FunctionCallInfo fcinfo, int argno)
{
	return text_to_cstring(consistency_text_arg(fcinfo, argno, "gid",
												TPC_MAX_GID_BYTES, false));
}

/*
 * tpc_gid(participant text DEFAULT '') -> text
 *
 * A gid naming the calling transaction as coordinator.  Assigns the
 * transaction an id if it has none yet (like pg_current_xact_id()).
 * Participants in one cluster need distinct gids: give each a label.
 *
 * The first call in a transaction also makes its xid durable: it writes a
 * tiny WAL record carrying the xid and flushes it.  An xid that was only
 * assigned, never WAL-logged, is forgotten by a crash and handed out again
 * after recovery; a new coordinator transaction would then carry the very
 * same gid (and maybe commit a decision for it) while participants still
 * hold the crashed one's prepared transactions.  Recovery advances the next
 * xid past every record's xid, so after the flush that cannot happen.  Where
 * synchronous replication is configured (synchronous_standby_names, and
 * synchronous_commit at least remote_write), the record is also waited for
 * on the synchronous standbys, so a standby promoted later knows the xid too.
 *
 * A failover to a standby without that record, or a point-in-time recovery
 * or restore of an older backup, can still hand the xid out again; the gid
 * therefore also carries a random nonce drawn once per transaction, and a
 * decision only counts for gids with the same nonce.
 */
Datum
consistency_tpc_gid(PG_FUNCTION_ARGS)
{
	char	   *label = text_to_cstring(consistency_text_arg(fcinfo, 0, "participant",
															 TPC_MAX_PARTICIPANT_BYTES, true));
	FullTransactionId fxid;
	StringInfoData buf;

	PreventCommandDuringRecovery("consistency.tpc_gid()");
	fxid = GetTopFullTransactionId();
	if (!FullTransactionIdEquals(fxid, durable_fxid))
	{
		uint32		r[2];
		XLogRecPtr	lsn;

		if (!pg_strong_random(r, sizeof(r)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random nonce for the gid")));
		lsn = LogLogicalMessage_compat("consistency.tpc_gid", (const char *) &fxid,
									   sizeof(fxid), true, false);
		XLogFlush(lsn);
		SyncRepWaitForLSN(lsn, false);
		snprintf(durable_nonce, sizeof(durable_nonce), "%08x%08x", r[0], r[1]);
		durable_fxid = fxid;
	}

	initStringInfo(&buf);
	appendStringInfo(&buf, GID_PREFIX UINT64_FORMAT ":%u:" UINT64_FORMAT ":%s",
					 GetSystemIdentifier(), MyDatabaseId, U64FromFullTransactionId(fxid),
					 durable_nonce);
	if (label[0] != '\0')
		appendStringInfo(&buf, ":%s", label);
	PG_RETURN_TEXT_P(cstring_to_text(buf.data));
}

/*
 * Whether a row of the decision log (its gid) belongs to the coordinator
 * transaction g: the very gid, or a sibling with the same nonce.
 */
static bool
decision_applies(const TpcGid *g, const char *gid, const char *row_gid)
{
	TpcGid		r;

	if (strcmp(row_gid, gid) == 0)
		return true;
	return tpc_parse_gid(row_gid, &r) && tpc_same_transaction(g, &r);
}

/*
 * Refuse to log decision for gid when the log already holds another decision
 * for this gid or for a sibling gid of the same coordinator transaction.
 * snap: the snapshot to look with (InvalidSnapshot: the statement's own).
 * The caller is connected to SPI, as the decision log's owner.
 */
static void
check_conflict(const TpcGid *g, const char *gid, const char *decision, Snapshot snap)
{
	Datum		v[4];
	int			rc;
	uint64		i;

	v[0] = Int64GetDatum((int64) g->sysid);
	v[1] = FullTransactionIdGetDatum(g->fxid);
	v[2] = CStringGetTextDatum(decision);
	v[3] = CStringGetTextDatum(gid);
	rc = SPI_execute_snapshot(get_plan(STMT_CONFLICT), v, NULL, snap, InvalidSnapshot,
							  false, false, 0);
	check_spi(rc, STMT_CONFLICT);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *other = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		char	   *otherdec = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		if (!decision_applies(g, gid, other))
			continue;			/* the same xid, another coordinator transaction */

		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TPC_DECISION_CONFLICT),
				 errmsg("coordinator transaction already decided %s", otherdec),
				 strcmp(other, gid) == 0 ?
				 errdetail("Gid \"%s\" already has decision \"%s\"; one transaction makes one decision.",
						   other, otherdec) :
				 errdetail("Gid \"%s\" of the same transaction has decision \"%s\"; one transaction makes one decision.",
						   other, otherdec)));
	}
}

/*
 * tpc_log_decision(gid text, decision text DEFAULT 'commit') -> void
 *
 * Record the coordinator's decision, in the coordinator transaction that
 * tpc_gid() named: it commits with that transaction or not at all.  Logging
 * the same decision again is a no-op; a different decision for the same
 * coordinator transaction is refused.
 */
Datum
consistency_tpc_log_decision(PG_FUNCTION_ARGS)
{
	char	   *gid = gid_arg(fcinfo, 0);
	char	   *decision = text_to_cstring(consistency_text_arg(fcinfo, 1, "decision", 16, false));
	TpcGid		g;
	FullTransactionId mine;
	Datum		v[5];
	char		n[5] = {' ', ' ', ' ', ' ', ' '};
	int			rc;
	Oid			relid;
	bool		with_nonce;
	TpcStmt		stmt;
	ConsistencySavedUser saved;

	if (strcmp(decision, "commit") != 0 && strcmp(decision, "abort") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("decision must be \"commit\" or \"abort\""),
				 errdetail("The decision given is \"%s\".", decision)));
	if (!tpc_parse_gid(gid, &g))
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TPC_GID_UNRECOGNISED),
				 errmsg("gid \"%s\" was not made by consistency.tpc_gid()", gid),
				 errdetail("A decision is only useful for a gid that names its coordinator transaction."),
				 errhint("Name the participants' prepared transactions with consistency.tpc_gid() in the coordinator transaction.")));
	mine = GetTopFullTransactionIdIfAny();
	if (g.sysid != GetSystemIdentifier() || g.dboid != MyDatabaseId ||
		!FullTransactionIdEquals(g.fxid, mine))
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TPC_WRONG_TRANSACTION),
				 errmsg("gid \"%s\" does not belong to this transaction", gid),
				 FullTransactionIdIsValid(mine) ?
				 errdetail("A decision must be logged by the coordinator transaction that made the gid, in its database; this is transaction " UINT64_FORMAT " of database %u in cluster " UINT64_FORMAT ".",
						   U64FromFullTransactionId(mine), MyDatabaseId, GetSystemIdentifier()) :
				 errdetail("A decision must be logged by the coordinator transaction that made the gid, in its database; this transaction has no transaction id, so it made no gid."),
				 errhint("Call consistency.tpc_gid() and consistency.tpc_log_decision() in the same transaction, before COMMIT PREPARED.")));

	/*
	 * The log is written as its owner: the caller needs no privilege on it
	 * (an error on the way resets the user with the transaction).
	 */
	relid = tpc_log_relid("tpc_decisions");
	with_nonce = get_attnum(relid, "coordinator_nonce") != InvalidAttrNumber;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	consistency_become_owner(relid, &saved);
	check_conflict(&g, gid, decision, InvalidSnapshot);
	v[0] = CStringGetTextDatum(gid);
	v[1] = CStringGetTextDatum(decision);
	v[2] = Int64GetDatum((int64) g.sysid);
	v[3] = FullTransactionIdGetDatum(g.fxid);
	v[4] = g.has_nonce ? CStringGetTextDatum(g.nonce) : (Datum) 0;
	n[4] = g.has_nonce ? ' ' : 'n';
	stmt = with_nonce ? STMT_INSERT_NONCE : STMT_INSERT;
	rc = SPI_execute_plan(get_plan(stmt), v, n, false, 0);
	check_spi(rc, stmt);

	/*
	 * Nothing inserted: a row for this gid exists (or a concurrent one just
	 * committed; ON CONFLICT waited for it).  The same decision is a no-op;
	 * any other is refused, never silently kept.
	 */
	if (SPI_processed == 0)
		check_conflict(&g, gid, decision, GetLatestSnapshot());
	else
		consistency_count(CSTAT_TPC_DECISION);
	consistency_restore_user(&saved);
	SPI_finish();

	/*
	 * The decision is only as durable as the coordinator's commit record: a
	 * COMMIT that returned under synchronous_commit = off and then lost in a
	 * crash would leave participants that already ran COMMIT PREPARED while
	 * the resolver presumes abort.  So the commit of this transaction is
	 * flushed whatever synchronous_commit says (xact.c: forceSyncCommit).
	 * Waiting for a synchronous standby still follows synchronous_commit.
	 * PREPARE TRANSACTION forgets the flag, but COMMIT PREPARED always
	 * flushes.
	 */
	ForceSyncCommit();
	PG_RETURN_VOID();
}

/*
 * tpc_decisions_guard(): BEFORE INSERT OR UPDATE row trigger on
 * consistency.tpc_decisions.
 *
 * No application role may write the decision log (tpc_log_decision writes
 * it as the table's owner), but the owner and superusers still can, and a
 * restore does.  Every row written, by anyone, is checked:
 *	 - its gid was made by tpc_gid() (YC401);
 *	 - coordinator_sysid, coordinator_xid and (1.1) coordinator_nonce are the
 *	   gid's (YC402): the resolver finds siblings by these columns;
 *	 - a gid of this cluster and this database names the very transaction
 *	   writing the row (YC402): a decision for one of this database's
 *	   coordinator transactions can only come from that transaction, so not
 *	   even the owner can log "abort" for another coordinator's gid before it
 *	   does, or "commit" for a transaction that never decided.  Rows of other
 *	   clusters or databases (a restore) are accepted when consistent: the
 *	   resolver never reads them as this database's decisions.
 * A writer that is neither the owner nor a superuser (a role granted INSERT
 * by hand, or consistency_user on a database still at 1.0) keeps 1.0's
 * rule: only rows naming its own transaction, in this cluster and database.
 * Runs no SQL.
 */
Datum
consistency_tpc_decisions_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	int			col_gid;
	int			col_sysid;
	int			col_xid;
	int			col_nonce;
	bool		isnull;
	Datum		d;
	char	   *gid;
	TpcGid		g;
	FullTransactionId mine;
	bool		ok;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tpc_decisions_guard() must be fired as a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger"),
				 errhint("It guards consistency.tpc_decisions, where the extension installs it; it is not for other tables.")));
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	desc = RelationGetDescr(td->tg_relation);
	col_gid = SPI_fnumber(desc, "gid");
	col_sysid = SPI_fnumber(desc, "coordinator_sysid");
	col_xid = SPI_fnumber(desc, "coordinator_xid");
	col_nonce = SPI_fnumber(desc, "coordinator_nonce");	/* absent at 1.0 */
	if (col_gid <= 0 || col_sysid <= 0 || col_xid <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tpc_decisions_guard() fired on table \"%s\", which lacks the decision log's columns",
						RelationGetRelationName(td->tg_relation)),
				 errhint("It guards consistency.tpc_decisions, where the extension installs it; it is not for other tables.")));

	d = heap_getattr(tup, col_gid, desc, &isnull);
	gid = isnull ? pstrdup("") : TextDatumGetCString(d);
	if (!tpc_parse_gid(gid, &g))
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TPC_GID_UNRECOGNISED),
				 errmsg("gid \"%s\" was not made by consistency.tpc_gid()", gid),
				 errdetail("The decision log only holds decisions for gids that name their coordinator transaction."),
				 errhint("Log decisions with consistency.tpc_log_decision() in the coordinator transaction.")));

	d = heap_getattr(tup, col_sysid, desc, &isnull);
	ok = !isnull && (uint64) DatumGetInt64(d) == g.sysid;
	d = heap_getattr(tup, col_xid, desc, &isnull);
	ok = ok && !isnull && FullTransactionIdEquals(DatumGetFullTransactionId(d), g.fxid);
	if (ok && col_nonce > 0)
	{
		d = heap_getattr(tup, col_nonce, desc, &isnull);
		if (g.has_nonce && isnull)
		{
			/*
			 * Written where the table had no nonce column yet (a database
			 * still at 1.0 on this library) and now restored or copied into
			 * one that has: the gid carries the nonce, so the row gets it.
			 */
			Datum		repl_val = CStringGetTextDatum(g.nonce);
			bool		repl_null = false;

			tup = heap_modify_tuple_by_cols(tup, desc, 1, &col_nonce, &repl_val, &repl_null);
		}
		else
			ok = g.has_nonce ? (!isnull && strcmp(TextDatumGetCString(d), g.nonce) == 0) : isnull;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TPC_WRONG_TRANSACTION),
				 errmsg("the coordinator columns of the decision for gid \"%s\" do not match the gid", gid),
				 errdetail("coordinator_sysid, coordinator_xid and coordinator_nonce must be the gid's system identifier, transaction id and nonce (NULL for a gid without one)."),
				 errhint("Log decisions with consistency.tpc_log_decision() in the coordinator transaction.")));

	mine = GetTopFullTransactionId();	/* the row's insert needs one anyway */
	if ((g.sysid == GetSystemIdentifier() && g.dboid == MyDatabaseId &&
		 !FullTransactionIdEquals(g.fxid, mine)) ||
		(!superuser() && !object_ownercheck(RelationRelationId, RelationGetRelid(td->tg_relation), GetUserId()) &&
		 (g.sysid != GetSystemIdentifier() || g.dboid != MyDatabaseId)))
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TPC_WRONG_TRANSACTION),
				 errmsg("a decision for gid \"%s\" may only be written by the coordinator transaction it names", gid),
				 errdetail("The gid names transaction " UINT64_FORMAT " of this database; this is transaction " UINT64_FORMAT ".",
						   U64FromFullTransactionId(g.fxid), U64FromFullTransactionId(mine)),
				 errhint("Log decisions with consistency.tpc_log_decision() in the coordinator transaction.")));
	return PointerGetDatum(tup);
}

/* ----------------------------------------------------------------
 * Listing and verdicts (callers are connected to SPI)
 * ----------------------------------------------------------------
 */

static char *
spi_cstring(HeapTuple tup, TupleDesc desc, int col)
{
	char	   *s = SPI_getvalue(tup, desc, col);

	return s ? s : pstrdup("");
}

/*
 * The prepared transactions of the whole cluster, oldest first, optionally
 * only the one named gid, prepared at least min_age ago.  Entries are
 * allocated in mcxt (a context that outlives SPI_finish).
 */
List *
tpc_list_prepared(const char *gid, const Interval *min_age, MemoryContext mcxt)
{
	Datum		v[2];
	char		n[2] = {' ', ' '};
	List	   *result = NIL;
	int			rc;
	uint64		i;

	v[0] = gid ? CStringGetTextDatum(gid) : (Datum) 0;
	n[0] = gid ? ' ' : 'n';
	v[1] = IntervalPGetDatum(min_age);
	rc = SPI_execute_plan(get_plan(STMT_LIST), v, n, true, 0);
	check_spi(rc, STMT_LIST);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(mcxt);
		TpcPrepared *p = palloc0(sizeof(TpcPrepared));
		bool		isnull;

		p->gid = spi_cstring(tup, desc, 1);
		p->xid = DatumGetTransactionId(SPI_getbinval(tup, desc, 2, &isnull));
		p->dboid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		p->database = spi_cstring(tup, desc, 4);
		p->ownerid = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		p->owner = spi_cstring(tup, desc, 6);
		p->prepared_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 7, &isnull));
		result = lappend(result, p);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/* pg_xact_status(fxid): "committed", "aborted", "in progress", or NULL if too old. */
static const char *
xact_status(FullTransactionId fxid)
{
	LOCAL_FCINFO(fc, 1);
	Datum		d;

	InitFunctionCallInfoData(*fc, NULL, 1, InvalidOid, NULL, NULL);
	fc->args[0].value = FullTransactionIdGetDatum(fxid);
	fc->args[0].isnull = false;
	d = pg_xact_status(fc);
	if (fc->isnull)
		return NULL;
	return text_to_cstring(DatumGetTextPP(d));
}

const char *
tpc_verdict_name(TpcVerdict v)
{
	switch (v)
	{
		case TPC_VERDICT_COMMIT:
			return "commit";
		case TPC_VERDICT_ROLLBACK:
			return "rollback";
		case TPC_VERDICT_IN_PROGRESS:
			return "in_progress";
		case TPC_VERDICT_UNKNOWN:
			break;
	}
	return "unknown";
}

/*
 * What the resolver does with prepared transaction p, and why (a sentence
 * in *evidence).  The caller is connected to SPI.
 */
TpcVerdict
tpc_decide(const TpcPrepared *p, char **evidence)
{
	TpcGid		g;
	uint64		me = GetSystemIdentifier();
	const char *status;
	uint64		fx;
	Datum		v[3];
	int			rc;
	char	   *decision = NULL;
	char	   *decided_at = NULL;
	char	   *decided_gid = NULL;
	uint64		i;
	ConsistencySavedUser saved;

	if (!tpc_parse_gid(p->gid, &g))
	{
		*evidence = psprintf("gid not made by consistency.tpc_gid(): its coordinator and decision are unknown, so only an explicit action with force => true resolves it");
		return TPC_VERDICT_UNKNOWN;
	}
	fx = U64FromFullTransactionId(g.fxid);
	if (g.sysid != me)
	{
		*evidence = psprintf("coordinator is transaction " UINT64_FORMAT " of another cluster (system identifier " UINT64_FORMAT "); its decision log is there: resolve with pg_consistency --decisions-from",
							 fx, g.sysid);
		return TPC_VERDICT_UNKNOWN;
	}
	if (g.dboid != MyDatabaseId)
	{
		char	   *dbname = get_database_name(g.dboid);

		*evidence = psprintf("coordinator is transaction " UINT64_FORMAT " of database %s; its decision log is there: look from that database",
							 fx, dbname ? quote_identifier(dbname) : psprintf("with oid %u (dropped)", g.dboid));
		return TPC_VERDICT_UNKNOWN;
	}
	if (XidFromFullTransactionId(g.fxid) == p->xid)
	{
		*evidence = psprintf("gid names the prepared transaction itself as its coordinator: tpc_gid() was called in the participant's transaction, so no decision can exist");
		return TPC_VERDICT_UNKNOWN;
	}
	if (FullTransactionIdFollowsOrEquals(g.fxid, ReadNextFullTransactionId()))
	{
		*evidence = psprintf("coordinator transaction " UINT64_FORMAT " is in the future of this cluster (restored from a backup?): nothing is known about it", fx);
		return TPC_VERDICT_UNKNOWN;
	}

	/* 1. the coordinator's status, before the decision log is read */
	status = xact_status(g.fxid);
	if (status != NULL && strcmp(status, "in progress") == 0)
	{
		*evidence = psprintf("coordinator transaction " UINT64_FORMAT " is still running: it may still log its decision and finish phase 2", fx);
		return TPC_VERDICT_IN_PROGRESS;
	}

	/* 2. the decision log, with a snapshot taken after step 1 */
	v[0] = CStringGetTextDatum(p->gid);
	v[1] = Int64GetDatum((int64) g.sysid);
	v[2] = FullTransactionIdGetDatum(g.fxid);
	consistency_become_owner(tpc_log_relid("tpc_decisions"), &saved);
	rc = SPI_execute_snapshot(get_plan(STMT_DECISION), v, NULL,
							  GetLatestSnapshot(), InvalidSnapshot, true, false, 0);
	consistency_restore_user(&saved);
	check_spi(rc, STMT_DECISION);
	/* the gid's own decision first; a sibling's only under the same nonce */
	for (i = 0; i < SPI_processed && decision == NULL; i++)
	{
		char	   *row_gid = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);

		if (!decision_applies(&g, p->gid, row_gid))
			continue;
		decision = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		decided_at = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		decided_gid = row_gid;
	}
	if (decision != NULL)
	{
		bool		commit = strcmp(decision, "commit") == 0;

		*evidence = psprintf("decision %s logged at %s%s%s by coordinator transaction " UINT64_FORMAT " (%s)",
							 decision, decided_at,
							 strcmp(decided_gid, p->gid) == 0 ? "" : " for sibling gid ",
							 strcmp(decided_gid, p->gid) == 0 ? "" : decided_gid,
							 fx, status ? status : "status no longer known");
		return commit ? TPC_VERDICT_COMMIT : TPC_VERDICT_ROLLBACK;
	}
	if (status != NULL && strcmp(status, "committed") == 0)
	{
		*evidence = psprintf("coordinator transaction " UINT64_FORMAT " committed without logging a decision: presumed abort", fx);
		return TPC_VERDICT_ROLLBACK;
	}
	if (status != NULL)
	{
		*evidence = psprintf("coordinator transaction " UINT64_FORMAT " aborted (or its server crashed) before logging a commit decision: presumed abort", fx);
		return TPC_VERDICT_ROLLBACK;
	}
	/* the status is too old to be known, and there is no decision */
	if (GetCurrentTimestamp() - p->prepared_at >= (int64) tpc_grace_period * USECS_PER_SEC)
	{
		*evidence = psprintf("status of coordinator transaction " UINT64_FORMAT " is too old to be known, no decision is logged and it was prepared more than consistency.tpc_grace_period (%ds) ago: presumed abort",
							 fx, tpc_grace_period);
		return TPC_VERDICT_ROLLBACK;
	}
	*evidence = psprintf("status of coordinator transaction " UINT64_FORMAT " is too old to be known and no decision is logged: rollback once it is older than consistency.tpc_grace_period (%ds)",
						 fx, tpc_grace_period);
	return TPC_VERDICT_UNKNOWN;
}

/* ----------------------------------------------------------------
 * prepared_xacts()
 * ----------------------------------------------------------------
 */

/* What the listing gathers about one prepared transaction from the lock table. */
typedef struct XactLocks
{
	int			lock_count;
	List	   *relations;		/* of LOCKTAG *, relation locks */
	List	   *blocked;		/* of int pids */
} XactLocks;

typedef struct XidEntry
{
	TransactionId xid;			/* hash key */
	int			index;
} XidEntry;

/*
 * A prepared transaction's dummy PGPROC, as the lock table shows it: its
 * virtual transaction id.  That is the preparing session's (PostgreSQL 15.2
 * and later keep it, for TwoPhaseGetXidByVirtualXID) or, after a restart,
 * -1/xid; the pid is 0 either way.
 */
typedef struct VxidEntry
{
	ProcNumber	procnumber;		/* hash key, with lxid */
	LocalTransactionId lxid;
	int			index;
} VxidEntry;

/* A lock held by prepared transactions: who holds it, in which modes. */
typedef struct HeldEntry
{
	LOCKTAG		tag;			/* hash key */
	List	   *holders;		/* of int index into the XactLocks array */
	List	   *masks;			/* of int holdMask, parallel to holders */
} HeldEntry;

static int
count_modes(LOCKMASK mask)
{
	int			n = 0;

	for (; mask; mask &= mask - 1)
		n++;
	return n;
}

static int
cmp_text(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static int
cmp_int(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

/* Attribute the lock table to the prepared transactions in list. */
static XactLocks *
gather_locks(List *list)
{
	int			n = list_length(list);
	XactLocks  *xl = palloc0(sizeof(XactLocks) * Max(n, 1));
	HASHCTL		ctl;
	HTAB	   *xids;
	HTAB	   *vxids;
	HTAB	   *held;
	LockData   *ld;
	ListCell   *lc;
	int			i;

	if (n == 0)
		return xl;
	ctl.keysize = sizeof(TransactionId);
	ctl.entrysize = sizeof(XidEntry);
	ctl.hcxt = CurrentMemoryContext;
	xids = hash_create("prepared xids", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	i = 0;
	foreach(lc, list)
	{
		TpcPrepared *p = lfirst(lc);
		bool		found;
		XidEntry   *e = hash_search(xids, &p->xid, HASH_ENTER, &found);

		e->index = i++;
	}
	ctl.keysize = sizeof(LOCKTAG);
	ctl.entrysize = sizeof(HeldEntry);
	held = hash_create("locks held by prepared xacts", 1024, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	ctl.keysize = offsetof(VxidEntry, index);
	ctl.entrysize = sizeof(VxidEntry);
	vxids = hash_create("prepared vxids", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	ld = GetLockStatusData();

	/*
	 * Which dummy proc is which prepared transaction: the one holding
	 * ExclusiveLock on the transaction's own xid.
	 */
	for (i = 0; i < ld->nelements; i++)
	{
		LockInstanceData *li = &ld->locks[i];
		TransactionId xid = (TransactionId) li->locktag.locktag_field1;
		XidEntry   *e;
		VxidEntry	key;
		VxidEntry  *ve;
		bool		found;

		if (li->pid != 0 || li->locktag.locktag_type != LOCKTAG_TRANSACTION ||
			(li->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0)
			continue;
		e = hash_search(xids, &xid, HASH_FIND, NULL);
		if (e == NULL)
			continue;
		memset(&key, 0, sizeof(key));
		key.procnumber = LOCKINSTANCE_PROCNUMBER(li);
		key.lxid = LOCKINSTANCE_LXID(li);
		ve = hash_search(vxids, &key, HASH_ENTER, &found);
		ve->index = e->index;
	}

	/* what each prepared transaction holds */
	for (i = 0; i < ld->nelements; i++)
	{
		LockInstanceData *li = &ld->locks[i];
		VxidEntry	key;
		VxidEntry  *ve;
		HeldEntry  *h;
		bool		found;

		if (li->pid != 0 || li->holdMask == 0)
			continue;
		memset(&key, 0, sizeof(key));
		key.procnumber = LOCKINSTANCE_PROCNUMBER(li);
		key.lxid = LOCKINSTANCE_LXID(li);
		ve = hash_search(vxids, &key, HASH_FIND, NULL);
		if (ve == NULL)
			continue;
		xl[ve->index].lock_count += count_modes(li->holdMask);
		if (li->locktag.locktag_type == LOCKTAG_RELATION)
			xl[ve->index].relations = lappend(xl[ve->index].relations, &li->locktag);
		h = hash_search(held, &li->locktag, HASH_ENTER, &found);
		if (!found)
			h->holders = h->masks = NIL;
		h->holders = lappend_int(h->holders, ve->index);
		h->masks = lappend_int(h->masks, li->holdMask);
	}

	/* whom they block: waiters asking for a mode that conflicts with one held */
	for (i = 0; i < ld->nelements; i++)
	{
		LockInstanceData *li = &ld->locks[i];
		HeldEntry  *h;
		LockMethod	method;
		ListCell   *hc;
		ListCell   *mc;

		if (li->waitLockMode == NoLock || li->pid == 0)
			continue;
		h = hash_search(held, &li->locktag, HASH_FIND, NULL);
		if (h == NULL)
			continue;
		method = GetLockTagsMethodTable(&li->locktag);
		forboth(hc, h->holders, mc, h->masks)
		{
			int			idx = lfirst_int(hc);

			if ((method->conflictTab[li->waitLockMode] & lfirst_int(mc)) != 0 &&
				!list_member_int(xl[idx].blocked, li->pid))
				xl[idx].blocked = lappend_int(xl[idx].blocked, li->pid);
		}
	}
	hash_destroy(xids);
	hash_destroy(vxids);
	hash_destroy(held);
	return xl;
}

/* Relation names: schema-qualified in this database, "database/oid" elsewhere. */
static Datum
relations_array(const TpcPrepared *p, List *tags)
{
	int			n = list_length(tags);
	Datum	   *names = palloc(sizeof(Datum) * Max(n, 1));
	char	  **strs = palloc(sizeof(char *) * Max(n, 1));
	int			k = 0;
	int			i;
	ListCell   *lc;

	foreach(lc, tags)
	{
		LOCKTAG    *t = lfirst(lc);
		Oid			db = t->locktag_field1;
		Oid			rel = t->locktag_field2;
		char	   *name = NULL;

		if (db == MyDatabaseId || db == InvalidOid)
		{
			char	   *relname = get_rel_name(rel);

			if (relname != NULL)
				name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
												  relname);
		}
		if (name == NULL)
		{
			char	   *dbname = (db == p->dboid) ? p->database : get_database_name(db);

			name = psprintf("%s/%u", dbname ? dbname : "?", rel);
		}
		strs[k++] = name;
	}
	qsort(strs, k, sizeof(char *), cmp_text);
	n = 0;
	for (i = 0; i < k; i++)
		if (i == 0 || strcmp(strs[i], strs[i - 1]) != 0)
			names[n++] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
pids_array(List *pids)
{
	int			n = list_length(pids);
	int		   *v = palloc(sizeof(int) * Max(n, 1));
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, pids)
		v[i++] = lfirst_int(lc);
	qsort(v, n, sizeof(int), cmp_int);
	for (i = 0; i < n; i++)
		d[i] = Int32GetDatum(v[i]);
	return PointerGetDatum(construct_array(d, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

/*
 * prepared_xacts(min_age interval DEFAULT '0') -> TABLE(gid, xid, database,
 *	 owner, prepared_at, age, xid_age, pins_xmin_horizon, lock_count,
 *	 relations, blocked_pids, verdict, evidence)
 */
Datum
consistency_prepared_xacts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Interval   *min_age = tpc_interval_arg(fcinfo, 0, "min_age");
	List	   *list;
	XactLocks  *xl;
	TransactionId horizon;
	TimestampTz now = GetCurrentStatementStartTimestamp();
	ListCell   *lc;
	int			i;

	MemoryContext mcxt = CurrentMemoryContext;

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	list = tpc_list_prepared(NULL, min_age, mcxt);
	xl = gather_locks(list);
	horizon = GetOldestNonRemovableTransactionId(NULL);

	i = 0;
	foreach(lc, list)
	{
		TpcPrepared *p = lfirst(lc);
		Datum		values[13];
		bool		nulls[13] = {0};
		char	   *evidence;
		TpcVerdict	v = tpc_decide(p, &evidence);

		values[0] = CStringGetTextDatum(p->gid);
		values[1] = TransactionIdGetDatum(p->xid);
		values[2] = DirectFunctionCall1(namein, CStringGetDatum(p->database));
		values[3] = DirectFunctionCall1(namein, CStringGetDatum(p->owner));
		values[4] = TimestampTzGetDatum(p->prepared_at);
		values[5] = DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(now),
										TimestampTzGetDatum(p->prepared_at));
		values[6] = DirectFunctionCall1(xid_age, TransactionIdGetDatum(p->xid));
		values[7] = BoolGetDatum(TransactionIdPrecedesOrEquals(p->xid, horizon));
		values[8] = Int32GetDatum(xl[i].lock_count);
		values[9] = relations_array(p, xl[i].relations);
		values[10] = pids_array(xl[i].blocked);
		values[11] = CStringGetTextDatum(tpc_verdict_name(v));
		values[12] = CStringGetTextDatum(evidence);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		i++;
	}
	SPI_finish();
	PG_RETURN_NULL();
}

/*
 * tpc_prune_decisions(min_age interval) -> bigint
 *
 * Deletes the decisions logged at least min_age ago, except those of a
 * coordinator transaction that still has a participant prepared in this
 * cluster; returns how many.  Participants in other clusters are not
 * visible here: choose min_age longer than any of them can stay prepared
 * (a commit decision deleted too early turns into presumed abort).  Runs as
 * the decision log's owner; consistency_admin has no DELETE on it.
 */
Datum
consistency_tpc_prune_decisions(PG_FUNCTION_ARGS)
{
	Interval   *min_age = tpc_interval_arg(fcinfo, 0, "min_age");
	Datum		v[1];
	int			rc;
	uint64		n;
	ConsistencySavedUser saved;

	v[0] = IntervalPGetDatum(min_age);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	consistency_become_owner(tpc_log_relid("tpc_decisions"), &saved);
	rc = SPI_execute_plan(get_plan(STMT_PRUNE), v, NULL, false, 0);
	check_spi(rc, STMT_PRUNE);
	n = SPI_processed;
	consistency_restore_user(&saved);
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}

void
consistency_twophase_init(void)
{
	DefineCustomIntVariable("consistency.tpc_grace_period",
							"How long a prepared transaction whose coordinator status is no longer known waits before the resolver rolls it back.",
							"Applies only to gids made by consistency.tpc_gid() with no logged decision.",
							&tpc_grace_period,
							300, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	consistency_twophase_resolve_init();
}
