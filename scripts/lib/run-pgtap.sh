#!/usr/bin/env bash
# scripts/lib/run-pgtap.sh: run test/pgtap/*.sql with pg_prove on a throwaway server.
#
# Owns: the server the pgTAP suite runs against (created, started, stopped and removed here)
# and the database it tests in, which has pgtap and consistency installed.  The tests switch
# to non-superuser roles themselves.  Runs as an unprivileged user with PG_CONFIG set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
. "$here/cluster.sh"
cd "$REPO"
PG_CONFIG=${PG_CONFIG:-$(target_pg_config)}
PG_BINDIR=$("$PG_CONFIG" --bindir)

dir=$(mktemp -d "${TMPDIR:-/tmp}/consistency-pgtap.XXXXXX")
trap 'cluster_stop "$dir" immediate; rm -rf "$dir"' EXIT
port=5499
cluster_create "$dir/node" "$port"
cluster_start "$dir/node"
cluster_psql "$dir/node" "$port" -d postgres -c 'CREATE DATABASE consistency_tap'
cluster_psql "$dir/node" "$port" -d consistency_tap \
	-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION consistency'

PGHOST="$dir/node" PGPORT=$port PGDATABASE=consistency_tap \
	pg_prove --psql-bin "$PG_BINDIR/psql" --ext .sql -r test/pgtap
