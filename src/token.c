/*-------------------------------------------------------------------------
 *
 * token.c
 *	  Session LSN tokens: the token format, its strict parser, minting on a
 *	  primary (write_token), merging (token_max) and the non-blocking
 *	  verdict a router asks a server for (token_status).
 *
 * A token is text, "v1:<system identifier>:<timeline>:<LSN>", for example
 * "v1:7301234567890123456:1:0/3000148".  It names the end of the commit
 * record of the session's last write transaction (token_report.c keeps it),
 * the timeline that commit was written on, and the cluster it belongs to.
 * Only the canonical spelling is accepted: decimal without leading zeros,
 * the LSN exactly as pg_lsn prints it (upper-case hex, no leading zeros).
 *
 * The verdict compares the token with this server's position: the replay
 * position on a standby, the insert position on a primary.  A token on
 * another timeline is judged with this server's timeline history: a write on
 * an ancestor timeline is here if it ended at or before the point where that
 * timeline was left; past it, the write was lost in a failover (diverged).
 * The history of the current timeline is read once and cached.  A token on a
 * later timeline, on a standby that has not followed the promotion yet, is
 * judged with that timeline's history if the standby has fetched it; without
 * it the standby cannot tell where that timeline branched off, and says
 * behind (diverged only if it is already at or past the token's position).
 *
 * IDENTIFICATION
 *	  src/token.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/timeline.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "consistency.h"
#include "stats.h"
#include "token.h"

PG_FUNCTION_INFO_V1(consistency_write_token);
PG_FUNCTION_INFO_V1(consistency_token_max);
PG_FUNCTION_INFO_V1(consistency_token_status);

/* Cached timeline history (newest entry first) of one timeline. */
static TimeLineID history_tli = 0;
static List *history = NIL;

/*
 * Parse an unsigned decimal number of at most maxdigits digits, without a
 * leading zero, ending at 'stop'.  Returns the position after it, or NULL.
 */
static const char *
parse_decimal(const char *p, char stop, int maxdigits, uint64 max, uint64 *out)
{
	uint64		v = 0;
	int			n = 0;

	if (*p == '0')
		return NULL;
	while (*p >= '0' && *p <= '9')
	{
		int			d = *p - '0';

		if (++n > maxdigits || v > (max - d) / 10)
			return NULL;
		v = v * 10 + d;
		p++;
	}
	if (n == 0 || *p != stop)
		return NULL;
	*out = v;
	return p;
}

/* Parse 1-8 upper-case hex digits, no leading zero unless the number is 0. */
static const char *
parse_hex32(const char *p, char stop, uint32 *out)
{
	uint32		v = 0;
	int			n = 0;

	if (p[0] == '0' && p[1] != stop)
		return NULL;
	for (;; p++)
	{
		int			d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		if (++n > 8)
			return NULL;
		v = (v << 4) | d;
	}
	if (n == 0 || *p != stop)
		return NULL;
	*out = v;
	return p;
}

/*
 * Parse a token.  On failure returns false and sets *why to a sentence
 * naming the first field that is wrong; never raises an error, so that it
 * can be used in GUC check hooks.
 */
bool
consistency_token_parse(const char *str, ConsistencyToken *tok, const char **why)
{
	const char *p = str;
	uint64		sysid;
	uint64		tli;
	uint32		hi,
				lo;

	if (strlen(str) > CONSISTENCY_TOKEN_MAXLEN)
	{
		*why = "A token is at most 52 bytes long.";
		return false;
	}
	if (strncmp(p, "v1:", 3) != 0)
	{
		*why = "A token starts with the version \"v1:\".";
		return false;
	}
	p += 3;
	if ((p = parse_decimal(p, ':', 20, PG_UINT64_MAX, &sysid)) == NULL)
	{
		*why = "The second field must be the system identifier: a positive decimal number without leading zeros.";
		return false;
	}
	p++;
	if ((p = parse_decimal(p, ':', 10, PG_UINT32_MAX, &tli)) == NULL)
	{
		*why = "The third field must be the timeline: a decimal number from 1 to 4294967295 without leading zeros.";
		return false;
	}
	p++;
	if ((p = parse_hex32(p, '/', &hi)) == NULL ||
		(p = parse_hex32(p + 1, '\0', &lo)) == NULL)
	{
		*why = "The fourth field must be a WAL position as pg_lsn prints it, such as 0/3000148.";
		return false;
	}
	tok->sysid = sysid;
	tok->tli = (TimeLineID) tli;
	tok->lsn = ((uint64) hi << 32) | lo;
	return true;
}

