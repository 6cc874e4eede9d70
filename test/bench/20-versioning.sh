# Benchmark section: optimistic version-checked updates (issues 3 and 13).
# Single-row read-then-update over 100,000 rows: the hand-written
# "UPDATE ... WHERE id = $1 AND version = $2", the version_guard C trigger, update_versioned,
# and the hand-written statement on a table with a no-op trigger (any trigger's floor),
# measured CPU-bound, where a commit's WAL flush does not swamp the difference: once with
# synchronous_commit = off and once with fsync = off (the commit writes its WAL but nothing
# waits for the disk), the two settings and the variants interleaved in every repetition.
# 1 and 16 clients, medians of 5.  Then the backend CPU per row without commits (the PL/pgSQL
# trigger and a no-op trigger included) and the HOT-update ratio of each variant's table.
# Sourced by test/bench/run.sh (lib.sh loaded, server running, BENCH_RESULT set).

ver_variants=(plain c_trigger update_versioned noop_trigger)
declare -A ver_table=([plain]=items_plain [c_trigger]=items_c [plpgsql_trigger]=items_plpgsql
	[update_versioned]=items_fn [noop_trigger]=items_noop)
ver_settings=(sync_off fsync_off)
ver_clients=(1 16)
ver_secs=$(bench_seconds 2)
ver_reps=$(bench_reps 5)
ver_cpu_reps=$(bench_reps 5)
bench_plan $((${#ver_settings[@]} * ${#ver_clients[@]} * ver_reps * ${#ver_variants[@]})) "$ver_secs"
bench_plan_extra $((10 + 3 * ver_cpu_reps))	# setup, the CPU-time table
bench_plan_extra 45	# instructions per transaction: one callgrind server, 4 variants of 3 runs
bench_plan_done

bench_sql_file "$WORK/test/bench/versioning/setup.sql"

# Instructions per pgbench transaction, in the backend that serves pgbench and in pgbench
# (bench_session_instructions), with synchronous_commit = off as in the CPU-bound runs below.
# A single-user backend (bench_instructions) would miss what a session that loaded the library
# sends its client at each commit: the C trigger's and update_versioned's sessions load it,
# plain's do not.
declare -A ver_instr_be ver_instr_cl ver_instr
ver_cg_args=()
for v in "${ver_variants[@]}"; do
	ver_cg_args+=("$WORK/test/bench/versioning/$v.sql" "-c synchronous_commit=off")
done
mapfile -t ver_cg_counts < <(bench_session_instructions 100 400 "${ver_cg_args[@]}")
for i in "${!ver_variants[@]}"; do
	v=${ver_variants[$i]}
	read -r "ver_instr_be[$v]" "ver_instr_cl[$v]" <<<"${ver_cg_counts[$i]:-}"
	[ -n "${ver_instr_cl[$v]}" ] || die "no instruction count for $v"
	ver_instr[$v]=$((ver_instr_be[$v] + ver_instr_cl[$v]))
	info "instructions per transaction, $v: backend ${ver_instr_be[$v]}, pgbench ${ver_instr_cl[$v]}"
done

# ver_setting sync_off|fsync_off|on: synchronous_commit for new sessions, fsync for the server.
# A reload is asynchronous: wait until a new session sees the new fsync, so that no run starts
# with the old one.
ver_setting() {
	local fsync=on i
	case $1 in
	sync_off) bench_sql "ALTER DATABASE bench SET synchronous_commit = off" -c "ALTER SYSTEM SET fsync = on" >/dev/null ;;
	fsync_off) fsync=off
		bench_sql "ALTER DATABASE bench RESET synchronous_commit" -c "ALTER SYSTEM SET fsync = off" >/dev/null ;;
	on) bench_sql "ALTER DATABASE bench RESET synchronous_commit" -c "ALTER SYSTEM RESET fsync" >/dev/null ;;
	esac
	bench_sql "SELECT pg_reload_conf()" >/dev/null
	for i in $(seq 1 100); do
		[ "$(bench_sql 'SHOW fsync')" = "$fsync" ] && return 0
		sleep 0.05
	done
	die "the server did not take fsync = $fsync"
}
declare -A ver_label=([sync_off]="synchronous_commit = off" [fsync_off]="fsync = off")

