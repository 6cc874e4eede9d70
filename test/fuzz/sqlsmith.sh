#!/usr/bin/env bash
# test/fuzz/sqlsmith.sh: random SQL (sqlsmith) against a database where every feature of the
# extension holds data, with the library preloaded.  Passes if the server log shows no backend
# crash and no error with SQLSTATE XX000.
#
# sqlsmith builds its queries from the functions it finds in pg_proc (every schema, and only
# functions that do not return a set), so left alone it would spend nearly all its queries on
# PostgreSQL's own thousands of functions.  Its catalog queries name pg_proc without a schema,
# so the connection puts schema "smith" before pg_catalog in search_path and smith.pg_proc
# offers only the extension's functions -- set-returning ones too, presented as plain ones --
# plus a few built-ins that make values.  It runs as fuzz_admin (granted consistency_admin,
# not a superuser): it cannot terminate the harness's backends or touch the server's files.
#
# Usage: test/fuzz/sqlsmith.sh [SECONDS [MAX_QUERIES [SEED]]]   (default 60 s, 100000, 1)
# Runs as the unprivileged test user with PG_CONFIG set (scripts/lib/run-suites.sh does this).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

seconds=${1:-60}
max_queries=${2:-100000}
seed=${3:-1}
command -v sqlsmith >/dev/null || die "sqlsmith is not installed (Debian package sqlsmith)"

dir=$(mktemp -d "${TMPDIR:-/tmp}/consistency-sqlsmith.XXXXXX")
port=5497
fuzz_server_start "$dir" "$port"

cluster_psql "$FUZZ_NODE" "$port" -d fuzz <<'SQL'
-- sqlsmith does not quote identifiers: hide the table whose names need quoting.
DROP TABLE public."Odd ""Table""";
CREATE SCHEMA smith;
-- What sqlsmith may call: every function of the extension (a set-returning one is offered as
-- scalar: in a select list PostgreSQL runs it anyway, elsewhere it is a clean error) and a
-- handful of built-ins and aggregates to build and combine arguments.
CREATE VIEW smith.pg_proc AS
	SELECT p.oid, p.proname, p.pronamespace, p.proowner, p.prolang, p.procost, p.prorows,
		   p.provariadic, p.prosupport, p.prokind, p.prosecdef, p.proleakproof, p.proisstrict,
		   CASE WHEN p.pronamespace = 'consistency'::regnamespace THEN false ELSE p.proretset END AS proretset,
		   p.provolatile, p.proparallel, p.pronargs, p.pronargdefaults, p.prorettype,
		   p.proargtypes, p.proallargtypes, p.proargmodes, p.proargnames, p.proargdefaults,
		   p.protrftypes, p.prosrc, p.probin, p.prosqlbody, p.proconfig, p.proacl
	  FROM pg_catalog.pg_proc AS p
	 WHERE p.pronamespace = 'consistency'::regnamespace
		OR (p.pronamespace = 'pg_catalog'::regnamespace
			AND p.proname IN ('repeat', 'concat', 'lpad', 'chr', 'md5', 'upper', 'substr',
							  'jsonb_build_object', 'jsonb_build_array', 'to_jsonb', 'jsonb_set',
							  'string_to_array', 'make_interval', 'jsonb_typeof', 'left',
							  'int8', 'int4', 'text', 'now', 'abs', 'length', 'octet_length',
							  'count', 'max', 'min', 'string_agg', 'array_agg', 'jsonb_agg',
							  'sum', 'bool_and')
			-- no pseudo-types (anyelement, "any"...): sqlsmith resolves them badly (42804)
			AND NOT EXISTS (SELECT FROM pg_catalog.unnest(p.proargtypes || p.prorettype) AS a(t)
							  JOIN pg_catalog.pg_type AS ty ON ty.oid = a.t
							 WHERE ty.typtype = 'p'));
GRANT USAGE ON SCHEMA smith TO fuzz_admin;
-- (pg_type cannot be narrowed the same way: sqlsmith aborts on operators over types it has
-- not loaded.  So casts of NULL to anyrange and the like still fail with 42804.)
GRANT SELECT ON smith.pg_proc TO fuzz_admin;
SQL

calls=$(cluster_psql "$FUZZ_NODE" "$port" -d fuzz -At -c \
	"SELECT count(*) FROM smith.pg_proc WHERE pronamespace = 'consistency'::regnamespace")
info "sqlsmith: $seconds s, at most $max_queries queries, seed $seed, $calls extension functions offered"

conninfo="host=$FUZZ_NODE port=$port dbname=fuzz user=fuzz_admin application_name=sqlsmith options='-c search_path=smith,pg_catalog,public'"
status=0
timeout --signal=INT --kill-after=30 "$seconds" \
	sqlsmith --target="$conninfo" --seed="$seed" --max-queries="$max_queries" --exclude-catalog --verbose \
	>"$dir/sqlsmith.out" 2>"$dir/sqlsmith.err" || status=$?
# timeout's 124 is the normal end of a timed run; anything else but 0 is sqlsmith failing
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$status" -ne 130 ]; then
	tail -n 20 "$dir/sqlsmith.err"
	die "sqlsmith exited with status $status"
fi

# Figures: queries and errors by SQLSTATE (from the server log: sqlsmith's own summary has
# no SQLSTATEs), and calls of the extension's functions among the logged failing statements.
queries=$(grep -oE 'queries: [0-9]+' "$dir/sqlsmith.err" | tail -n 1 | grep -oE '[0-9]+' || true)
info "queries generated: ${queries:-unknown} (sqlsmith's count at its last report)"
info "errors by SQLSTATE (server log):"
sed -nE 's/^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] ([0-9A-Z]{5}) .*(ERROR|FATAL|PANIC): .*/\1 \2/p' \
	"$FUZZ_NODE/server.log" | sort | uniq -c | sort -rn | sed 's/^/      /'
info "calls of the extension's functions (pg_stat_user_functions):"
fuzz_function_calls "$FUZZ_NODE" "$port"

cluster_psql "$FUZZ_NODE" "$port" -d fuzz -At -c 'SELECT 1' >/dev/null ||
	die "the server does not answer after the run"
fuzz_check_log "$FUZZ_NODE/server.log"
