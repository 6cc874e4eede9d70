#!/usr/bin/env bash
# scripts/demo.sh: the README's demo command.
#
# Installs what is missing, builds and installs the extension, starts a throwaway primary and
# a streaming standby, then runs each chapter in scripts/demo.d/ in name order, printing a
# readable report.  Everything it creates is removed at the end, even on failure.  Works as
# root (servers run as the postgres user) or as a user with sudo; re-running it is safe.
# Usage: scripts/demo.sh [--pg 15|18]   (default 15; 18 is built from Debian's source package
# once per machine by scripts/lib/build-pg.sh, as for scripts/test.sh --pg 18)
set -euo pipefail
while [ $# -gt 0 ]; do
	case $1 in
	--pg) export CONSISTENCY_PG=${2:?--pg needs 15 or 18}; shift 2 ;;
	--pg=*) export CONSISTENCY_PG=${1#--pg=}; shift ;;
	*) echo "usage: $0 [--pg 15|18]" >&2; exit 2 ;;
	esac
done
[[ ${CONSISTENCY_PG:-15} =~ ^[0-9]+$ ]] || { echo "error: --pg: a major version (15, 18), not '$CONSISTENCY_PG'" >&2; exit 2; }
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/cluster.sh"
. "$(dirname "$0")/lib/demo.sh"

started=$SECONDS
step "checking packages (PostgreSQL $PG_MAJOR)"
ensure_packages

step "building and installing the extension for PostgreSQL $PG_MAJOR"
prepare_workdir
build_and_install

step "starting a throwaway primary and a streaming standby"
DEMO_DIR=$WORK/demo
PRIMARY=$DEMO_DIR/primary PRIMARY_PORT=5441
STANDBY=$DEMO_DIR/standby STANDBY_PORT=5442
trap 'cluster_stop "$STANDBY" immediate; cluster_stop "$PRIMARY" immediate; cleanup_workdir' EXIT
cluster_create "$PRIMARY" "$PRIMARY_PORT" "wal_level = replica" "max_wal_senders = 10"
cluster_start "$PRIMARY"
cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d postgres -c 'CREATE DATABASE shop'
primary_sql 'CREATE EXTENSION consistency'
cluster_standby "$PRIMARY" "$PRIMARY_PORT" "$STANDBY" "$STANDBY_PORT"
cluster_start "$STANDBY"
wait_for_standby
info "primary: $(primary_sql 'SELECT version()' | cut -d, -f1)"
info "standby: streaming, replay lag $(primary_sql "SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0) FROM pg_stat_replication") bytes"

for chapter in "$REPO"/scripts/demo.d/*.sh; do
	. "$chapter"
done

step "done in $((SECONDS - started))s: servers stopped, $WORK removed"
