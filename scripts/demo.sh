#!/usr/bin/env bash
# scripts/demo.sh: the README's demo command.
#
# Installs what is missing, builds and installs the extension, starts a throwaway primary and
# a streaming standby, then runs each chapter in scripts/demo.d/ in name order, printing a
# readable report.  Everything it creates is removed at the end, even on failure.  Works as
# root (servers run as the postgres user) or as a user with sudo; re-running it is safe.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/cluster.sh"
. "$(dirname "$0")/lib/demo.sh"

started=$SECONDS
step "checking packages"
ensure_packages

step "building and installing the extension"
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
