/*-------------------------------------------------------------------------
 *
 * consistency.c
 *	  Entry point of the consistency extension: the module magic block and
 *	  _PG_init(), which hands over to each capability's own init function.
 *
 * Each capability lives in its own file, or a group of files sharing one
 * prefix, and each file that needs initialising (GUCs, hooks, callbacks,
 * workers) has its own init function.  _PG_init() calls every one of them
 * itself, so no module calls a sibling's init and no capability's files
 * include each other for that.  This file owns nothing but the order and the
 * reservation of the "consistency." GUC prefix.
 *
 * IDENTIFICATION
 *	  src/consistency.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "consistency.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	consistency_idempotency_init();
	consistency_idem_claims_init();
	consistency_versioning_init();
	consistency_versioning_update_init();
	consistency_versioning_direct_init();
	consistency_token_report_init();
	consistency_token_wait_init();
	consistency_token_watcher_init();
	consistency_twophase_indoubt_init();
	consistency_twophase_resolve_init();
	consistency_table_owner_init();
	consistency_stats_init();
	consistency_maintenance_init();
	consistency_inventory_init();
	consistency_inventory_combine_init();

	MarkGUCPrefixReserved("consistency");
}
