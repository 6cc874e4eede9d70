# Benchmark section: in-doubt two-phase commit (issue 6).
# 1. Listing: consistency.prepared_xacts() with 100 prepared transactions holding 10,000 locks
#    (50 table locks, 49 advisory locks and its own xid each), against a hand-written
#    pg_prepared_xacts / pg_locks join measured in the same run.
# 2. Resolution: 100 stale prepared transactions (half decided commit, half presumed abort)
#    resolved by one resolve_stale() call, and one by one with resolve_prepared(), against
#    plain COMMIT/ROLLBACK PREPARED issued by hand; reported per transaction.
# Sourced by test/bench/run.sh (lib.sh loaded, server running, BENCH_RESULT set).

tpc_secs=$(bench_seconds 3)
tpc_reps=$(bench_reps 3)
bench_plan $((3 * tpc_reps)) "$tpc_secs"
# the restart, 100 prepared transactions made 3 times per repetition, the resolutions (the
# set of 2026-12-04: 38 s in all for 3 repetitions of 3 s runs, so about 3 s per repetition)
bench_plan_extra $((5 + 3 * tpc_reps))
bench_plan_done

bench_sql 'ALTER SYSTEM SET max_prepared_transactions = 150' >/dev/null
cluster_stop "$BENCH_DIR" fast
cluster_start "$BENCH_DIR"
bench_sql_file "$WORK/test/bench/twophase/setup.sql"

# tpc_make N: N prepared transactions named by tpc_gid(); even ones have a commit decision.
tpc_make() {
	local i
	{
		for i in $(seq 1 "$1"); do
			echo "BEGIN; SELECT consistency.tpc_gid() AS gid \\gset"
			[ $((i % 2)) = 0 ] && echo "SELECT consistency.tpc_log_decision(:'gid') \\g /dev/null"
			echo "COMMIT;"
			echo "BEGIN;"
			echo "LOCK TABLE $(seq -s, -f 'bench_t%g' 1 50) IN ACCESS SHARE MODE;"
			echo "SELECT count(pg_advisory_xact_lock($i * 1000 + g)) FROM generate_series(1, 49) g \\g /dev/null"
			echo "PREPARE TRANSACTION :'gid';"
		done
	} | cluster_psql "$BENCH_DIR" "$BENCH_PORT" -d bench -q >/dev/null
}
now_ms() { date +%s%3N; }

tpc_make 100
tpc_locks=$(bench_sql "SELECT sum(lock_count) FROM consistency.prepared_xacts()")
info "100 prepared transactions holding $tpc_locks locks"
list_runs='' base_runs='' plain_runs=''
for rep in $(seq 1 "$tpc_reps"); do
	read -r _tps mean p99 _n < <(pgbench_run "$WORK/test/bench/twophase/listing.sql" 1 "$tpc_secs")
	info "run $rep, prepared_xacts(): mean $mean ms, p99 $p99 ms"
	list_runs="$list_runs $mean"
	read -r _tps mean p99 _n < <(pgbench_run "$WORK/test/bench/twophase/baseline.sql" 1 "$tpc_secs")
	info "run $rep, pg_prepared_xacts/pg_locks join: mean $mean ms"
	base_runs="$base_runs $mean"
	read -r _tps mean p99 _n < <(pgbench_run "$WORK/test/bench/twophase/plain.sql" 1 "$tpc_secs")
	info "run $rep, plain pg_prepared_xacts + count(pg_locks): mean $mean ms"
	plain_runs="$plain_runs $mean"
done
# shellcheck disable=SC2086
tpc_list_ms=$(median $list_runs)
# shellcheck disable=SC2086
tpc_base_ms=$(median $base_runs)
# shellcheck disable=SC2086
tpc_plain_ms=$(median $plain_runs)

