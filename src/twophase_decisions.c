/*-------------------------------------------------------------------------
 *
 * twophase_decisions.c
 *	  In-doubt two-phase commit, the coordinator's side: the gids it names
 *	  its participants' prepared transactions with (tpc_gid()), and its
 *	  decision log (tpc_log_decision(), the log's guard trigger and
 *	  tpc_prune_decisions()).  twophase_indoubt.c reads the log to decide
 *	  what happens to a prepared transaction; twophase_resolve.c acts on it.
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
 * IDENTIFICATION
 *	  src/twophase_decisions.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "replication/syncrep.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
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
PG_FUNCTION_INFO_V1(consistency_tpc_prune_decisions);

/* The last transaction whose xid tpc_gid() made durable, and its nonce. */
static FullTransactionId durable_fxid = {0};
static char durable_nonce[TPC_NONCE_CHARS + 1];

/* Prefixes of the gids: format 1 (1.0, no nonce), format 2 (tpc_gid() now). */
#define GID_PREFIX_V1 "cy1:"
#define GID_PREFIX "cy2:"

typedef enum TpcLogStmt
{
	STMT_CONFLICT,
	STMT_INSERT,
	STMT_INSERT_NONCE,
	STMT_PRUNE,
	NUM_STMTS
} TpcLogStmt;

static ConsistencyStmt stmts[NUM_STMTS] = {
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

	/*
	 * tpc_gid() names a transaction, whose xid is normal in every epoch: the
	 * 32-bit xid of 2^32 + 1, say, is BootstrapTransactionId, which
	 * pg_xact_status() calls committed whatever the epoch.
	 */
	if (!TransactionIdIsNormal(XidFromFullTransactionId(FullTransactionIdFromU64(fxid))))
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
		/* as a commit waits: interrupts held, a cancel ends the wait with a WARNING */
		HOLD_INTERRUPTS();
		SyncRepWaitForLSN(lsn, false);
		RESUME_INTERRUPTS();
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
bool
tpc_decision_applies(const TpcGid *g, const char *gid, const char *row_gid)
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
	rc = SPI_execute_snapshot(consistency_stmt_plan(&stmts[STMT_CONFLICT]), v, NULL, snap, InvalidSnapshot,
							  false, false, 0);
	consistency_stmt_check(rc, &stmts[STMT_CONFLICT]);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *other = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		char	   *otherdec = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		if (!tpc_decision_applies(g, gid, other))
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
	TpcLogStmt		stmt;
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
	 * It names this transaction; tpc_gid() must also have made it, here:
	 * then the xid was made durable and the nonce is the one tpc_gid() drew
	 * for this transaction.  A gid spelled by hand with this xid (any nonce,
	 * or format 1, which tpc_gid() no longer makes) is not the coordinator's
	 * name for anything, and its xid may not survive a crash.
	 */
	if (!g.has_nonce || !FullTransactionIdEquals(durable_fxid, mine) ||
		strcmp(g.nonce, durable_nonce) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TPC_GID_UNRECOGNISED),
				 errmsg("gid \"%s\" was not made by consistency.tpc_gid() in this transaction", gid),
				 FullTransactionIdEquals(durable_fxid, mine) ?
				 errdetail("It names this transaction, but is not one of the gids consistency.tpc_gid() made in it: their nonce differs.") :
				 errdetail("It names this transaction, but consistency.tpc_gid() was not called in it."),
				 errhint("Name the participants' prepared transactions with consistency.tpc_gid() in the coordinator transaction, and log their decisions with the gids it returned.")));

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
	rc = SPI_execute_plan(consistency_stmt_plan(&stmts[stmt]), v, n, false, 0);
	consistency_stmt_check(rc, &stmts[stmt]);

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
	rc = SPI_execute_plan(consistency_stmt_plan(&stmts[STMT_PRUNE]), v, NULL, false, 0);
	consistency_stmt_check(rc, &stmts[STMT_PRUNE]);
	n = SPI_processed;
	consistency_restore_user(&saved);
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}
