# test/bench/lib.sh: what the benchmark sections share.
#
# Owns: the throwaway benchmark server (fresh per section, fsync and synchronous_commit on),
# running pgbench and reading its results (rate, mean and p99 latency, and on request the
# machine's CPU and context switches over the run), medians over
# interleaved repetitions, ratios, the environment line every section prints, and each
# section's time plan and progress line.
# Sourced by test/bench/run.sh.
#
# The plan: a section starts with what it will run, before it touches the server,
#     bench_plan RUNS SECONDS      (RUNS measured runs of SECONDS each; as often as needed)
#     bench_plan_extra SECONDS     (anything else: setup, standbys, sell-outs, profiles)
#     bench_plan_done              (end of the plan)
# run.sh sources every section once with BENCH_PLANNING=1 up to bench_plan_done (which then
# reports the plan and leaves), sums the plans, and shows "run i of n" and the time left at
# every run.  A section without a plan still shows its runs; its time left is estimated from
# how long it took last time (the results file records it).

# shellcheck shell=bash
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
	BENCH_DIR=
}

# bench_at_exit COMMAND: run COMMAND when run.sh exits, even on an error (a section's own
# servers: Redis, standbys).  run.sh's exit also stops the benchmark server.
bench_exit_cmds=()
bench_at_exit() { bench_exit_cmds+=("$1"); }

# bench_stop_pid NAME PID: stop a daemon a section started (redis-server, pgbouncer): SIGTERM,
# then up to 10 s for it to go.  Gone already is fine.
bench_stop_pid() {
	local i
	kill -TERM "$2" 2>/dev/null || return 0
	for i in $(seq 1 100); do
		kill -0 "$2" 2>/dev/null || return 0
		sleep 0.1
	done
	die "$1 (pid $2) did not stop"
}
bench_exit() {
	local c
	for c in "${bench_exit_cmds[@]}"; do $c || true; done
	[ -z "$BENCH_DIR" ] || cluster_stop "$BENCH_DIR" immediate
}

bench_sql() { cluster_psql "$BENCH_DIR" "$BENCH_PORT" -d bench -At -c "$1" "${@:2}"; }
bench_sql_file() { cluster_psql "$BENCH_DIR" "$BENCH_PORT" -d bench -f "$1" >/dev/null; }

# Time plan and progress (see the header).  BENCH_RUN_OVERHEAD_DS: tenths of a second a run
# spends outside its measured time (the CHECKPOINT before it, connecting, reading the
# transaction log).  Measured on 2 cores: 0.1 to 0.3 s (the set of 2026-12-04: 72 idempotency
# runs of 3 s took 227 s, 78 inventory runs 279 s, against 263 s and 341 s planned with 0.5 s).
# The plan is kept in tenths.
BENCH_RUN_OVERHEAD_DS=${BENCH_RUN_OVERHEAD_DS:-2}
bench_plan_runs=0
bench_plan_ds=0
bench_plan() {	# RUNS SECONDS
	bench_plan_runs=$((bench_plan_runs + $1))
	bench_plan_ds=$((bench_plan_ds + $1 * ($2 * 10 + BENCH_RUN_OVERHEAD_DS)))
}
bench_plan_extra() { bench_plan_ds=$((bench_plan_ds + $1 * 10)); }
bench_plan_done() {
	if [ "${BENCH_PLANNING:-0}" = 1 ]; then
		echo "$bench_plan_runs $(((bench_plan_ds + 5) / 10))"
		exit 0
	fi
}
bench_mmss() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

