/*-------------------------------------------------------------------------
 *
 * spi_plans.c
 *	  SPI statements prepared once per backend, shared by every module that
 *	  runs fixed SQL on a hot path (idempotency, inventory, 2PC), and the
 *	  ConsistencyStmt table entries the 2PC modules describe theirs with.
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

/* The kept plan of stmt, prepared on first use. */
SPIPlanPtr
consistency_stmt_plan(ConsistencyStmt *stmt)
{
	return consistency_keep_plan(&stmt->plan, stmt->sql, stmt->nargs, stmt->argtypes);
}

/* Raise an error naming stmt if SPI reported one (rc < 0). */
void
consistency_stmt_check(int rc, const ConsistencyStmt *stmt)
{
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 stmt->sql, SPI_result_code_string(rc));
}
