/*-------------------------------------------------------------------------
 *
 * token.h
 *	  Declarations shared by the modules of the session LSN token capability:
 *	  the token itself (token.c), the commit-time report of the
 *	  session's last write (token_report.c) and waiting for a token on a
 *	  standby (token_wait.c).
 *
 * IDENTIFICATION
 *	  src/token.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_TOKEN_H
#define CONSISTENCY_TOKEN_H

#include "access/xlogdefs.h"

/*
 * A parsed token: the end of a committed write, named by the cluster it was
 * written in, the timeline it was written on and its WAL position.  An LSN of
 * 0/0 means "no write": every server of the same cluster satisfies it.
 */
typedef struct ConsistencyToken
{
	uint64		sysid;
	TimeLineID	tli;
	XLogRecPtr	lsn;
} ConsistencyToken;

/* Longest well-formed token: "v1:" + 20 + ":" + 10 + ":" + 8 + "/" + 8. */
#define CONSISTENCY_TOKEN_MAXLEN	52

/* What this server can say about a token (token_status() spells these out). */
typedef enum TokenStatus
{
	TOKEN_READY,				/* standby: replayed past the token */
	TOKEN_BEHIND,				/* standby: not yet replayed */
	TOKEN_WRONG_CLUSTER,		/* another system identifier */
	TOKEN_DIVERGED,				/* the write is not in this server's history */
	TOKEN_PRIMARY				/* primary: the token's write is here */
} TokenStatus;

/* What the status was decided from, for error details. */
typedef struct TokenPosition
{
	bool		in_recovery;
	TimeLineID	tli;			/* replay (standby) or insert (primary) TLI */
	XLogRecPtr	lsn;			/* replay (standby) or insert (primary) LSN */
} TokenPosition;

/* token.c */
extern bool consistency_token_parse(const char *str, ConsistencyToken *tok,
									const char **why);
extern void consistency_token_parse_or_error(const char *str,
											 ConsistencyToken *tok);
extern char *consistency_token_format(const ConsistencyToken *tok);
extern int	consistency_token_format_buf(const ConsistencyToken *tok, char *buf);
extern TokenStatus consistency_token_evaluate(const ConsistencyToken *tok,
											  TokenPosition *pos);
extern const char *consistency_token_status_name(TokenStatus status);
extern void consistency_token_raise_unusable(const ConsistencyToken *tok,
											 TokenStatus status,
											 const TokenPosition *pos);

/* token_report.c */
extern bool consistency_token_last_commit(ConsistencyToken *tok);

/* token_watcher.c */
extern bool consistency_watcher_register(XLogRecPtr target);
extern void consistency_watcher_unregister(void);

#endif							/* CONSISTENCY_TOKEN_H */