# bench_progress LABEL: one line before each measured run: section, variant, run i of n,
# elapsed and time left.  pgbench_run calls it; a section's other drivers (redis-benchmark)
# call it themselves.  BENCH_STAGE (set by a section, e.g. "synchronous_commit off") prefixes
# the label.  Runs are counted in a file (BENCH_RUN_FILE, emptied by run.sh for each section)
# because sections call pgbench_run in a subshell (read ... < <(pgbench_run ...)).  run.sh
# sets BENCH_SECTION, BENCH_SECTION_START, BENCH_SET_START, BENCH_LATER_SECS (the planned
# seconds of the sections still to come) and, for a section without a plan,
# BENCH_SECTION_ESTIMATE (its duration last time).
bench_progress() {
	local now elapsed sect left of bench_run_no
	bench_run_no=$(($(cat "${BENCH_RUN_FILE:-/dev/null}" 2>/dev/null || true) + 1))
	[ -z "${BENCH_RUN_FILE:-}" ] || echo "$bench_run_no" >"$BENCH_RUN_FILE"
	now=$(date +%s)
	elapsed=$((now - ${BENCH_SET_START:-$now}))
	sect=$((now - ${BENCH_SECTION_START:-$now}))
	if [ "$bench_plan_runs" -gt 0 ]; then
		of=" of $bench_plan_runs"
		if [ "$bench_run_no" -gt 1 ]; then
			# this section's own pace so far, for the runs it still has to make
			left=$((sect * (bench_plan_runs - bench_run_no + 1) / (bench_run_no - 1)))
		else
			left=$((bench_plan_ds / 10))
		fi
	else
		of=
		left=$((${BENCH_SECTION_ESTIMATE:-0} - sect))
	fi
	[ "$left" -ge 0 ] || left=0
	left=$((left + ${BENCH_LATER_SECS:-0}))
	printf '  > [%s] %s%s: run %d%s  (%s elapsed, ~%s left)\n' "${BENCH_SECTION:-bench}" \
		"${BENCH_STAGE:+$BENCH_STAGE, }" "$1" "$bench_run_no" "$of" \
		"$(bench_mmss "$elapsed")" "$(bench_mmss "$left")"
}

# Seconds per run (shorter with --quick, for trying a section out).
bench_seconds() {
	local s=${1:-10}
	if [ "${BENCH_QUICK:-0}" = 1 ] && [ "$s" -gt 3 ]; then echo 3; else echo "$s"; fi
}
bench_reps() { if [ "${BENCH_QUICK:-0}" = 1 ]; then echo 1; else echo "${1:-3}"; fi; }

# machine_counters: "busy_jiffies context_switches uptime" of the whole machine so far
# (/proc/stat: user, nice, system, irq, softirq and steal time, as cpuwatch.py counts busy;
# ctxt; /proc/uptime).  Read before and after a run, they give its CPU and context switches
# per unit of work and how many cores it kept busy: counts and shares, never a lone time.
machine_counters() {
	awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9 } /^ctxt / { c = $2 } END { printf "%d %d ", b, c }' /proc/stat
	cut -d' ' -f1 /proc/uptime
}
# machine_usage BEFORE... AFTER... (two machine_counters): prints "cpu_seconds context_switches
# elapsed_seconds".
machine_usage() {
	awk -v b0="$1" -v c0="$2" -v t0="$3" -v b1="$4" -v c1="$5" -v t1="$6" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.2f %d %.2f\n", (b1 - b0) / hz, c1 - c0, t1 - t0 }'
}