void
consistency_token_parse_or_error(const char *str, ConsistencyToken *tok)
{
	const char *why;
	int			len;
	int			shown;

	if (consistency_token_parse(str, tok, &why))
		return;

	/*
	 * Quote at most a token's length of it, cut on a character boundary: a
	 * cut inside a multibyte character would make the message fail to
	 * convert to the client's encoding (22021) instead of being this error.
	 */
	len = strlen(str);
	shown = len > CONSISTENCY_TOKEN_MAXLEN ?
		pg_mbcliplen(str, len, CONSISTENCY_TOKEN_MAXLEN) : len;
	ereport(ERROR,
			(errcode(ERRCODE_CONSISTENCY_TOKEN_MALFORMED),
			 errmsg("malformed consistency token: \"%.*s%s\"",
					shown, str, shown < len ? "..." : ""),
			 errdetail("%s", why),
			 errhint("Pass the token exactly as consistency.write_token() or the consistency.last_commit_token parameter gave it.")));
}

/* Write v in upper-case hex without leading zeros (as %X), returning the end. */
static char *
format_hex32(char *p, uint32 v)
{
	char		digits[8];
	int			n = 0;

	do
	{
		digits[n++] = "0123456789ABCDEF"[v & 0xF];
		v >>= 4;
	} while (v != 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

/*
 * Format tok into buf, which has room for CONSISTENCY_TOKEN_MAXLEN + 1
 * bytes, as "v1:" UINT64_FORMAT ":%u:%X/%X" would; returns the length.  It
 * runs at every write commit of a session that loaded the library (the
 * reported parameter, token_report.c), so it writes the digits itself, and
 * keeps "v1:<sysid>:<timeline>:", which a session nearly always repeats:
 * snprintf() took 3.3k instructions of a 155k-instruction update
 * transaction (callgrind), this takes a few hundred.
 */
int
consistency_token_format_buf(const ConsistencyToken *tok, char *buf)
{
	static uint64 prefix_sysid = 0;
	static TimeLineID prefix_tli = 0;
	static char prefix[CONSISTENCY_TOKEN_MAXLEN];
	static int	prefix_len = 0;
	char	   *p;

	if (prefix_len == 0 || tok->sysid != prefix_sysid || tok->tli != prefix_tli)
	{
		p = prefix;
		memcpy(p, "v1:", 3);
		p += 3;
		p += pg_ulltoa_n(tok->sysid, p);
		*p++ = ':';
		p += pg_ultoa_n(tok->tli, p);
		*p++ = ':';
		prefix_len = p - prefix;
		prefix_sysid = tok->sysid;
		prefix_tli = tok->tli;
	}
	memcpy(buf, prefix, prefix_len);
	p = format_hex32(buf + prefix_len, (uint32) (tok->lsn >> 32));
	*p++ = '/';
	p = format_hex32(p, (uint32) tok->lsn);
	*p = '\0';
	Assert(p - buf <= CONSISTENCY_TOKEN_MAXLEN);
	return (int) (p - buf);
}

char *
consistency_token_format(const ConsistencyToken *tok)
{
	char	   *buf = palloc(CONSISTENCY_TOKEN_MAXLEN + 1);

	(void) consistency_token_format_buf(tok, buf);
	return buf;
}

/* The cached history of timeline tli, newest entry first. */
static List *
history_of(TimeLineID tli)
{
	if (history_tli != tli || history == NIL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		List	   *fresh = readTimeLineHistory(tli);

		MemoryContextSwitchTo(old);
		list_free_deep(history);
		history = fresh;
		history_tli = tli;
	}
	return history;
}

static TimeLineHistoryEntry *
history_entry(List *hist, TimeLineID tli)
{
	ListCell   *lc;

	foreach(lc, hist)
	{
		TimeLineHistoryEntry *e = (TimeLineHistoryEntry *) lfirst(lc);

		if (e->tli == tli)
			return e;
	}
	return NULL;
}

/*
 * Decide what this server can say about a token, without waiting: one read
 * of the replay (or insert) position, and the timeline history when the
 * token's timeline is not the current one.
 */
TokenStatus
consistency_token_evaluate(const ConsistencyToken *tok, TokenPosition *pos)
{
	TimeLineHistoryEntry *e;

	if (tok->sysid != GetSystemIdentifier())
		return TOKEN_WRONG_CLUSTER;

	pos->in_recovery = RecoveryInProgress();
	if (pos->in_recovery)
		pos->lsn = GetXLogReplayRecPtr(&pos->tli);
	else
	{
		pos->lsn = GetXLogInsertRecPtr();
		pos->tli = GetWALInsertionTimeLine();
	}

	/* A session that never wrote: nothing to wait for. */
	if (tok->lsn == InvalidXLogRecPtr)
		return pos->in_recovery ? TOKEN_READY : TOKEN_PRIMARY;

	if (tok->tli == pos->tli)
	{
		if (tok->lsn <= pos->lsn)
			return pos->in_recovery ? TOKEN_READY : TOKEN_PRIMARY;
		/* a primary that never wrote this far on its own timeline never will */
		return pos->in_recovery ? TOKEN_BEHIND : TOKEN_DIVERGED;
	}

	e = history_entry(history_of(pos->tli), tok->tli);
	if (e != NULL)
	{
		/* an ancestor timeline: was the write made before we left it? */
		if (!XLogRecPtrIsInvalid(e->end) && tok->lsn > e->end)
			return TOKEN_DIVERGED;
		if (tok->lsn > pos->lsn)
			return pos->in_recovery ? TOKEN_BEHIND : TOKEN_DIVERGED;
		return pos->in_recovery ? TOKEN_READY : TOKEN_PRIMARY;
	}

	/*
	 * Not in our history.  A primary never changes timeline, and a token of
	 * an older timeline that is not our ancestor is on another branch.
	 */
	if (!pos->in_recovery || tok->tli < pos->tli)
		return TOKEN_DIVERGED;

	/*
	 * A later timeline, on a standby that has not followed the promotion that
	 * made it (yet).  It will, and replay the token, if that timeline
	 * branched off ours at or after our position.  Its history file says
	 * where; the walreceiver fetches it when it connects to a server on that
	 * timeline.
	 */
	if (existsTimeLineHistory(tok->tli))
	{
		List	   *newer = readTimeLineHistory(tok->tli);
		bool		reachable;

		e = history_entry(newer, pos->tli);
		reachable = (e != NULL && (XLogRecPtrIsInvalid(e->end) || pos->lsn <= e->end));
		list_free_deep(newer);
		return reachable ? TOKEN_BEHIND : TOKEN_DIVERGED;
	}

	/*
	 * Without the history we cannot tell where it branched off, only that it
	 * was before the token: a write on a timeline ends after the timeline
	 * began, and it began where it left our timeline or later.  So a standby
	 * already at or past the token's position cannot reach it; one before it
	 * may, once it has the history: behind until then.
	 */
	return pos->lsn >= tok->lsn ? TOKEN_DIVERGED : TOKEN_BEHIND;
}

const char *
consistency_token_status_name(TokenStatus status)
{
	switch (status)
	{
		case TOKEN_READY:
			return "ready";
		case TOKEN_BEHIND:
			return "behind";
		case TOKEN_WRONG_CLUSTER:
			return "wrong_cluster";
		case TOKEN_DIVERGED:
			return "diverged";
		case TOKEN_PRIMARY:
			return "primary";
	}
	elog(ERROR, "unexpected token status %d", (int) status);
	return NULL;				/* keep compiler quiet */
}

/*
 * Raise the error for a token this server can never satisfy: another
 * cluster's, or a write that is not in this server's history.
 */
void
consistency_token_raise_unusable(const ConsistencyToken *tok, TokenStatus status,
								 const TokenPosition *pos)
{
	if (status == TOKEN_WRONG_CLUSTER)
		consistency_count(CSTAT_TOK_WRONG_CLUSTER);
	if (status == TOKEN_DIVERGED)
		consistency_count(CSTAT_TOK_DIVERGED);
	if (status == TOKEN_WRONG_CLUSTER)
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TOKEN_WRONG_CLUSTER),
				 errmsg("consistency token is from another cluster"),
				 errdetail("The token names system identifier " UINT64_FORMAT "; this server's is " UINT64_FORMAT ".",
						   tok->sysid, GetSystemIdentifier()),
				 errhint("Send the read to a server of the cluster that minted the token.")));
	if (status == TOKEN_DIVERGED)
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TOKEN_DIVERGED),
				 errmsg("write named by the consistency token is not in this server's history"),
				 errdetail("The token names %X/%X on timeline %u; this server is at %X/%X on timeline %u, and its history does not contain that write.",
						   LSN_FORMAT_ARGS(tok->lsn), tok->tli,
						   LSN_FORMAT_ARGS(pos->lsn), pos->tli),
				 errhint("The write was lost in a failover, or this server follows another branch of the cluster's history: read from the current primary and treat the write as lost.")));
}

