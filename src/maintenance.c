/*-------------------------------------------------------------------------
 *
 * maintenance.c
 *	  The GUCs of consistency.maintenance(), the procedure a scheduler
 *	  (pg_cron) calls to purge expired idempotency keys, expire lapsed
 *	  reservations and, when allowed, resolve stale in-doubt transactions.
 *
 * The procedure itself is PL/pgSQL in the install script: it commits
 * between batches, which a C function called through fmgr cannot do, and it
 * only calls the extension's own functions.  This file owns its settings:
 *
 *	consistency.tpc_auto_resolve (bool, off): whether maintenance() resolves
 *	  in-doubt two-phase transactions at all (resolve_stale, action 'auto':
 *	  the decision log's verdict, never a guess);
 *	consistency.tpc_auto_resolve_after (seconds, 15min): how old a prepared
 *	  transaction must be before maintenance() resolves it.
 *
 * IDENTIFICATION
 *	  src/maintenance.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "consistency.h"

static bool tpc_auto_resolve = false;
static int	tpc_auto_resolve_after = 15 * 60;

void
consistency_maintenance_init(void)
{
	DefineCustomBoolVariable("consistency.tpc_auto_resolve",
							 "Whether consistency.maintenance() resolves stale in-doubt two-phase transactions.",
							 "When on, maintenance() commits or rolls back prepared transactions older than "
							 "consistency.tpc_auto_resolve_after as their decision log says (resolve_stale, action 'auto').",
							 &tpc_auto_resolve,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("consistency.tpc_auto_resolve_after",
							"Age of a prepared transaction before consistency.maintenance() resolves it.",
							"Only used when consistency.tpc_auto_resolve is on.",
							&tpc_auto_resolve_after,
							15 * 60, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}
