# Benchmark section: session LSN tokens (read-your-writes).
# 1. Primary: pgbench write TPS with the library loaded in every session (the token is
#    reported at each commit) vs not loaded; 1 and 8 clients, interleaved runs.
# 2. Standby: time from "the write committed on the primary" to "a read on the standby may
#    proceed" -- a tight client busy-poll of pg_last_wal_replay_lsn() (~ the replication lag
#    itself), a client polling every 10 ms, SET consistency.read_after with the replay
#    watcher (shared_preload_libraries) and with the 1 ms polling fallback
#    (session_preload_libraries); and the CPU a standby spends while 100 sessions wait.
# Sourced by test/bench/run.sh (lib.sh loaded, server running, BENCH_RESULT set).

rw_dir=$WORK/test/bench/read-your-writes
# 3 s runs (5 s before issue 13's floors and yardstick were added): the set's 20-minute budget.
rw_secs=$(bench_seconds 3)
rw_reps=$(bench_reps 3)
rw_samples=$([ "${BENCH_QUICK:-0}" = 1 ] && echo 60 || echo 300)
rw_cpu_secs=$([ "${BENCH_QUICK:-0}" = 1 ] && echo 2 || echo 3)
bench_plan $((2 * rw_reps * 2)) "$rw_secs"
# two standbys, the latency samples (four methods each), four CPU windows
bench_plan_extra $((12 + rw_samples / 25 + 4 * rw_cpu_secs))
bench_plan_extra 22	# instructions per transaction: one callgrind server, six pgbench runs
bench_plan_done

mkdir -p "$(dirname "$BENCH_RESULT")"
bench_sql_file "$rw_dir/setup.sql"

rw_preload() {	# on or off: new sessions load the library or not
	if [ "$1" = on ]; then
		bench_sql "ALTER SYSTEM SET session_preload_libraries = 'consistency'" >/dev/null
	else
		bench_sql "ALTER SYSTEM RESET session_preload_libraries" >/dev/null
	fi
	bench_sql "SELECT pg_reload_conf()" >/dev/null
	sleep 0.2
}

declare -A rw_tps rw_p99
for clients in 1 8; do
	declare -A runs=() p99s=()
	for rep in $(seq 1 "$rw_reps"); do
		for v in off on; do
			rw_preload $v
			read -r tps _mean p99 _n < <(pgbench_run "$rw_dir/write.sql" "$clients" "$rw_secs")
			info "$clients clients, run $rep, library $v: $(fmt0 "$tps") tps, p99 $p99 ms"
			runs[$v]="${runs[$v]:-} $tps"
			p99s[$v]="${p99s[$v]:-} $p99"
		done
	done
	for v in off on; do
		# shellcheck disable=SC2086
		rw_tps[$v,$clients]=$(median ${runs[$v]})
		# shellcheck disable=SC2086
		rw_p99[$v,$clients]=$(median ${p99s[$v]})
	done
	unset runs p99s
done

# Instructions per write transaction, not loaded and loaded, in the backend and in pgbench
# (the report's message is read by the client's libpq): the same ratio without the noise.
rw_preload off
declare -A rw_instr
{ read -r "rw_instr[off,backend]" "rw_instr[off,client]"; read -r "rw_instr[on,backend]" "rw_instr[on,client]"; } < \
	<(bench_session_instructions 100 400 "$rw_dir/write.sql" "" "$rw_dir/write.sql" "-c session_preload_libraries=consistency")
for v in off on; do
	[ -n "${rw_instr[$v,client]:-}" ] || die "no instruction count for the write transaction, library $v"
	rw_instr[$v,total]=$((rw_instr[$v,backend] + rw_instr[$v,client]))
	info "instructions per write transaction, library $v: backend ${rw_instr[$v,backend]}, pgbench ${rw_instr[$v,client]}"
done
rw_preload on

# Two streaming standbys of the benchmark server, each with a replication slot made before
# either base backup: the second backup's checkpoint would otherwise remove WAL the first
# standby has not streamed yet, and it would never catch up.
rw_watched=$WORK/bench-rw-watched.$RANDOM
rw_polling=$WORK/bench-rw-polling.$RANDOM
rw_stop_standbys() {
	cluster_stop "$rw_watched" fast
	cluster_stop "$rw_polling" fast
	rm -rf "$rw_watched" "$rw_polling"
}
bench_at_exit rw_stop_standbys
bench_sql "SELECT pg_create_physical_replication_slot(s, true) FROM unnest('{rw_watched,rw_polling}'::text[]) s" >/dev/null
cluster_standby "$BENCH_DIR" "$BENCH_PORT" "$rw_watched" 5461 \
	"shared_buffers = 128MB" "shared_preload_libraries = 'consistency'" "primary_slot_name = 'rw_watched'"
cluster_standby "$BENCH_DIR" "$BENCH_PORT" "$rw_polling" 5462 \
	"shared_buffers = 128MB" "session_preload_libraries = 'consistency'" "primary_slot_name = 'rw_polling'"
cluster_start "$rw_watched"
cluster_start "$rw_polling"
for _ in $(seq 1 100); do
	[ "$(bench_sql "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 2 ] && break
	sleep 0.1
done
[ "$(bench_sql "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 2 ] ||
	{ tail -n 5 "$rw_watched/server.log" "$rw_polling/server.log" >&2; die "the standbys are not streaming"; }
rw_out=$(as_user /usr/bin/python3 "$rw_dir/latency.py" \
	--primary "host=$BENCH_DIR port=$BENCH_PORT dbname=bench" \
	--watched "host=$rw_watched port=5461 dbname=bench" \
	--polling "host=$rw_polling port=5462 dbname=bench" \
	--watched-pid "$(head -n 1 "$rw_watched/data/postmaster.pid")" \
	--polling-pid "$(head -n 1 "$rw_polling/data/postmaster.pid")" \
	--samples "$rw_samples" --cpu-seconds "$rw_cpu_secs") || die "latency driver failed"
