#!/usr/bin/env bash
# scripts/lib/run-pgtap.sh: run test/pgtap/*.sql with pg_prove on a throwaway server.
#
# Owns: the server the pgTAP suite runs against (created, started, stopped and removed here)
# and the database it tests in, which has pgtap and consistency installed.  The tests switch
# to non-superuser roles themselves.  Runs as an unprivileged user with PG_CONFIG set.  The
# server's postgresql.conf gets the file named by TEMP_CONFIG appended, if set, as every
# PostgreSQL::Test::Cluster node does (scripts/lib/run-suites.sh sets it in the preload leg).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
. "$here/cluster.sh"
cd "$REPO"
PG_CONFIG=${PG_CONFIG:-$(target_pg_config)}
PG_BINDIR=$("$PG_CONFIG" --bindir)

dir=$(mktemp -d "${TMPDIR:-/tmp}/consistency-pgtap.XXXXXX")
trap 'cluster_stop "$dir/node" immediate; rm -rf "$dir"' EXIT
port=5499
extra_conf=()
if [ -n "${TEMP_CONFIG:-}" ]; then
	mapfile -t extra_conf <"$TEMP_CONFIG"
fi
cluster_create "$dir/node" "$port" "${extra_conf[@]}"
cluster_start "$dir/node"
cluster_psql "$dir/node" "$port" -d postgres -c 'CREATE DATABASE consistency_tap'
cluster_psql "$dir/node" "$port" -d consistency_tap \
	-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION consistency'

# Say which configuration the server runs, for the log.
echo "server: shared_preload_libraries = '$(cluster_psql "$dir/node" "$port" -d postgres -At \
	-c 'SHOW shared_preload_libraries')'"
PGHOST="$dir/node" PGPORT=$port PGDATABASE=consistency_tap \
	pg_prove --psql-bin "$PG_BINDIR/psql" --ext .sql -r test/pgtap
