# Benchmark section: inventory reservation against the alternative users weigh, an in-memory
# counter in Redis (issue 13).
# Same run, same clients (64), one hot SKU: consistency.reserve() with 16 slots and
# synchronous_commit on (pgbench) against a Redis Lua script doing what reserve() decides
# (test/bench/redis/reserve.lua: replay a known reservation id, else check the stock, DECRBY
# and record the id), driven by redis-benchmark with EVALSHA and random reservation ids, with
# appendonly and appendfsync always (every write on disk before the reply, like a commit)
# and everysec (up to a second of acknowledged writes lost in a crash).  The Redis server is
# the benchmark's own: loopback, a free port, its own directory, no RDB snapshots, run as the
# unprivileged user and stopped by its pid.  A third variant, a round trip that does nothing
# (test/bench/redis/roundtrip.sql, same clients), is the ceiling of any design that makes one
# SQL call per reservation without sharing work between calls.  A fourth, reserve() on a
# 64-slot SKU (test/bench/redis/reserve64.sql), is what README's first lever, more slots, buys;
# a fifth, reserve_now() on the 16-slot SKU (test/bench/redis/reserve_now16.sql), what sharing
# commits between concurrent autocommit calls buys (the server has the library preloaded).
# Every run also records the machine's CPU and context switches (lib.sh, machine_counters): CPU
# per reservation against Redis's, same run.  Then a profile (perf) of the backends during one
# more reserve() run and one more reserve_now() run: where their CPU goes.
# Sourced by test/bench/run.sh (lib.sh loaded, server running, BENCH_RESULT set).

