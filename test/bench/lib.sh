# test/bench/lib.sh: what the benchmark sections share.
#
# Owns: the throwaway benchmark server (fresh per section, fsync and synchronous_commit on),
# running pgbench and reading its results (rate, mean and p99 latency), medians over
# interleaved repetitions, ratios, and the environment line every section prints.
# Sourced by test/bench/run.sh.

BENCH_DIR=
BENCH_PORT=5460

# bench_server_start [extra postgresql.conf lines...]
bench_server_start() {
	BENCH_DIR=$WORK/bench.$RANDOM
	cluster_create "$BENCH_DIR" "$BENCH_PORT" \
		"shared_buffers = 1GB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" \
		"synchronous_commit = on" "fsync = on" "max_connections = 200" \
		"max_locks_per_transaction = 256" "$@"
	cluster_start "$BENCH_DIR"
	cluster_psql "$BENCH_DIR" "$BENCH_PORT" -d postgres -c 'CREATE DATABASE bench'
	bench_sql 'CREATE EXTENSION consistency'
}

bench_server_stop() {
	cluster_stop "$BENCH_DIR" fast
	rm -rf "$BENCH_DIR"
}

bench_sql() { cluster_psql "$BENCH_DIR" "$BENCH_PORT" -d bench -At -c "$1" "${@:2}"; }
bench_sql_file() { cluster_psql "$BENCH_DIR" "$BENCH_PORT" -d bench -f "$1" >/dev/null; }

# Seconds per run (shorter with --quick, for trying a section out).
bench_seconds() { if [ "${BENCH_QUICK:-0}" = 1 ]; then echo 3; else echo "${1:-10}"; fi; }
bench_reps() { if [ "${BENCH_QUICK:-0}" = 1 ]; then echo 1; else echo "${1:-3}"; fi; }

# pgbench_run SCRIPT CLIENTS SECONDS [pgbench args...]
# Prints "tps mean_ms p99_ms transactions" (p99 from the per-transaction log).
pgbench_run() {
	local script=$1 clients=$2 secs=$3
	shift 3
	local threads=$((clients < 2 ? clients : 2))
	local logdir
	logdir=$(as_user mktemp -d "$WORK/pgbench-log.XXXXXX")
	bench_sql 'CHECKPOINT' >/dev/null
	local out
	out=$(cd "$logdir" && as_user "$PG_BINDIR/pgbench" -h "$BENCH_DIR" -p "$BENCH_PORT" -n -M prepared \
		-c "$clients" -j "$threads" -T "$secs" -l --log-prefix=tx -f "$script" "$@" bench 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "pgbench failed: $script"; }
	local tps mean n p99
	tps=$(printf '%s\n' "$out" | sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | head -n 1)
	mean=$(printf '%s\n' "$out" | sed -nE 's/^latency average = ([0-9.]+) ms/\1/p')
	n=$(printf '%s\n' "$out" | sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p')
	# per-transaction log: client_id transaction_no time(us) script_no time_epoch time_us
	p99=$(cat "$logdir"/tx.* | awk '{print $3}' | sort -n |
		awk '{a[NR]=$1} END {if (NR == 0) {print 0; exit} i=int(NR*0.99); if (i < 1) i=1; printf "%.2f", a[i]/1000}')
	rm -rf "$logdir"
	echo "${tps:-0} ${mean:-0} ${p99:-0} ${n:-0}"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.1f%%", 100 * a / b }'; }
fmt0() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }

bench_environment() {
	printf '_Run %s on %s cores, %s RAM, %s; git %s._\n' \
		"$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" \
		"$(free -h | awk '/^Mem:/ {print $2}')" \
		"$(bench_sql 'SHOW server_version' | cut -d' ' -f1) (fsync on, synchronous_commit on)" \
		"$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
}
