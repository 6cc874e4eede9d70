/*-------------------------------------------------------------------------
 *
 * consistency.c
 *	  Entry point of the consistency extension: the module magic block and
 *	  _PG_init(), which hands over to each capability's own init function.
 *
 * Each capability lives in its own file and defines its own GUCs there;
 * this file owns nothing but the order in which they are initialised and the
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
	consistency_versioning_init();
	consistency_session_token_init();
	consistency_twophase_init();
	consistency_table_owner_init();
	consistency_stats_init();
	consistency_maintenance_init();

	MarkGUCPrefixReserved("consistency");
}
