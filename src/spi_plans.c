/*-------------------------------------------------------------------------
 *
 * spi_plans.c
 *	  SPI statements prepared once per backend, shared by every module that
 *	  runs fixed SQL on a hot path (idempotency, inventory, 2PC helpers).
 *
 * A plan is prepared on first use and kept with SPI_keepplan(), so it lives
 * in the plan cache for the backend's life and is revalidated (re-planned)
 * by PostgreSQL when a table it uses changes.  The caller is connected to
 * SPI.
 *
 * IDENTIFICATION
 *	  src/spi_plans.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "consistency.h"

/*
 * Return *cache, preparing and keeping it from sql first if it is NULL.
 */
SPIPlanPtr
consistency_keep_plan(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed for \"%s\"", sql);
		*cache = plan;
	}
	return *cache;
}
