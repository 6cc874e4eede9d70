#!/usr/bin/env bash
# test/bench/versions.sh: the idempotency and inventory ratios on PostgreSQL 15 and 18 side by
# side, so that a regression on a new major version shows.
#
# Owns: building and installing the extension for both versions, one throwaway server of each
# running at the same time, and the interleaved measurement: every repetition runs each
# workload on 15 and then on 18 before the next workload, so the machine's noise falls on
# both versions alike.  The same pgbench (15's) drives both servers, so only the server
# differs.  Each version's figures are ratios against a baseline measured on that version in
# the same run (plain order; PL/pgSQL FOR UPDATE); the last column compares the two ratios.
# Writes test/bench/results/70-versions.md and reassembles BENCHMARKS.md (run.sh --assemble).
# Usage: test/bench/versions.sh [--quick]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BENCH_QUICK=0
[ "${1:-}" = --quick ] && BENCH_QUICK=1
export BENCH_QUICK

versions=(15 18)
declare -A bindir

# Build and install for each version in a subshell of its own (common.sh reads the version
# when it is sourced).  Each prints its bindir last.
for v in "${versions[@]}"; do
	out=$(
		export CONSISTENCY_PG=$v CONSISTENCY_KEEP=0
		. "$here/../../scripts/lib/common.sh"
		step "PostgreSQL $v: packages, build, install" >&2
		ensure_packages >&2
		prepare_workdir
		build_and_install >&2
		echo "$PG_BINDIR"
	)
	bindir[$v]=$(tail -n 1 <<<"$out")
done

. "$here/../../scripts/lib/common.sh"
. "$here/../../scripts/lib/cluster.sh"
. "$here/lib.sh"
prepare_workdir
PG_BINDIR=${bindir[15]}
client_bindir=${bindir[15]}

declare -A dir port
start_server() {	# version
	local v=$1
	dir[$v]=$WORK/bench$v
	port[$v]=$((5470 + v))
	PG_BINDIR=${bindir[$v]}
	cluster_create "${dir[$v]}" "${port[$v]}" \
		"shared_buffers = 1GB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" \
		"synchronous_commit = on" "fsync = on" "max_connections = 200" \
		"max_locks_per_transaction = 256"
	cluster_start "${dir[$v]}"
	PG_BINDIR=$client_bindir
	local db
	for db in bench benchinv; do
		vsql "$v" postgres -c "CREATE DATABASE $db"
		vsql "$v" "$db" -c 'CREATE EXTENSION consistency'
	done
	vsql "$v" bench -f "$WORK/test/bench/idempotency/setup.sql" >/dev/null
	vsql "$v" benchinv -f "$WORK/test/bench/inventory/setup.sql" >/dev/null
}
stop_servers() {
	local v
	for v in "${versions[@]}"; do
		[ -n "${dir[$v]:-}" ] || continue
		PG_BINDIR=${bindir[$v]} cluster_stop "${dir[$v]}" fast
	done
	cleanup_workdir
}
trap stop_servers EXIT
vsql() { cluster_psql "${dir[$1]}" "${port[$1]}" -d "$2" -At "${@:3}"; }

# run VERSION DB SCRIPT CLIENTS: prints the rate (tps; for inventory, reservations/s as rows).
run() {
	local v=$1 db=$2 script=$3 clients=$4 secs threads out tps rows
	secs=$(bench_seconds 5)
	threads=$((clients < 2 ? clients : 2))
	vsql "$v" "$db" -c CHECKPOINT >/dev/null
	[ "$db" = benchinv ] && vsql "$v" "$db" -c "CALL bench_reset(1000000000)" >/dev/null
	out=$(as_user "$client_bindir/pgbench" -h "${dir[$v]}" -p "${port[$v]}" -n -M prepared \
		-c "$clients" -j "$threads" -T "$secs" -f "$script" "$db" 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "pgbench failed on $v: $script"; }
	if [ "$db" = benchinv ]; then
		rows=$(vsql "$v" "$db" -c "SELECT (SELECT count(*) FROM plain_res) + (SELECT count(*) FROM consistency.reservations)")
		awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.1f", r / s }'
	else
		tps=$(printf '%s\n' "$out" | sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | head -n 1)
		echo "${tps:-0}"
	fi
}

for v in "${versions[@]}"; do
	step "starting PostgreSQL $v"
	start_server "$v"
	info "$(vsql "$v" postgres -c 'SHOW server_version')"
done