# pgbench_run SCRIPT CLIENTS SECONDS [pgbench args...]
# Prints "tps mean_ms p99_ms transactions" (p99 from the per-transaction log).  If
# BENCH_USAGE names a file, the machine's CPU seconds and context switches over the pgbench
# run itself (not the CHECKPOINT before it) are written there (machine_usage).  BENCH_LABEL
# names the run in the progress line (default: the script's name).
pgbench_run() {
	local script=$1 clients=$2 secs=$3
	shift 3
	local threads=$((clients < 2 ? clients : 2))
	local logdir
	logdir=$(as_user mktemp -d "$WORK/pgbench-log.XXXXXX")
	bench_progress "${BENCH_LABEL:-$(basename "$script" .sql)}, $clients client$([ "$clients" = 1 ] || echo s)" >&2
	bench_sql 'CHECKPOINT' >/dev/null
	local out before
	before=$(machine_counters)
	out=$(cd "$logdir" && as_user "$PG_BINDIR/pgbench" -h "$BENCH_DIR" -p "$BENCH_PORT" -n -M prepared \
		-c "$clients" -j "$threads" -T "$secs" -l --log-prefix=tx -f "$script" "$@" bench 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "pgbench failed: $script"; }
	# shellcheck disable=SC2046,SC2086
	[ -z "${BENCH_USAGE:-}" ] || machine_usage $before $(machine_counters) >"$BENCH_USAGE"
	local tps mean n p99
	tps=$(printf '%s\n' "$out" | sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | head -n 1)
	# (" (including failures)" follows when a transaction failed: keep the number only)
	mean=$(printf '%s\n' "$out" | sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p')
	n=$(printf '%s\n' "$out" | sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p')
	# per-transaction log: client_id transaction_no time(us) script_no time_epoch time_us
	p99=$(cat "$logdir"/tx.* | awk '{print $3}' | sort -n |
		awk '{a[NR]=$1} END {if (NR == 0) {print 0; exit} i=int(NR*0.99); if (i < 1) i=1; printf "%.2f", a[i]/1000}')
	rm -rf "$logdir"
	echo "${tps:-0} ${mean:-0} ${p99:-0} ${n:-0}"
}

# bench_statements TEMPLATE PREFIX COUNT: COUNT statements for bench_instructions, from
# TEMPLATE with {p} the prefix, {i} the statement's number and {pid} a product id (1 to 10,000).
bench_statements() {
	seq "$3" | awk -v t="$1" -v p="$2" '{
		s = t; gsub(/\{p\}/, p, s); gsub(/\{i\}/, $1, s); gsub(/\{pid\}/, $1 * 7919 % 10000 + 1, s)
		print s }'
}

# bench_instructions GENERATOR SMALL LARGE [postgres options...]: instructions per statement,
# counted by callgrind, of the statements "GENERATOR PREFIX COUNT" prints (one per line; PREFIX
# is fresh for every run, for fresh keys), run by a single-user backend (postgres --single) on
# the benchmark's database, each statement its own transaction with its commit: the totals of
# a run of SMALL and one of LARGE statements, subtracted and divided by LARGE - SMALL, so that
# the backend's start and shutdown cancel out.  Instructions, not seconds: the machine's load
# does not move them, but the database's state does (which pages a statement touches, a page
# split, a pruning): two measures of the same statements differ by up to 2%.  With
# BENCH_CG_FUNCTION set, also prints the instructions per statement spent in that function and
# what it calls (its inclusive count), measured the same way.  The server is stopped meanwhile
# and started again.  Every statement must succeed.
bench_instructions() {
	local gen=$1 small=$2 large=$3 dir n totals=() fn=()
	shift 3
	dir=$(as_user mktemp -d "$WORK/callgrind.XXXXXX")
	cluster_stop "$BENCH_DIR" fast
	for n in "$small" "$large"; do
		"$gen" "cg$RANDOM$n" "$n" >"$dir/in.sql"
		as_user valgrind --tool=callgrind --callgrind-out-file="$dir/out" \
			"$PG_BINDIR/postgres" --single -D "$BENCH_DIR/data" "$@" bench \
			<"$dir/in.sql" >"$dir/stdout" 2>"$dir/stderr" ||
			{ tail -n 20 "$dir/stderr" >&2; die "callgrind run of $gen failed"; }
		! grep -E '^(ERROR|FATAL|PANIC):|\] (ERROR|FATAL|PANIC):' "$dir/stderr" >&2 ||
			die "a statement of $gen failed under callgrind"
		totals+=("$(sed -nE 's/^summary: ([0-9]+)$/\1/p' "$dir/out")")
		if [ -n "${BENCH_CG_FUNCTION:-}" ]; then
			fn+=("$(callgrind_annotate --inclusive=yes --threshold=100 "$dir/out" |
				awk -v f=":$BENCH_CG_FUNCTION [" '!n && index($0, f) { gsub(",", "", $1); print $1; n = 1 }')")
		fi
	done
	cluster_start "$BENCH_DIR"
	rm -rf "$dir"
	awk -v a="${totals[0]}" -v b="${totals[1]}" -v n=$((large - small)) \
		'BEGIN { if (a == "" || b == "") exit 1; printf "%.0f\n", (b - a) / n }' ||
		die "no instruction count from callgrind for $gen"
	if [ -n "${BENCH_CG_FUNCTION:-}" ]; then
		awk -v a="${fn[0]:-0}" -v b="${fn[1]:-0}" -v n=$((large - small)) 'BEGIN { printf "%.0f\n", (b - a) / n }'
	fi
}

# bench_session_instructions SCRIPT SMALL LARGE [PGOPTIONS]: "BACKEND CLIENT", the instructions
# per transaction of pgbench running SCRIPT (-M prepared, 1 client, PGOPTIONS for its session)
# in the client backend that serves it and in pgbench itself (libpq reading what the backend
# sent).  callgrind over the benchmark server, postmaster and children, and over pgbench; runs
# of SMALL and LARGE transactions, (large - small) / (LARGE - SMALL), so that connecting and
# loading libraries cancel out.  Unlike bench_instructions (a single-user backend, no client),
# this counts what a session sends its client and what the client does with it.
bench_session_instructions() {
	local script=$1 small=$2 large=$3 opts=${4:-} dir n n1 f i before size be=() cl=()
	dir=$(as_user mktemp -d "$WORK/callgrind.XXXXXX")
	cluster_stop "$BENCH_DIR" fast
	as_user valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$dir/server.%p" \
		"$PG_BINDIR/postgres" -D "$BENCH_DIR/data" -c autovacuum=off >"$dir/server.log" 2>&1 &
	# Ready when postmaster.pid says so (pg_isready would start a backend, with counts of its own).
	for i in $(seq 1 601); do
		[ "$(awk 'NR == 8 { print $1 }' "$BENCH_DIR/data/postmaster.pid" 2>/dev/null)" = ready ] && break
		[ "$i" -le 600 ] || { tail -n 20 "$dir/server.log" >&2; die "the server did not start under callgrind"; }
		sleep 0.1
	done
	# A warm-up run: the first sessions after a start count more, and a process writes its
	# counts when it exits, some time later.
	as_user env PGOPTIONS="$opts" "$PG_BINDIR/pgbench" -h "$BENCH_DIR" -p "$BENCH_PORT" -n -M prepared \
		-c 1 -t 10 -f "$script" bench >"$dir/pgbench.warm" 2>&1 ||
		{ tail -n 20 "$dir/pgbench.warm" >&2; die "pgbench under callgrind failed"; }
	bench_cg_settle "$dir"
	for n in "$small" "$large"; do
		before=$(ls "$dir")
		as_user env PGOPTIONS="$opts" valgrind --tool=callgrind --callgrind-out-file="$dir/client.$n" \
			"$PG_BINDIR/pgbench" -h "$BENCH_DIR" -p "$BENCH_PORT" -n -M prepared -c 1 -t "$n" \
			-f "$script" bench >"$dir/pgbench.$n" 2>&1 ||
			{ tail -n 20 "$dir/pgbench.$n" >&2; die "pgbench under callgrind failed"; }
		bench_cg_settle "$dir"
		# pgbench opens two sessions: one to set up, closed before the run, and the one that
		# runs the transactions, which counted more: the largest new count.
		size=0
		for f in "$dir"/server.*; do
			grep -qxF "${f##*/}" <<<"$before" && continue
			n1=$(sed -nE 's/^summary: ([0-9]+)$/\1/p' "$f")
			[ -n "$n1" ] && [ "$n1" -gt "$size" ] && size=$n1
		done
		[ "$size" -gt 0 ] || die "no callgrind counts from the backend that served pgbench"
		be+=("$size")
		cl+=("$(sed -nE 's/^summary: ([0-9]+)$/\1/p' "$dir/client.$n")")
	done
	cluster_stop "$BENCH_DIR" fast
	cluster_start "$BENCH_DIR"
	rm -rf "$dir"
	awk -v b0="${be[0]}" -v b1="${be[1]}" -v c0="${cl[0]}" -v c1="${cl[1]}" -v n=$((large - small)) \
		'BEGIN { if (b0 == "" || b1 == "" || c0 == "" || c1 == "") exit 1
			printf "%.0f %.0f\n", (b1 - b0) / n, (c1 - c0) / n }' ||
		die "no instruction count from callgrind for $script"
}
# bench_cg_settle DIR: wait until the server processes that exited have written their counts
# (the number of finished callgrind files has not changed for 1 s).
bench_cg_settle() {
	local last=-1 now same=0 i
	for i in $(seq 1 300); do
		now=$(grep -ls '^totals:' "$1"/server.* | wc -l)
		if [ "$now" = "$last" ]; then
			same=$((same + 1))
			[ "$same" -ge 10 ] && return 0
		else
			same=0 last=$now
		fi
		sleep 0.1
	done
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
# paired_ratio "A1 A2 ..." "B1 B2 ...": the median over repetitions of A's rate over B's rate in
# the same repetition, for variants interleaved within every repetition.  The machine's speed
# drifts between repetitions (a whole repetition of every variant 25% slower, seen here), and
# the ratio of two medians can then divide one repetition's rate by another's; each
# repetition's own ratio cancels the drift.
paired_ratio() {
	local r
	# shellcheck disable=SC2046
	r=$(median $(paste -d ' ' <(tr ' ' '\n' <<<"$1" | grep .) <(tr ' ' '\n' <<<"$2" | grep .) |
		awk 'NF == 2 && $2 > 0 { printf "%.4f ", $1 / $2 }'))
	if [ -n "$r" ]; then ratio "$r" 1; else echo "n/a"; fi
}
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.1f%%", 100 * a / b }'; }
fmt0() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }

bench_environment() {
	printf '_Run %s on %s cores, %s RAM, %s; git %s._\n' \
		"$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" \
		"$(free -h | awk '/^Mem:/ {print $2}')" \
		"$(bench_sql 'SHOW server_version' | cut -d' ' -f1) (fsync on, synchronous_commit on)" \
		"$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
}