rw_stop_standbys
bench_sql "SELECT pg_drop_replication_slot(s) FROM unnest('{rw_watched,rw_polling}'::text[]) s" >/dev/null
printf '%s\n' "$rw_out" | sed 's/^/    /'

rw_lat() { printf '%s\n' "$rw_out" | awk -v m="$1" -v f="$2" '$1 == m { print $f }'; }
rw_cpu() { printf '%s\n' "$rw_out" | awk -v s="$1" -v n="$2" '$1 == "cpu" && $2 == s && $3 == n { print $4 }'; }
rw_added() { awk -v a="$(rw_lat "$1" "$2")" -v b="$(rw_lat busy "$2")" 'BEGIN { printf "%+.3f", a - b }'; }

{
	echo "## Session LSN tokens"
	echo
	bench_environment
	echo
	echo "**Primary: write TPS with the token reported at every commit.** pgbench \`-M prepared\`,"
	echo "one-row UPDATE per transaction on 10,000 rows, ${rw_secs}s runs, median of ${rw_reps}; \"loaded\" ="
	echo "\`session_preload_libraries = 'consistency'\` (the commit callback formats the token and"
	echo "sends it in a \`consistency.last_commit_token\` ParameterStatus message)."
	echo
	echo "| clients | measure | ratio | goal | rates (tps) | p99 (ms) |"
	echo "|---:|---|---:|---|---|---|"
	for c in 1 8; do
		echo "| $c | library loaded / not loaded | $(ratio "${rw_tps[on,$c]}" "${rw_tps[off,$c]}") | ≥ 0.99 | $(fmt0 "${rw_tps[on,$c]}") / $(fmt0 "${rw_tps[off,$c]}") | ${rw_p99[on,$c]} / ${rw_p99[off,$c]} |"
	done
	echo
	echo "The same transaction's instructions, counted by callgrind in the backend that serves"
	echo "pgbench and in pgbench, whose libpq reads the report (1 client; 400 transactions less 100)."
	echo "Where the rates are CPU-bound, not loaded over loaded is the ratio above without the"
	echo "machine's noise:"
	echo
	echo "| library | backend | pgbench | total | not loaded / loaded | goal |"
	echo "|---|---:|---:|---:|---:|---|"
	echo "| not loaded | ${rw_instr[off,backend]} | ${rw_instr[off,client]} | ${rw_instr[off,total]} | | |"
	echo "| loaded | ${rw_instr[on,backend]} | ${rw_instr[on,client]} | ${rw_instr[on,total]} | $(ratio "${rw_instr[off,total]}" "${rw_instr[on,total]}") | ≥ 0.99 |"
	echo
	echo "**Standby: from \"write committed\" to \"read may proceed\".** One fresh write per sample, the"
	echo "methods interleaved, $rw_samples samples each, Python client (psycopg) on the same machine."
	echo "\"busy-poll\" re-reads \`pg_last_wal_replay_lsn()\` in a tight loop: it is the replication lag"
	echo "itself plus one round trip, the baseline; \"added\" is the difference to it."
	echo
	echo "| method | p50 (ms) | p99 (ms) | added p50 | added p99 | goal |"
	echo "|---|---:|---:|---:|---:|---|"
	echo "| client busy-poll (baseline) | $(rw_lat busy 2) | $(rw_lat busy 3) | | | |"
	echo "| \`SET consistency.read_after\`, replay watcher (shared_preload_libraries) | $(rw_lat watched 2) | $(rw_lat watched 3) | $(rw_added watched 2) | $(rw_added watched 3) | added p99 ≤ 1 ms |"
	echo "| \`SET consistency.read_after\`, 1 ms polling (session_preload_libraries) | $(rw_lat polling 2) | $(rw_lat polling 3) | $(rw_added polling 2) | $(rw_added polling 3) | |"
	echo "| client polling every 10 ms | $(rw_lat poll10ms 2) | $(rw_lat poll10ms 3) | $(rw_added poll10ms 2) | $(rw_added poll10ms 3) | |"
	echo "| fixed 2 s primary pin (reads go to the primary for 2 s after a write) | 2000 | 2000 | | | (by construction) |"
	echo
	echo "**CPU while sessions wait** on a paused standby (whole standby, all processes, % of one core,"
	echo "${rw_cpu_secs}s window):"
	echo
	echo "| standby | nobody waiting | 100 sessions waiting |"
	echo "|---|---:|---:|"
	echo "| replay watcher (shared_preload_libraries) | $(rw_cpu watched 0)% | $(rw_cpu watched 100)% |"
	echo "| 1 ms polling (session_preload_libraries) | $(rw_cpu polling 0)% | $(rw_cpu polling 100)% |"
	echo
	echo "Why: at commit the library compares one LSN and, for a write, formats the token and"
	echo "sends it in one short ParameterStatus message with the commit's reply. (Setting the"
	echo "parameter through PostgreSQL's GUC machinery, as 1.0 did, cost 13k instructions per write"
	echo "on 15, most of it in walking every setting to find the one to report.) A waiter"
	echo "sleeps on its latch; the replay watcher reads the replay position every 0.5 ms only"
	echo "while somebody waits and wakes exactly the waiters whose commit was replayed, so 100"
	echo "waiters cost one process polling. Without the watcher every waiter polls every"
	echo "millisecond. A 10 ms client poll adds on average half its period plus a round trip; a"
	echo "fixed pin sends every read for 2 s to the primary regardless of the actual lag."
} >"$BENCH_RESULT"