# workload key -> database:script
declare -A wl=(
	[fn_plain]=bench:idempotency/fn_plain.sql [fn_idem_c]=bench:idempotency/fn_idem_c.sql
	[fn_replay_c]=bench:idempotency/fn_replay_c.sql
	[plain]=bench:idempotency/plain.sql [idem_c]=bench:idempotency/idem_c.sql
	[idem_plpgsql]=bench:idempotency/idem_plpgsql.sql
	[plpgsql]=benchinv:inventory/plpgsql.sql [c_slots1]=benchinv:inventory/c_slots1.sql
	[c_slots16]=benchinv:inventory/c_slots16.sql)
idem_keys=(fn_plain fn_idem_c fn_replay_c plain idem_c idem_plpgsql)
inv_keys=(plpgsql c_slots1 c_slots16)
reps=$(bench_reps 3)
declare -A samples rate

measure() {	# clients keys...
	local clients=$1 rep k v r
	shift
	for rep in $(seq 1 "$reps"); do
		for k in "$@"; do
			for v in "${versions[@]}"; do
				r=$(run "$v" "${wl[$k]%%:*}" "$WORK/test/bench/${wl[$k]#*:}" "$clients")
				info "run $rep, $clients clients, $k on $v: $(fmt0 "$r")/s"
				samples[$v,$k,$clients]="${samples[$v,$k,$clients]:-} $r"
			done
		done
	done
	for k in "$@"; do
		for v in "${versions[@]}"; do
			# shellcheck disable=SC2086
			rate[$v,$k,$clients]=$(median ${samples[$v,$k,$clients]})
		done
	done
}

step "idempotency workloads, interleaved across versions"
measure 1 "${idem_keys[@]}"
measure 16 "${idem_keys[@]}"
step "inventory workloads, interleaved across versions"
measure 1 "${inv_keys[@]}"
measure 64 "${inv_keys[@]}"

row() {	# clients label numerator denominator
	local c=$1 r15 r18
	r15=$(ratio "${rate[15,$3,$c]}" "${rate[15,$4,$c]}")
	r18=$(ratio "${rate[18,$3,$c]}" "${rate[18,$4,$c]}")
	echo "| $c | $2 | $r15 | $r18 | $(ratio "$r18" "$r15") | $(fmt0 "${rate[15,$3,$c]}") / $(fmt0 "${rate[15,$4,$c]}") | $(fmt0 "${rate[18,$3,$c]}") / $(fmt0 "${rate[18,$4,$c]}") |"
}
v15=$(vsql 15 postgres -c 'SHOW server_version' | cut -d' ' -f1)
v18=$(vsql 18 postgres -c 'SHOW server_version' | cut -d' ' -f1)
result=$REPO/test/bench/results/70-versions.md
{
	echo "## PostgreSQL 15 and 18 side by side"
	echo
	printf '_Run %s on %s cores, %s RAM; servers %s and %s running at once (fsync on, synchronous_commit on); git %s._\n' \
		"$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$(free -h | awk '/^Mem:/ {print $2}')" \
		"$v15" "$v18" "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo
	echo "Produced by \`test/bench/versions.sh\`. The same workloads as the idempotency and inventory"
	echo "sections (scripts in \`test/bench/idempotency/\` and \`test/bench/inventory/\`), on a server of"
	echo "each version at the same time, driven by the same pgbench (15's, \`-M prepared\`),"
	echo "$(bench_seconds 5)s runs, median of ${reps}. Interleaved: each repetition runs a workload on 15 and"
	echo "then on 18 before the next workload. Each version's ratio is against its own baseline in"
	echo "the same run; **18 / 15** compares the two ratios (1.00: the extension costs the same"
	echo "relative to plain PostgreSQL on both). Absolute rates are shown only to make the ratios"
	echo "checkable; they are not comparable across versions on a noisy machine."
	echo
	echo "| clients | measure | ratio on 15 | ratio on 18 | 18 / 15 | rates on 15 | rates on 18 |"
	echo "|---:|---|---:|---:|---:|---|---|"
	for c in 1 16; do
		row $c "server-side: idempotent order (C) / plain order" fn_idem_c fn_plain
		row $c "server-side: replay (C) / idempotent order (C)" fn_replay_c fn_idem_c
		row $c "client-side: idempotent order (C) / plain order" idem_c plain
		row $c "client-side: idempotent order, C / PL/pgSQL layer" idem_c idem_plpgsql
	done
	for c in 1 64; do
		row $c "reserve(), 1 slot / PL/pgSQL FOR UPDATE" c_slots1 plpgsql
		row $c "reserve(), 16 slots / PL/pgSQL FOR UPDATE" c_slots16 plpgsql
	done
} >"$result"
info "wrote $result"
"$here/run.sh" --assemble >/dev/null
info "BENCHMARKS.md reassembled"