redis_dir=$WORK/test/bench/redis
redis_clients=64
# 3 s runs (5 s before the 64-slot and reserve_now() variants): the whole benchmark set has a
# 20-minute budget.
redis_secs=$(bench_seconds 3)
redis_reps=$(bench_reps 3)
redis_modes=(always everysec)
redis_profile_secs=$([ "${BENCH_QUICK:-0}" = 1 ] && echo 2 || echo 3)
bench_plan $((redis_reps * (4 + ${#redis_modes[@]}))) "$redis_secs"
bench_plan 2 $((redis_profile_secs + 3))	# the profile runs, reserve() and reserve_now()
bench_plan_extra 15	# the preloaded server, Redis start and stop, two perf reports
bench_plan_done

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
	die "redis-server and redis-benchmark are needed (packages redis-server, redis-tools)"
fi

# A free loopback port for our Redis (nothing answers a connection to it).
redis_port=
for p in $(seq 6400 6499); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then redis_port=$p; break; fi
done
[ -n "$redis_port" ] || die "no free port for Redis in 6400-6499"
redis_home=$WORK/redis
as_user mkdir -p "$redis_home"
redis_cli() { as_user redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# Started in its own directory (cwd too, so run.sh's CPU accounting counts it as ours).
(cd "$redis_home" && as_user redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_home" \
	--save '' --appendonly yes --appendfsync always --auto-aof-rewrite-percentage 0 \
	--daemonize yes --pidfile "$redis_home/redis.pid" --logfile "$redis_home/redis.log") ||
	die "could not start redis-server"
for i in $(seq 1 100); do
	[ "$(redis_cli ping 2>/dev/null)" = PONG ] && [ -s "$redis_home/redis.pid" ] && break
	sleep 0.1
done
[ "$(redis_cli ping 2>/dev/null)" = PONG ] || { tail -n 20 "$redis_home/redis.log" >&2; die "redis-server did not answer"; }
redis_pid=$(cat "$redis_home/redis.pid")
redis_stop() {
	[ -n "$redis_pid" ] || return 0
	bench_stop_pid redis-server "$redis_pid"
	redis_pid=
}
bench_at_exit redis_stop
redis_version=$(redis_cli info server | sed -nE 's/^redis_version:([0-9.]+).*/\1/p')
redis_sha=$(redis_cli script load "$(cat "$redis_dir/reserve.lua")")
[[ $redis_sha =~ ^[0-9a-f]{40}$ ]] || die "could not load the Lua script: $redis_sha"

# Correctness first: the script answers like reserve() (reserve, replay, insufficient).
redis_cli set stock:check 1 >/dev/null
redis_answers=$(for id in id-1 id-1 id-2; do redis_cli evalsha "$redis_sha" 2 stock:check res:check "$id" 1; done
	redis_cli get stock:check)
[ "$(tr '\n' ' ' <<<"$redis_answers")" = "reserved reserved insufficient 0 " ] ||
	die "the Lua script does not answer like reserve(): $redis_answers"

# reserve_now() shares commits only with the library preloaded
bench_server_stop
bench_server_start "shared_preload_libraries = 'consistency'"
bench_sql_file "$redis_dir/setup.sql"

# redis_run MODE: one redis-benchmark run; sets run_rate (reservations/s) and run_p99 (ms).
# The request count aims at redis_secs seconds at the mode's last measured rate.
declare -A redis_guess=([always]=20000 [everysec]=40000)
redis_run() {
	local mode=$1 n before after out u0
	n=$((${redis_guess[$mode]} * redis_secs))
	redis_cli config set appendfsync "$mode" >/dev/null
	redis_cli set stock:hot 1000000000000 >/dev/null
	redis_cli del res:hot >/dev/null
	bench_progress "Redis appendfsync $mode, $redis_clients clients" >&2
	before=$(redis_cli get stock:hot)
	u0=$(machine_counters)
	out=$(cd "$redis_home" && as_user redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$redis_clients" \
		--threads 2 -n "$n" -r 1000000000 --csv \
		evalsha "$redis_sha" 2 stock:hot res:hot __rand_int__ 1 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "redis-benchmark failed"; }
	# shellcheck disable=SC2046,SC2086
	run_usage=$(machine_usage $u0 $(machine_counters))
	after=$(redis_cli get stock:hot)
	run_made=$((before - after))
	# "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
	read -r run_rate run_p99 < <(printf '%s\n' "$out" | awk -F, '/^"test"/ { next } NF >= 7 { gsub(/"/, ""); print $2, $7; exit }')
	[ -n "$run_rate" ] || { printf '%s\n' "$out" >&2; die "no rate in redis-benchmark's output"; }
	# every request reserved one unit (random ids over 10^9 seldom repeat; a repeat replays; -r above
	# 2^31 does not work; redis-benchmark substitutes __rand_int__ only as a whole argument)
	[ $((before - after)) -gt $((n * 99 / 100)) ] || die "Redis reserved $((before - after)) of $n"
	redis_guess[$mode]=$(fmt0 "$run_rate")
}

# Each run below also sets run_usage (machine_usage over the run) and run_made (reservations,
# or round trips, it made).
redis_usage_file=$WORK/redis.usage

# pg_run SCRIPT: one reserve() run; sets run_rate (rows written / seconds) and run_p99.
pg_run() {
	bench_sql "CALL redis_bench_reset(1000000000)" >/dev/null
	read -r _tps _mean run_p99 _n < <(BENCH_USAGE=$redis_usage_file pgbench_run "$redis_dir/$1.sql" "$redis_clients" "$redis_secs")
	run_usage=$(cat "$redis_usage_file")
	run_made=$(bench_sql "SELECT count(*) FROM consistency.reservations")
	run_rate=$(awk -v r="$run_made" -v s="$redis_secs" 'BEGIN { printf "%.1f", r / s }')
}

# trip_run: the round trip that does nothing; sets run_rate and run_p99.
trip_run() {
	read -r run_rate _mean run_p99 run_made < <(BENCH_USAGE=$redis_usage_file pgbench_run "$redis_dir/roundtrip.sql" "$redis_clients" "$redis_secs")
	run_usage=$(cat "$redis_usage_file")
}

declare -A redis_rates redis_p99s redis_rate redis_p99 redis_cpu redis_ctxt redis_time redis_made
redis_variants=(pg pgnow pg64 trip "${redis_modes[@]}")
for rep in $(seq 1 "$redis_reps"); do
	for i in "${!redis_variants[@]}"; do
		v=${redis_variants[$(((i + rep) % ${#redis_variants[@]}))]}
		case $v in
		pg) pg_run reserve16 ;;
		pg64) pg_run reserve64 ;;
		pgnow) pg_run reserve_now16 ;;
		trip) trip_run ;;
		*) redis_run "$v" ;;
		esac
		info "run $rep, $v: $(fmt0 "$run_rate") reservations/s, p99 $run_p99 ms"
		redis_rates[$v]="${redis_rates[$v]:-} $run_rate"
		redis_p99s[$v]="${redis_p99s[$v]:-} $run_p99"
		read -r cpu ctxt elapsed <<<"$run_usage"
		redis_cpu[$v]=$(awk -v a="${redis_cpu[$v]:-0}" -v b="$cpu" 'BEGIN { print a + b }')
		redis_time[$v]=$(awk -v a="${redis_time[$v]:-0}" -v b="$elapsed" 'BEGIN { print a + b }')
		redis_ctxt[$v]=$((${redis_ctxt[$v]:-0} + ctxt))
		redis_made[$v]=$((${redis_made[$v]:-0} + run_made))
	done
done
for v in "${redis_variants[@]}"; do
	# shellcheck disable=SC2086
	redis_rate[$v]=$(median ${redis_rates[$v]})
	# shellcheck disable=SC2086
	redis_p99[$v]=$(median ${redis_p99s[$v]})
done
redis_stop

# Profiles: one more run of each of reserve() and reserve_now() (not measured); once its 64
# backends are connected, perf samples them (and only them) for redis_profile_secs.  DWARF
# call graphs: frame pointers stop at libc's sem_wait, and a PostgreSQL built from source may
# have none.  redis_profile_run SCRIPT [profile.py options]: prints profile.py's tables.
redis_profile_run() {
	local script=$1 pids i bench_pid
	shift
	bench_sql "CALL redis_bench_reset(1000000000)" >/dev/null
	as_user "$PG_BINDIR/pgbench" -h "$BENCH_DIR" -p "$BENCH_PORT" -n -M prepared -c "$redis_clients" -j 2 \
		-T $((redis_profile_secs + 3)) -f "$redis_dir/$script.sql" bench >/dev/null 2>&1 &
	bench_pid=$!
	pids=
	for i in $(seq 1 50); do
		pids=$(bench_sql "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = 'bench'")
		[ "$(tr ',' '\n' <<<"$pids" | grep -c .)" -ge "$redis_clients" ] && break
		sleep 0.1
	done
	bench_progress "perf profile of the $script backends" >&2
	rm -f "$WORK/$script.perf"
	perf record -q --call-graph dwarf -F 499 -p "$pids" -o "$WORK/$script.perf" -- sleep "$redis_profile_secs" >/dev/null 2>&1 || true
	wait "$bench_pid" || true
	if [ -s "$WORK/$script.perf" ]; then
		perf script -i "$WORK/$script.perf" -F ip,sym,dso 2>/dev/null |
			/usr/bin/python3 "$redis_dir/profile.py" "$@"
		rm -f "$WORK/$script.perf"
	fi
}
redis_profile="" redis_profile_now=""
if command -v perf >/dev/null && is_root; then
	redis_profile=$(redis_profile_run reserve16)
	redis_profile_now=$(redis_profile_run reserve_now16 --batches)
fi
no_profile="_No profile: perf is not installed or the benchmark did not run as root._"
[ -n "$redis_profile" ] || redis_profile=$no_profile
[ -n "$redis_profile_now" ] || redis_profile_now=$no_profile

redis_goal() {	# ratio goal -> met / not met
	awk -v m="$1" -v g="$2" 'BEGIN { if (m == "n/a") print "n/a"; else if (m + 0 >= g + 0) print "met"; else print "**not met**" }'
}
{
	echo "## Inventory reservation against a Redis counter"
	echo
	bench_environment
	echo
	echo "The in-memory alternative: a Redis $redis_version Lua script doing what \`reserve()\` decides"
	echo "(replay a known reservation id, else check the stock, \`DECRBY\` and record the id in a hash;"
	echo "\`test/bench/redis/reserve.lua\`), driven by \`redis-benchmark\` (\`EVALSHA\`, a random id per"
	echo "request, 2 threads) over loopback TCP, against \`consistency.reserve()\` and \`consistency.reserve_now()\` on a 16-slot SKU with"
	echo "\`synchronous_commit = on\` (pgbench \`-M prepared\`, 2 threads, Unix socket; reservations"
	echo "counted as rows). $redis_clients clients each, one hot SKU, the same machine and run, ${redis_secs}s runs"
	echo "(Redis: the request count that lasts about as long), median of ${redis_reps}, interleaved. Redis"
	echo "keeps an append-only file: \`appendfsync always\` writes and fsyncs it before replying (a"
	echo "group of concurrent requests shares one fsync, as PostgreSQL's commits share a WAL flush),"
	echo "\`everysec\` fsyncs once a second, so a crash loses up to a second of reservations that were"
	echo "confirmed to buyers."
	echo
	echo "| measure | ratio | goal | result | rates (reservations/s) | p99 (ms) |"
	echo "|---|---:|---|---|---|---|"
	r=$(ratio "${redis_rate[pgnow]}" "${redis_rate[always]}")
	echo "| reserve_now() / Redis, appendfsync always | $r | ≥ 0.5 | $(redis_goal "$r" 0.5) | $(fmt0 "${redis_rate[pgnow]}") / $(fmt0 "${redis_rate[always]}") | ${redis_p99[pgnow]} / ${redis_p99[always]} |"
	r=$(ratio "${redis_rate[pgnow]}" "${redis_rate[pg]}")
	echo "| reserve_now() / reserve() | $r | | | $(fmt0 "${redis_rate[pgnow]}") / $(fmt0 "${redis_rate[pg]}") | ${redis_p99[pgnow]} / ${redis_p99[pg]} |"
	r=$(ratio "${redis_rate[pg]}" "${redis_rate[always]}")
	echo "| reserve() / Redis, appendfsync always | $r | | | $(fmt0 "${redis_rate[pg]}") / $(fmt0 "${redis_rate[always]}") | ${redis_p99[pg]} / ${redis_p99[always]} |"
	r=$(ratio "${redis_rate[pg]}" "${redis_rate[everysec]}")
	echo "| reserve() / Redis, appendfsync everysec | $r | | | $(fmt0 "${redis_rate[pg]}") / $(fmt0 "${redis_rate[everysec]}") | ${redis_p99[pg]} / ${redis_p99[everysec]} |"
	r=$(ratio "${redis_rate[pg64]}" "${redis_rate[always]}")
	echo "| reserve() on 64 slots / Redis, appendfsync always | $r | | | $(fmt0 "${redis_rate[pg64]}") / $(fmt0 "${redis_rate[always]}") | ${redis_p99[pg64]} / ${redis_p99[always]} |"
	r=$(ratio "${redis_rate[pg64]}" "${redis_rate[pg]}")
	echo "| reserve() on 64 slots / on 16 slots | $r | | | $(fmt0 "${redis_rate[pg64]}") / $(fmt0 "${redis_rate[pg]}") | ${redis_p99[pg64]} / ${redis_p99[pg]} |"
	r=$(ratio "${redis_rate[trip]}" "${redis_rate[always]}")
	echo "| a round trip that does nothing / Redis, appendfsync always | $r | | | $(fmt0 "${redis_rate[trip]}") / $(fmt0 "${redis_rate[always]}") | ${redis_p99[trip]} / ${redis_p99[always]} |"
	r=$(ratio "${redis_rate[pg]}" "${redis_rate[trip]}")
	echo "| reserve() / a round trip that does nothing | $r | | | $(fmt0 "${redis_rate[pg]}") / $(fmt0 "${redis_rate[trip]}") | ${redis_p99[pg]} / ${redis_p99[trip]} |"
	echo
	echo "The round trip (\`test/bench/redis/roundtrip.sql\`: a \`SELECT\` of the same random id, pgbench,"
	echo "the same clients) is the ceiling of any design that makes one SQL call per reservation: it"
	echo "tells how much of the gap to Redis is the protocol and the clients (the round trip's own"
	echo "ratio to Redis) and how much is the work each reservation does (the last row): its commit,"
	echo "its lock waits and its executor work, which is what sharing work between calls removes."
	echo "The 64-slot rows (\`test/bench/redis/reserve64.sql\`) show what more slots buy: with 16 slots"
	echo "most of the $redis_clients buyers queue for a slot, whose holder keeps it until its commit is flushed."
	echo "\`reserve_now()\` (\`test/bench/redis/reserve_now16.sql\`, library preloaded) is the same reservation"
	echo "in autocommit with concurrent calls applied together by one of them, in one transaction and"
	echo "one commit (\`src/inventory_combine.c\`): the sharing of work the round trip's row leaves room for."
	echo
	echo "### CPU per reservation"
	echo
	echo "Every run above, machine-wide (\`/proc/stat\`: the servers, the clients and the kernel, summed"
	echo "over the repetitions). A variant that keeps the cores busy makes about as many reservations"
	echo "a second as the cores divided by its CPU per reservation; one that leaves them idle waits for"
	echo "something else (Redis \`always\`: its fsyncs)."
	echo
	echo "| variant | cores busy (of $(nproc)) | CPU per reservation / Redis \`always\`'s | context switches per reservation |"
	echo "|---|---:|---:|---:|"
	for v in always everysec pgnow pg pg64 trip; do
		case $v in
		always | everysec) l="Redis, appendfsync $v" ;;
		pgnow) l="reserve_now(), 16 slots" ;;
		pg) l="reserve(), 16 slots" ;;
		pg64) l="reserve(), 64 slots" ;;
		trip) l="a round trip that does nothing (per round trip)" ;;
		esac
		[ "${redis_made[$v]:-0}" -gt 0 ] || continue
		awk -v l="$l" -v c="${redis_cpu[$v]}" -v t="${redis_time[$v]}" -v x="${redis_ctxt[$v]}" \
			-v n="${redis_made[$v]}" -v bc="${redis_cpu[always]:-0}" -v bn="${redis_made[always]:-0}" 'BEGIN {
				printf "| %s | %.2f | %s | %.2f |\n", l, (t > 0 ? c / t : 0),
					(bc > 0 && bn > 0 ? sprintf("%.2f", (c / n) / (bc / bn)) : "n/a"), x / n }'
	done
	echo
	echo "### Where the CPU goes"
	echo
	echo "\`perf record --call-graph dwarf\` on the $redis_clients backends during one more run of each"
	echo "(${redis_profile_secs}s, not measured above); each sample counts for the innermost PostgreSQL"
	echo "function on its stack that names a part of the server (\`test/bench/redis/profile.py\`), so the"
	echo "kernel's share lands where it was asked for: the fsync under \`XLogFlush\`, the sleep under"
	echo "\`LockAcquire\`, the socket read under \`pq_getbyte\`."
	echo
	echo "\`reserve()\`, 16 slots:"
	echo
	printf '%s\n' "$redis_profile"
	echo
	echo "\`reserve_now()\`, 16 slots; the first table splits the samples by what the backend was doing"
	echo "for the batches (the function named on the stack):"
	echo
	printf '%s\n' "$redis_profile_now"
	echo
	echo "What the gap buys, and what closes it: README, \"Inventory vs an in-memory counter\"."
} >"$BENCH_RESULT"