/*
 * write_token(): the token of this session's last committed write, flushed
 * to disk first if it was committed asynchronously, or a token every server
 * of the cluster satisfies if the session wrote nothing.  Refused inside a
 * transaction that has written (its write is not committed).
 */
Datum
consistency_write_token(PG_FUNCTION_ARGS)
{
	ConsistencyToken tok;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TOKEN_NOT_PRIMARY),
				 errmsg("consistency tokens are minted only on a primary"),
				 errdetail("This server is a standby: sessions on it cannot write."),
				 errhint("Call consistency.write_token() in the session that wrote, on the primary.")));

	/*
	 * Inside a transaction that has written, the last committed write is an
	 * earlier one: a read with that token could miss this transaction's
	 * write.  (A multi-statement query string without BEGIN/COMMIT is one
	 * transaction, so "UPDATE ...; SELECT consistency.write_token()" is
	 * exactly this mistake.)
	 */
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TOKEN_UNCOMMITTED),
				 errmsg("this transaction has written but not committed yet"),
				 errdetail("A token names a committed write; before this transaction commits, its token would be the previous commit's."),
				 errhint("Call consistency.write_token() after COMMIT, in its own statement: a query string with several statements and no BEGIN/COMMIT runs as one transaction.")));

	if (!consistency_token_last_commit(&tok))
	{
		tok.sysid = GetSystemIdentifier();
		tok.tli = GetWALInsertionTimeLine();
		tok.lsn = InvalidXLogRecPtr;
	}
	else if (tok.lsn > GetFlushRecPtr(NULL))
	{
		/*
		 * An asynchronous commit (synchronous_commit = off) returns before its
		 * WAL is flushed.  A crash now would lose the write, and the WAL written
		 * after crash recovery, on the same timeline, would pass the token's
		 * position: standbys would call a write that does not exist replayed.
		 * A token is handed out only for a durable write, so flush up to it
		 * (at most once per commit: later calls find it flushed).
		 */
		XLogFlush(tok.lsn);
	}
	PG_RETURN_TEXT_P(cstring_to_text(consistency_token_format(&tok)));
}

