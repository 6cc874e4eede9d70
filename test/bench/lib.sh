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
# the label.  Runs are counted in a file (BENCH_RUN_FILE: the count and when the section's first
# run began; emptied by run.sh for each section)
# because sections call pgbench_run in a subshell (read ... < <(pgbench_run ...)).  run.sh
# sets BENCH_SECTION, BENCH_SECTION_START, BENCH_SET_START, BENCH_LATER_SECS (the planned
# seconds of the sections still to come) and, for a section without a plan,
# BENCH_SECTION_ESTIMATE (its duration last time).
bench_progress() {
	local now elapsed sect left of bench_run_no first_run
	now=$(date +%s)
	read -r bench_run_no first_run 2>/dev/null <"${BENCH_RUN_FILE:-/dev/null}" || true
	bench_run_no=$((${bench_run_no:-0} + 1))
	first_run=${first_run:-$now}
	[ -z "${BENCH_RUN_FILE:-}" ] || echo "$bench_run_no $first_run" >"$BENCH_RUN_FILE"
	elapsed=$((now - ${BENCH_SET_START:-$now}))
	sect=$((now - ${BENCH_SECTION_START:-$now}))
	if [ "$bench_plan_runs" -gt 0 ]; then
		of=" of $bench_plan_runs"
		if [ "$bench_run_no" -gt 1 ]; then
			# this section's own pace since its first run, for the runs it still has to make
			# (not since the section began: what came before the first run, a callgrind
			# pass, say, is no part of a run's pace)
			left=$(((now - first_run) * (bench_plan_runs - bench_run_no + 1) / (bench_run_no - 1)))
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

# bench_instructions SMALL LARGE TEMPLATE... [-- POSTGRES-OPTION...]: for each TEMPLATE, one
# line: the instructions per statement, counted by callgrind, of LARGE statements made from it
# by bench_statements (PREFIX fresh for every template, for fresh keys) after the first SMALL
# of them, which warm the backend's caches and are not counted.  One single-user backend
# (postgres --single) on the benchmark's database runs every template's statements in turn, each statement its own transaction with its commit.  Marker statements
# (SELECT pg_sleep(0)) around each measured stretch make callgrind dump its counters
# (--dump-before=pg_sleep), so a stretch's dump holds its statements and one marker's own
# cost, which a stretch of nothing between two markers measures and which is subtracted.
# (Counted from one backend start for all generators, not a start and shutdown for each
# SMALL and each LARGE run subtracted: the same statements, about a third of the valgrind
# time.)  Instructions, not seconds: the machine's load does not move them, but the
# database's state does (which pages a statement touches, a page split, a pruning): two
# measures of the same statements differ by up to 2%.  With BENCH_CG_FUNCTION set, each line
# also gives the instructions per statement spent in that function and what it calls (its
# inclusive count).  The server is stopped meanwhile and started again.  Every statement
# must succeed, and none may call pg_sleep.
bench_instructions() {
	local small=$1 large=$2 tmpls=() opts=() dir k mark over fn_over total fn
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do tmpls+=("$1"); shift; done
	[ $# -eq 0 ] || { shift; opts=("$@"); }
	dir=$(as_user mktemp -d "$WORK/callgrind.XXXXXX")
	mark='SELECT pg_catalog.pg_sleep(0);'
	# warm-up, marker, measured stretch, marker; for every template; then one marker more:
	# dump 2k+2 is template k's stretch, the last numbered dump the markers' own cost
	for k in "${!tmpls[@]}"; do
		bench_statements "${tmpls[$k]}" "cg$RANDOM$k" "$large" |
			awk -v s="$small" -v m="$mark" '{ print } NR == s { print m } END { if (NR != 0) print m }'
	done >"$dir/in.sql"
	echo "$mark" >>"$dir/in.sql"
	cluster_stop "$BENCH_DIR" fast
	as_user valgrind --tool=callgrind --dump-before=pg_sleep --callgrind-out-file="$dir/out" \
		"$PG_BINDIR/postgres" --single -D "$BENCH_DIR/data" "${opts[@]}" bench \
		<"$dir/in.sql" >"$dir/stdout" 2>"$dir/stderr" ||
		{ tail -n 20 "$dir/stderr" >&2; die "callgrind run of ${#tmpls[@]} templates failed"; }
	! grep -E '^(ERROR|FATAL|PANIC):|\] (ERROR|FATAL|PANIC):' "$dir/stderr" >&2 ||
		die "a statement failed under callgrind"
	cluster_start "$BENCH_DIR"
	[ -f "$dir/out.$((2 * ${#tmpls[@]} + 1))" ] && [ ! -f "$dir/out.$((2 * ${#tmpls[@]} + 2))" ] ||
		die "callgrind wrote $(find "$dir" -name 'out.*' | wc -l) dumps for ${#tmpls[@]} templates, not $((2 * ${#tmpls[@]} + 1)): did a statement call pg_sleep?"
	over=$(cg_summary "$dir/out.$((2 * ${#tmpls[@]} + 1))")
	[ -z "${BENCH_CG_FUNCTION:-}" ] || fn_over=$(cg_inclusive "$dir/out.$((2 * ${#tmpls[@]} + 1))")
	for k in "${!tmpls[@]}"; do
		total=$(cg_summary "$dir/out.$((2 * k + 2))")
		[ -n "$total" ] || die "no instruction count from callgrind for ${tmpls[$k]}"
		if [ -n "${BENCH_CG_FUNCTION:-}" ]; then fn=$(cg_inclusive "$dir/out.$((2 * k + 2))"); fi
		awk -v t="$total" -v o="$over" -v f="${fn:-}" -v fo="${fn_over:-0}" -v n=$((large - small)) \
			'BEGIN { printf "%.0f", (t - o) / n; if (f != "") printf " %.0f", (f - fo) / n; print "" }'
	done
	rm -rf "$dir"
}
# bench_instructions_into ARRAY WHAT SMALL LARGE TEMPLATES VARIANT...: ARRAY[VARIANT] (an
# associative array the caller declared) = bench_instructions SMALL LARGE of the statement
# template TEMPLATES[VARIANT] (another one), for every VARIANT, in one callgrind run; each
# reported as "instructions per WHAT, VARIANT: N".
bench_instructions_into() {
	local -n bench_into=$1 bench_templates=$5
	local what=$2 small=$3 large=$4 variants templates=() counts k
	shift 5
	variants=("$@")
	for k in "${variants[@]}"; do templates+=("${bench_templates[$k]}"); done
	mapfile -t counts < <(bench_instructions "$small" "$large" "${templates[@]}")
	for k in "${!variants[@]}"; do
		[ -n "${counts[$k]:-}" ] || die "no instruction count for ${variants[$k]}"
		bench_into[${variants[$k]}]=${counts[$k]}
		info "instructions per $what, ${variants[$k]}: ${counts[$k]}"
	done
}
# cg_summary FILE: a callgrind dump's total instructions; cg_inclusive FILE: those spent in
# BENCH_CG_FUNCTION and what it calls (0 if it was not called).
cg_summary() { sed -nE 's/^summary: ([0-9]+)$/\1/p' "$1"; }
cg_inclusive() {
	callgrind_annotate --inclusive=yes --threshold=100 "$1" |
		awk -v f=":$BENCH_CG_FUNCTION [" '!n && index($0, f) { gsub(",", "", $1); print $1; n = 1 } END { if (!n) print 0 }'
}

# bench_session_instructions SMALL LARGE SCRIPT PGOPTIONS [SCRIPT PGOPTIONS]...: for each
# SCRIPT, one line "BACKEND CLIENT": the instructions per transaction of pgbench running it
# (-M prepared, 1 client, PGOPTIONS for its session, empty for none) in the client backend that
# serves it and in pgbench itself (libpq reading what the backend sent).  callgrind over the
# benchmark server, postmaster and children (started once for all the scripts), and over
# pgbench; runs of SMALL and LARGE transactions, (large - small) / (LARGE - SMALL), so that
# connecting and loading libraries cancel out.  Unlike bench_instructions (a single-user
# backend, no client), this counts what a session sends its client and what the client does
# with it.
bench_session_instructions() {
	local small=$1 large=$2 script opts dir n n1 f i before size be cl out=
	shift 2
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
	while [ $# -ge 2 ]; do
		script=$1 opts=$2 be=() cl=()
		shift 2
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
			rm -f "$dir/client.$n"
		done
		out+=$(awk -v b0="${be[0]}" -v b1="${be[1]}" -v c0="${cl[0]}" -v c1="${cl[1]}" -v n=$((large - small)) \
			'BEGIN { if (b0 == "" || b1 == "" || c0 == "" || c1 == "") exit 1
				printf "%.0f %.0f", (b1 - b0) / n, (c1 - c0) / n }') ||
			die "no instruction count from callgrind for $script"
		out+=$'\n'
	done
	[ $# -eq 0 ] || die "bench_session_instructions: a SCRIPT without its PGOPTIONS: $1"
	cluster_stop "$BENCH_DIR" fast
	cluster_start "$BENCH_DIR"
	rm -rf "$dir"
	# only now, with the server back: a caller reading the lines goes on at the first one
	printf '%s' "$out"
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

# median X...: of an even count, the mean of the two middle values (until 2026-12-07 the lower
# of them, which flattered every "at most" goal read from four repetitions: the sell-out's).
median() {
	printf '%s\n' "$@" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else if (NR) print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
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
