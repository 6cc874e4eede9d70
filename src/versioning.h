/*-------------------------------------------------------------------------
 *
 * versioning.h
 *	  Interface between the version_guard trigger and enable/disable_versioning
 *	  (versioning.c) and update_versioned / try_update_versioned
 *	  (versioning_update.c).
 *
 * Both ways in share one definition of a version column (bigint or integer,
 * never wrapping), one conflict error, and a hand-off that lets
 * update_versioned run on a table that also has the trigger: see
 * versioning_expect_update().
 *
 * IDENTIFICATION
 *	  src/versioning.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSISTENCY_VERSIONING_H
#define CONSISTENCY_VERSIONING_H

#include "access/attnum.h"
#include "utils/relcache.h"

/* Name of the trigger enable_versioning() installs. */
#define VERSION_GUARD_TRIGGER "consistency_version_guard"

/*
 * Look up version column colname of rel and check it can hold a version:
 * an existing, non-generated column of type bigint or integer.  Errors out
 * otherwise (42703, 42804, 428C9).  Returns its attnum; *typid gets its type.
 */
extern AttrNumber versioning_column(Relation rel, const char *colname, Oid *typid);

/* Version Datum of type typid (INT8OID or INT4OID) as int64, and back. */
extern int64 versioning_datum_get(Datum d, Oid typid);
extern Datum versioning_datum_make(int64 v, Oid typid);

/* Largest version a column of type typid can hold. */
extern int64 versioning_max(Oid typid);

/* Raise the version conflict (40001, or YC101 per the GUC). */
pg_noreturn extern void versioning_report_conflict(Relation rel, AttrNumber attnum,
												   int64 expected, int64 found);

/* Raise 22003: the version of a row of rel cannot go past its type's maximum. */
pg_noreturn extern void versioning_report_overflow(Relation rel, AttrNumber attnum,
												   int64 version);

/*
 * update_versioned hand-off.  update_versioned checks the version in its
 * WHERE clause and writes "v = v + 1" itself; if version_guard is also
 * installed on the table it must not check (NEW.v is OLD.v + 1, not OLD.v)
 * nor bump a second time.  Around its UPDATE, update_versioned announces the
 * one row it is about to write; the trigger recognises it (same table or a
 * partition of it, same column, OLD = expected, NEW = expected + 1) and
 * leaves it alone, once.  The previous announcement is saved and restored,
 * so nested calls (from other triggers) work.
 */
typedef struct VersioningExpectation
{
	bool		active;
	Oid			relid;
	NameData	column;
	int64		expected;
} VersioningExpectation;

extern void versioning_expect_update(Oid relid, const char *column, int64 expected,
									 VersioningExpectation *saved);
extern void versioning_expect_restore(const VersioningExpectation *saved);

/*
 * versioning_direct.c: update_versioned's UPDATE without the executor, where
 * the table allows it (versioning_direct_plan decides, once per statement).
 */
typedef struct VersioningDirectPlan
{
	bool		usable;
	Oid			pkey;			/* the primary key index */
	int			nkeys;
	RegProcedure keyproc[INDEX_MAX_KEYS];	/* its equality functions */
	Oid			keycoll[INDEX_MAX_KEYS];
} VersioningDirectPlan;

/* One call's row: key values in index order, changes in attnum order. */
typedef struct VersioningDirectRow
{
	const Datum *keys;
	int			nchanges;
	const AttrNumber *changed;
	const Datum *values;
	const bool *nulls;
	AttrNumber	vattnum;
	Oid			vtypid;
	int64		expected;		/* < versioning_max(vtypid) */
} VersioningDirectRow;

extern void versioning_direct_plan(Relation rel, Oid pkoid, VersioningDirectPlan *plan);
extern int	versioning_direct_update(Relation rel, const VersioningDirectPlan *plan,
									 const VersioningDirectRow *row);

#endif							/* CONSISTENCY_VERSIONING_H */