static void
token_arg(FunctionCallInfo fcinfo, int argno, const char *argname, ConsistencyToken *tok)
{
	text	   *t = consistency_text_arg(fcinfo, argno, argname, PG_INT32_MAX, true);

	consistency_token_parse_or_error(text_to_cstring(t), tok);
}

/*
 * token_max(a, b): the later of two tokens of the same cluster.  A token
 * without a write never wins; otherwise the later timeline wins, then the
 * later position.
 */
Datum
consistency_token_max(PG_FUNCTION_ARGS)
{
	ConsistencyToken a,
				b;
	const ConsistencyToken *later;

	token_arg(fcinfo, 0, "a", &a);
	token_arg(fcinfo, 1, "b", &b);

	if (a.sysid != b.sysid)
		ereport(ERROR,
				(errcode(ERRCODE_CONSISTENCY_TOKEN_WRONG_CLUSTER),
				 errmsg("cannot merge consistency tokens of two clusters"),
				 errdetail("The tokens name system identifiers " UINT64_FORMAT " and " UINT64_FORMAT ".",
						   a.sysid, b.sysid),
				 errhint("Keep one token per cluster.")));

	if (a.lsn == InvalidXLogRecPtr)
		later = &b;
	else if (b.lsn == InvalidXLogRecPtr)
		later = &a;
	else if (a.tli != b.tli)
		later = a.tli > b.tli ? &a : &b;
	else
		later = a.lsn >= b.lsn ? &a : &b;

	PG_RETURN_TEXT_P(cstring_to_text(consistency_token_format(later)));
}

/*
 * token_status(token): ready, behind, wrong_cluster, diverged or primary,
 * without waiting.
 */
Datum
consistency_token_status(PG_FUNCTION_ARGS)
{
	ConsistencyToken tok;
	TokenPosition pos;

	token_arg(fcinfo, 0, "token", &tok);
	PG_RETURN_TEXT_P(cstring_to_text(
		consistency_token_status_name(consistency_token_evaluate(&tok, &pos))));
}
