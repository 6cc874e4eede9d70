/*-------------------------------------------------------------------------
 *
 * args.c
 *	  Argument checks shared by the SQL-callable functions of every module.
 *
 * The extension's functions are not STRICT: a NULL argument is a mistake the
 * caller must hear about (SQLSTATE 22004), not a silent NULL result.  Text
 * arguments that act as identifiers (keys, scopes, reservation ids) have a
 * byte limit (22001) and usually may not be empty (22023).
 *
 * IDENTIFICATION
 *	  src/args.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "consistency.h"

/*
 * Raise 22004 if argument argno is NULL.
 */
void
consistency_arg_not_null(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", argname)));
}

/*
 * Fetch text argument argno, checking it is not NULL, not longer than
 * maxbytes bytes and, unless allow_empty, not empty.  The result is
 * detoasted.
 */
text *
consistency_text_arg(FunctionCallInfo fcinfo, int argno, const char *argname,
					 int maxbytes, bool allow_empty)
{
	text	   *t;
	int			len;

	consistency_arg_not_null(fcinfo, argno, argname);
	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);

	if (len == 0 && !allow_empty)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	if (len > maxbytes)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long", argname),
				 errdetail("The %s is %d bytes long; the limit is %d bytes.",
						   argname, len, maxbytes)));
	return t;
}
