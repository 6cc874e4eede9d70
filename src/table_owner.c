/*-------------------------------------------------------------------------
 *
 * table_owner.c
 *	  Run the extension's own table accesses as the owner of those tables.
 *
 * Application roles are granted the extension's functions, not write access
 * to its tables: a member of consistency_user holds no INSERT, UPDATE or
 * DELETE on idempotency_keys, inventory, reservations or the 2PC logs, so it
 * cannot forge a stored response or a stock row around the functions.  The C
 * functions therefore switch to the table's owner for exactly the statements
 * that read or write those tables, the way PostgreSQL itself runs index
 * expressions during maintenance (REFRESH MATERIALIZED VIEW, VACUUM):
 * SECURITY_LOCAL_USERID_CHANGE so the switch is undone at (sub)transaction
 * abort, and SECURITY_RESTRICTED_OPERATION so nothing that runs meanwhile can
 * SET ROLE, touch temporary tables or otherwise escape with the owner's
 * rights.  The statements run are fixed, fully qualified SQL (or direct
 * heap/index access); no user-supplied code runs inside a switch.
 *
 * This is not a SECURITY DEFINER function: the switch covers one statement
 * of ours, never the caller's own SQL, and is checked by the caller having
 * EXECUTE on the function first.
 *
 * IDENTIFICATION
 *	  src/table_owner.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "consistency.h"

/*
 * The extension's own tables, by name, looked up once per backend and
 * forgotten on any relcache invalidation of the table (or of everything), so
 * a hot path pays no catalog look-up and a dropped and re-created extension is
 * found again.
 */
static const char *const table_names[CONSISTENCY_NUM_TABLES] = {
	[CONSISTENCY_TABLE_IDEMPOTENCY_KEYS] = "idempotency_keys",
	[CONSISTENCY_TABLE_INVENTORY] = "inventory",
	[CONSISTENCY_TABLE_RESERVATIONS] = "reservations",
};

static Oid	table_oids[CONSISTENCY_NUM_TABLES];

static void
table_oids_invalidate(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < CONSISTENCY_NUM_TABLES; i++)
		if (!OidIsValid(relid) || table_oids[i] == relid)
			table_oids[i] = InvalidOid;
}

void
consistency_table_owner_init(void)
{
	CacheRegisterRelcacheCallback(table_oids_invalidate, (Datum) 0);
}

/* OID of the extension's table t (42P01 if the extension's schema lacks it). */
Oid
consistency_table_oid(ConsistencyTable t)
{
	if (!OidIsValid(table_oids[t]))
	{
		Oid			relid = get_relname_relid(table_names[t],
											  get_namespace_oid(CONSISTENCY_SCHEMA, false));

		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation \"%s.%s\" does not exist", CONSISTENCY_SCHEMA, table_names[t]),
					 errhint("Reinstall the extension with DROP EXTENSION consistency; CREATE EXTENSION consistency.")));
		table_oids[t] = relid;
	}
	return table_oids[t];
}

/*
 * Owner of relation relid, from the syscache (no lock taken: the caller
 * already holds a lock on the relation or is about to take one through SPI).
 */
static Oid
relation_owner(Oid relid)
{
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Become the owner of relid for the statements that follow, saving the
 * current user and security context in *saved.  Pair with
 * consistency_restore_user(); an error in between is cleaned up by the
 * (sub)transaction abort, but code that catches errors (PG_TRY) must restore
 * in its PG_CATCH/PG_FINALLY before going on.
 */
void
consistency_become_owner(Oid relid, ConsistencySavedUser *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(relation_owner(relid),
						   saved->sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/* Undo consistency_become_owner(). */
void
consistency_restore_user(const ConsistencySavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}