declare -A ver_tps ver_p99 ver_runs
for clients in "${ver_clients[@]}"; do
	declare -A runs=() p99s=()
	for rep in $(seq 1 "$ver_reps"); do
		for setting in "${ver_settings[@]}"; do
			ver_setting "$setting"
			BENCH_STAGE=${ver_label[$setting]}
			# each repetition starts with another variant, so none always runs first
			for i in "${!ver_variants[@]}"; do
				v=${ver_variants[$(((i + rep) % ${#ver_variants[@]}))]}
				# 16 clients over 100k rows rarely pick the same row at once; when they do, the
				# loser's 40001 is retried like any application would (the plain variant's loser
				# updates 0 rows instead).
				read -r tps _mean p99 _n < <(pgbench_run "$WORK/test/bench/versioning/$v.sql" "$clients" \
					"$ver_secs" --max-tries=10)
				info "$setting, $clients clients, run $rep, $v: $(fmt0 "$tps") tps, p99 $p99 ms"
				runs[$setting,$v]="${runs[$setting,$v]:-} $tps"
				p99s[$setting,$v]="${p99s[$setting,$v]:-} $p99"
			done
		done
	done
	for setting in "${ver_settings[@]}"; do
		for v in "${ver_variants[@]}"; do
			ver_runs[$setting,$v,$clients]=${runs[$setting,$v]}
			# shellcheck disable=SC2086
			ver_tps[$setting,$v,$clients]=$(median ${runs[$setting,$v]})
			# shellcheck disable=SC2086
			ver_p99[$setting,$v,$clients]=$(median ${p99s[$setting,$v]})
		done
	done
	unset runs p99s
done
# shellcheck disable=SC2034 # read by lib.sh's bench_progress
BENCH_STAGE=
ver_setting on

# Every pgbench backend has exited, so its table statistics are flushed.
declare -A ver_upd ver_hot
for v in "${ver_variants[@]}"; do
	read -r "ver_upd[$v]" "ver_hot[$v]" < <(bench_sql "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
		WHERE relid = '${ver_table[$v]}'::regclass" -F ' ')
done

# CPU per row without commits (the pgbench figures above still include the commit, the
# client's round trips, and whatever else runs on the machine): one 20,000-row UPDATE statement per
# trigger variant, and 20,000 read-then-update calls from PL/pgSQL, hand-written and through
# update_versioned; each rolled back.  Measured as the backend's user CPU time
# (log_statement_stats, i.e. getrusage), which other processes' load disturbs far less than
# elapsed time; median of interleaved repetitions.
ver_cpu_rows=20000
declare -A ver_cpu_sql=(
	[plain]="UPDATE items_plain SET price = price + 1, version = version + 1 WHERE id <= $ver_cpu_rows"
	[noop_trigger]="UPDATE items_noop SET price = price + 1, version = version + 1 WHERE id <= $ver_cpu_rows"
	[c_trigger]="UPDATE items_c SET price = price + 1, version = version WHERE id <= $ver_cpu_rows"
	[plpgsql_trigger]="UPDATE items_plpgsql SET price = price + 1, version = version WHERE id <= $ver_cpu_rows"
	[loop_handwritten]="SELECT loop_handwritten($ver_cpu_rows)"
	[loop_update_versioned]="SELECT loop_update_versioned($ver_cpu_rows)"
)
ver_cpu_variants=(plain noop_trigger c_trigger plpgsql_trigger loop_handwritten loop_update_versioned)
# ver_user_ms SQL: user CPU milliseconds the backend spent on SQL, rolled back.
ver_user_ms() {
	bench_sql "SET client_min_messages = log" -c "SET log_statement_stats = on" \
		-c "SELECT time_rolled_back(\$\$$1\$\$)" 2>&1 >/dev/null |
		sed -nE 's/^!\s+([0-9.]+) s user, .*/\1/p' | head -n 1 | awk '{ printf "%.3f", 1000 * $1 }'
}
declare -A ver_cpu_runs ver_cpu
for rep in $(seq 1 "$ver_cpu_reps"); do
	bench_sql 'VACUUM items_plain, items_noop, items_c, items_plpgsql, items_fn' >/dev/null
	for v in "${ver_cpu_variants[@]}"; do
		ver_cpu_runs[$v]="${ver_cpu_runs[$v]:-} $(ver_user_ms "${ver_cpu_sql[$v]}")"
	done
done
for v in "${ver_cpu_variants[@]}"; do
	# shellcheck disable=SC2086
	ver_cpu[$v]=$(median ${ver_cpu_runs[$v]})
done
info "CPU per row (us): $(for v in "${ver_cpu_variants[@]}"; do
	printf '%s %s  ' "$v" "$(awk -v ms="${ver_cpu[$v]}" -v n="$ver_cpu_rows" 'BEGIN { printf "%.2f", 1000 * ms / n }')"
done)"
us_per_row() { awk -v ms="$1" -v n="$ver_cpu_rows" 'BEGIN { printf "%.2f", 1000 * ms / n }'; }
us_over() { awk -v a="$1" -v b="$2" -v n="$ver_cpu_rows" 'BEGIN { printf "%+.2f", 1000 * (a - b) / n }'; }

# overhead A B: how much slower A is than B, in percent (negative: faster, i.e. noise).
overhead() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.1f%%", 100 * (1 - a / b) }'; }
# overhead_share C P B: C's overhead over B as a fraction of P's overhead over B.
overhead_share() {
	awk -v c="$1" -v p="$2" -v b="$3" 'BEGIN { if (b == p) print "n/a"; else printf "%.2f", (b - c) / (b - p) }'
}

# ver_paired A B (setting and clients from the caller's loop): A / B paired by repetition.
ver_paired() { paired_ratio "${ver_runs[$setting,$1,$c]}" "${ver_runs[$setting,$2,$c]}"; }
ver_goal() {	# ratio goal -> met / not met
	awk -v m="$1" -v g="$2" 'BEGIN { if (m == "n/a") print "n/a"; else if (m + 0 >= g + 0) print "met"; else print "**not met**" }'
}
mkdir -p "$(dirname "$BENCH_RESULT")"
{
	echo "## Optimistic versioning"
	echo
	bench_environment
	echo
	echo "Each transaction reads one of 100,000 rows' version, then updates the row with it (a new"
	echo "random price): \`plain\` is the hand-written \`UPDATE ... SET price = \$p, version = version + 1"
	echo "WHERE id = \$1 AND version = \$2\`; \`C trigger\` sends \`SET price = \$p, version = \$v\` and"
	echo "\`consistency.version_guard\` checks and bumps; \`update_versioned\` is"
	echo "\`SELECT consistency.update_versioned(...)\` with jsonb key and changes, no trigger. One table"
	echo "per variant (fillfactor 90, version not indexed); \`plain + a no-op trigger\` is \`plain\`'s"
	echo "statement on a table with PostgreSQL's built-in \`suppress_redundant_updates_trigger\`, the"
	echo "floor of any \`BEFORE ROW\` trigger (the executor locks the old row first). Measured"
	echo "CPU-bound, so that a commit's WAL flush (about as long as the whole transaction's CPU here,"
	echo "and as noisy as the disk) does not hide the difference: one table with"
	echo "\`synchronous_commit = off\`, one with \`fsync = off\`"
	echo "(every commit still writes its WAL; nothing waits for the disk). The settings and the"
	echo "variants alternate within every repetition. pgbench \`-M prepared --max-tries=10\`,"
	echo "${ver_secs}s runs, median of ${ver_reps}. Each ratio is the median of the repetitions' own"
	echo "ratios, not the ratio of the medians shown as rates: the machine's speed drifts between"
	echo "repetitions."
	for setting in "${ver_settings[@]}"; do
		echo
		echo "### ${ver_label[$setting]}"
		echo
		echo "| clients | measure | ratio | goal | result | rates (tps) | p99 (ms) |"
		echo "|---:|---|---:|---|---|---|---|"
		for c in "${ver_clients[@]}"; do
			p=${ver_tps[$setting,plain,$c]} ct=${ver_tps[$setting,c_trigger,$c]}
			uv=${ver_tps[$setting,update_versioned,$c]}
			r=$(ver_paired c_trigger plain)
			echo "| $c | C trigger / plain | $r | ≥ 0.97 | $(ver_goal "$r" 0.97) | $(fmt0 "$ct") / $(fmt0 "$p") | ${ver_p99[$setting,c_trigger,$c]} / ${ver_p99[$setting,plain,$c]} |"
			r=$(ver_paired update_versioned plain)
			echo "| $c | update_versioned / hand-written | $r | ≥ 0.90 | $(ver_goal "$r" 0.90) | $(fmt0 "$uv") / $(fmt0 "$p") | ${ver_p99[$setting,update_versioned,$c]} / ${ver_p99[$setting,plain,$c]} |"
			nt=${ver_tps[$setting,noop_trigger,$c]}
			echo "| $c | plain + a no-op trigger / plain (PostgreSQL's floor for any trigger) | $(ver_paired noop_trigger plain) | | | $(fmt0 "$nt") / $(fmt0 "$p") | ${ver_p99[$setting,noop_trigger,$c]} / ${ver_p99[$setting,plain,$c]} |"
			echo "| $c | C trigger / plain + a no-op trigger (the trigger function's own cost) | $(ver_paired c_trigger noop_trigger) | | | $(fmt0 "$ct") / $(fmt0 "$nt") | ${ver_p99[$setting,c_trigger,$c]} / ${ver_p99[$setting,noop_trigger,$c]} |"
		done
	done
	echo
	echo "### CPU per row"
	echo
	echo "Backend user CPU per updated row, without commits (one ${ver_cpu_rows}-row UPDATE per trigger"
	echo "variant; ${ver_cpu_rows} single-row read-then-update calls from PL/pgSQL for the function; rolled"
	echo "back; getrusage via \`log_statement_stats\`; median of ${ver_cpu_reps}). The no-op trigger is PostgreSQL's built-in"
	echo "\`suppress_redundant_updates_trigger\`: the cost of having any BEFORE ROW UPDATE trigger at all"
	echo "(the executor locks the old row, WAL-logging the lock, and materializes both rows before"
	echo "calling it), which no trigger function can avoid."
	echo
	p=${ver_cpu[plain]} n=${ver_cpu[noop_trigger]} ct=${ver_cpu[c_trigger]} pt=${ver_cpu[plpgsql_trigger]}
	lh=${ver_cpu[loop_handwritten]} lu=${ver_cpu[loop_update_versioned]}
	echo "| variant | µs per row | over plain | goal |"
	echo "|---|---:|---:|---|"
	echo "| plain UPDATE | $(us_per_row "$p") | | |"
	echo "| no-op C trigger (floor) | $(us_per_row "$n") | $(us_over "$n" "$p") | |"
	echo "| version_guard (C) | $(us_per_row "$ct") | $(us_over "$ct" "$p") | |"
	echo "| PL/pgSQL trigger | $(us_per_row "$pt") | $(us_over "$pt" "$p") | |"
	echo "| C overhead / PL/pgSQL overhead | | $(overhead_share "$ct" "$pt" "$p") | < 0.5 |"
	echo "| the same, over the no-op floor (the trigger functions' own cost) | | $(overhead_share "$ct" "$pt" "$n") | |"
	echo "| hand-written read + UPDATE (PL/pgSQL loop) | $(us_per_row "$lh") | | |"
	echo "| read + update_versioned (PL/pgSQL loop) | $(us_per_row "$lu") | $(us_over "$lu" "$lh") | |"
	echo "| update_versioned / hand-written (CPU) | | $(ratio "$lu" "$lh") | |"
	echo
	echo "### CPU per transaction: instructions"
	echo
	echo "A pgbench transaction of each variant (its script: read the version, then update, each"
	echo "statement its own transaction, \`-M prepared\`, \`synchronous_commit = off\`), counted by"
	echo "callgrind in the backend that serves pgbench and in pgbench itself (1 client, 400"
	echo "transactions less 100). The C trigger's and update_versioned's sessions load the library,"
	echo "which reports each write's token to the client: pgbench's column is mostly libpq reading"
	echo "that message. Where the rates above are CPU-bound, a variant's rate over plain's is at"
	echo "best plain's total over the variant's: the goal ratios, without the machine's noise."
	echo
	echo "| variant | backend | pgbench | total | plain / variant | goal | result |"
	echo "|---|---:|---:|---:|---:|---|---|"
	for v in "${ver_variants[@]}"; do
		r=$(ratio "${ver_instr[plain]}" "${ver_instr[$v]}")
		cells="$(fmt0 "${ver_instr_be[$v]}") | $(fmt0 "${ver_instr_cl[$v]}") | $(fmt0 "${ver_instr[$v]}")"
		case $v in
		plain) echo "| plain | $cells | | | |" ;;
		c_trigger) echo "| C trigger | $cells | $r | ≥ 0.97 | $(ver_goal "$r" 0.97) |" ;;
		update_versioned) echo "| update_versioned | $cells | $r | ≥ 0.90 | $(ver_goal "$r" 0.90) |" ;;
		noop_trigger) echo "| plain + a no-op trigger (the floor) | $cells | $r | | |" ;;
		esac
	done
	echo
	echo "HOT updates (\`n_tup_hot_upd / n_tup_upd\` from \`pg_stat_user_tables\`, all pgbench runs; goal:"
	echo "the same for every variant):"
	echo
	echo "| variant | updates | HOT updates | HOT ratio |"
	echo "|---|---:|---:|---:|"
	for v in "${ver_variants[@]}"; do
		echo "| $v | ${ver_upd[$v]} | ${ver_hot[$v]} | $(pct "${ver_hot[$v]}" "${ver_upd[$v]}") |"
	done
	echo
	echo "Why: the C trigger reads two attributes and writes one per row, with its arguments parsed"
	echo "once per statement; it runs no SQL and has no SET clause, so no GUC save/restore per row."
	echo "The PL/pgSQL trigger pays its interpreter and a row-variable copy of OLD and NEW per row."
	echo "update_versioned, on a table like this one (no triggers, rules, row-level security, CHECK"
	echo "constraints or generated columns), makes its UPDATE without the executor"
	echo "(src/versioning_direct.c: primary-key lookup, \`heap_update\`, index entries if not HOT),"
	echo "which pays for the outer \`SELECT\` and the jsonb arguments the hand-written statement does"
	echo "not have (in the caller: about 19k instructions, callgrind); through its SPI statement it"
	echo "cost 1.32x the hand-written loop's instructions, directly 1.00x"
	echo "(src/versioning_update.c's header has the counts). None of the variants changes an indexed"
	echo "column, so all updates can be HOT."
} >"$BENCH_RESULT"