# Resolution: resolve_stale (one worker for the database), resolve_prepared one by one (a
# worker each), and plain COMMIT/ROLLBACK PREPARED by hand; 100 transactions each time.
stale_runs='' one_runs='' hand_runs=''
for rep in $(seq 1 "$tpc_reps"); do
	t0=$(now_ms)
	bench_sql "SELECT count(*) FROM consistency.resolve_stale('0', dry_run => false) WHERE executed" >/dev/null
	t1=$(now_ms)
	stale_runs="$stale_runs $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 100 }')"
	[ "$(bench_sql 'SELECT count(*) FROM pg_prepared_xacts')" = 0 ] || die "resolve_stale left prepared transactions"

	tpc_make 100
	bench_sql "SELECT string_agg(format('SELECT outcome FROM consistency.resolve_prepared(%L, dry_run => false);', gid), E'\n')
	             FROM pg_prepared_xacts" >"$WORK/tpc_one.sql"
	t0=$(now_ms)
	cluster_psql "$BENCH_DIR" "$BENCH_PORT" -d bench -At -f "$WORK/tpc_one.sql" >/dev/null
	t1=$(now_ms)
	one_runs="$one_runs $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 100 }')"

	tpc_make 100
	bench_sql "SELECT string_agg(format('%s PREPARED %L;', CASE WHEN verdict = 'commit' THEN 'COMMIT' ELSE 'ROLLBACK' END, gid), E'\n')
	             FROM consistency.prepared_xacts()" >"$WORK/tpc_hand.sql"
	t0=$(now_ms)
	cluster_psql "$BENCH_DIR" "$BENCH_PORT" -d bench -At -f "$WORK/tpc_hand.sql" >/dev/null
	t1=$(now_ms)
	hand_runs="$hand_runs $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 100 }')"
	info "run $rep, per transaction: resolve_stale $(echo "$stale_runs" | awk '{print $NF}') ms, resolve_prepared $(echo "$one_runs" | awk '{print $NF}') ms, by hand $(echo "$hand_runs" | awk '{print $NF}') ms"
	[ "$rep" = "$tpc_reps" ] || tpc_make 100
done
# shellcheck disable=SC2086
tpc_stale_ms=$(median $stale_runs)
# shellcheck disable=SC2086
tpc_one_ms=$(median $one_runs)
# shellcheck disable=SC2086
tpc_hand_ms=$(median $hand_runs)

{
	echo "## In-doubt two-phase commit"
	echo
	bench_environment
	echo
	echo "Listing: 100 prepared transactions holding $tpc_locks locks (50 table locks, 49 advisory"
	echo "locks and the xid each; gids from \`tpc_gid()\`, half with a logged decision), one client,"
	echo "mean latency of ${tpc_secs}s pgbench runs, median of ${tpc_reps}. The baseline is the hand-written"
	echo "\`pg_prepared_xacts\` / \`pg_locks\` join giving each transaction's lock count (no relations,"
	echo "no blocked pids, no verdict; \`pg_locks\` joined to itself), and the floor is reading both views"
	echo "without joining them. Resolution: 100 prepared transactions (50 commit, 50 presumed"
	echo "abort) resolved with \`dry_run => false\`; wall time / 100, median of ${tpc_reps}. Each"
	echo "\`resolve_prepared\` call starts a background worker; \`resolve_stale\` starts one per database."
	echo
	echo "| measure | value | goal |"
	echo "|---|---:|---|"
	echo "| \`prepared_xacts()\` latency (ms) | $tpc_list_ms | ≤ 50 ms |"
	echo "| hand-written pg_prepared_xacts/pg_locks join (ms) | $tpc_base_ms | (baseline) |"
	echo "| plain \`SELECT * FROM pg_prepared_xacts\` + \`count(*) FROM pg_locks\` (ms) | $tpc_plain_ms | (floor) |"
	echo "| \`prepared_xacts()\` / hand-written join | $(ratio "$tpc_list_ms" "$tpc_base_ms") | |"
	echo "| \`prepared_xacts()\` / plain reads | $(ratio "$tpc_list_ms" "$tpc_plain_ms") | |"
	echo "| \`resolve_stale\`, per transaction (ms) | $tpc_stale_ms | ≤ 50 ms (Citus: 60 s recovery interval) |"
	echo "| \`resolve_prepared\` one by one, per transaction (ms) | $tpc_one_ms | ≤ 50 ms |"
	echo "| COMMIT/ROLLBACK PREPARED by hand, per transaction (ms) | $tpc_hand_ms | (baseline) |"
	echo "| \`resolve_stale\` / by hand | $(ratio "$tpc_stale_ms" "$tpc_hand_ms") | |"
	echo "| \`resolve_prepared\` / by hand | $(ratio "$tpc_one_ms" "$tpc_hand_ms") | |"
} >"$BENCH_RESULT"
