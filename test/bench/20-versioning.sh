# Benchmark section: optimistic version-checked updates (issue 3).
# Single-row read-then-update over 100,000 rows: the hand-written
# "UPDATE ... WHERE id = $1 AND version = $2", the version_guard C trigger, the same check as a
# PL/pgSQL trigger, and update_versioned.  1 and 16 clients; medians of interleaved runs; the
# HOT-update ratio of each variant's table from pg_stat_user_tables.
# Sourced by test/bench/run.sh (lib.sh loaded, server running, BENCH_RESULT set).

bench_sql_file "$WORK/test/bench/versioning/setup.sql"
ver_load_start=$(cut -d' ' -f1-3 /proc/loadavg)
ver_variants=(plain c_trigger plpgsql_trigger update_versioned)
declare -A ver_table=([plain]=items_plain [c_trigger]=items_c [plpgsql_trigger]=items_plpgsql
	[update_versioned]=items_fn)
ver_secs=$(bench_seconds 10)
ver_reps=$(bench_reps 3)
declare -A ver_tps ver_p99
for clients in 1 16; do
	declare -A runs=() p99s=()
	for rep in $(seq 1 "$ver_reps"); do
		for v in "${ver_variants[@]}"; do
			# 16 clients over 100k rows rarely pick the same row at once; when they do, the
			# loser's 40001 is retried like any application would (the plain variant's loser
			# updates 0 rows instead).
			read -r tps _mean p99 _n < <(pgbench_run "$WORK/test/bench/versioning/$v.sql" "$clients" \
				"$ver_secs" --max-tries=10)
			info "$clients clients, run $rep, $v: $(fmt0 "$tps") tps, p99 $p99 ms"
			runs[$v]="${runs[$v]:-} $tps"
			p99s[$v]="${p99s[$v]:-} $p99"
		done
	done
	for v in "${ver_variants[@]}"; do
		# shellcheck disable=SC2086
		ver_tps[$v,$clients]=$(median ${runs[$v]})
		# shellcheck disable=SC2086
		ver_p99[$v,$clients]=$(median ${p99s[$v]})
	done
	unset runs p99s
done

# Every pgbench backend has exited, so its table statistics are flushed.
declare -A ver_upd ver_hot
for v in "${ver_variants[@]}"; do
	read -r ver_upd[$v] ver_hot[$v] < <(bench_sql "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
		WHERE relid = '${ver_table[$v]}'::regclass" -F ' ')
done

# CPU per row without commits (the pgbench figures above are dominated by the commit's WAL
# flush, and by whatever else runs on the machine): one 20,000-row UPDATE statement per
# trigger variant, and 20,000 read-then-update calls from PL/pgSQL, hand-written and through
# update_versioned; each rolled back.  Measured as the backend's user CPU time
# (log_statement_stats, i.e. getrusage), which other processes' load disturbs far less than
# elapsed time; median of interleaved repetitions.
ver_cpu_rows=20000
ver_cpu_reps=$(bench_reps 7)
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

ver_load_end=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$(dirname "$BENCH_RESULT")"
{
	echo "## Optimistic versioning"
	echo
	bench_environment
	echo
	echo "_Load average (1, 5, 15 min) $ver_load_start at the start of this section, $ver_load_end at"
	echo "the end, on $(nproc) cores: above the core count, other processes competed for the CPU and"
	echo "the pgbench rates are noisy; the CPU-time table below is the robust comparison._"
	echo
	echo "Each transaction reads one of 100,000 rows' version, then updates the row with it (a new"
	echo "random price): \`plain\` is the hand-written \`UPDATE ... SET price = \$p, version = version + 1"
	echo "WHERE id = \$1 AND version = \$2\`; \`C trigger\` sends \`SET price = \$p, version = \$v\` and"
	echo "\`consistency.version_guard\` checks and bumps; \`PL/pgSQL trigger\` is the same check written"
	echo "in PL/pgSQL; \`update_versioned\` is \`SELECT consistency.update_versioned(...)\` with jsonb key"
	echo "and changes, no trigger. One table per variant (fillfactor 90, version not indexed)."
	echo "pgbench \`-M prepared --max-tries=10\`, ${ver_secs}s runs, median of ${ver_reps}."
	echo
	echo "| clients | measure | ratio | goal | rates (tps) |"
	echo "|---:|---|---:|---|---|"
	for c in 1 16; do
		p=${ver_tps[plain,$c]} ct=${ver_tps[c_trigger,$c]} pt=${ver_tps[plpgsql_trigger,$c]}
		uv=${ver_tps[update_versioned,$c]}
		echo "| $c | C trigger / plain | $(ratio "$ct" "$p") | ≥ 0.97 | $(fmt0 "$ct") / $(fmt0 "$p") |"
		echo "| $c | PL/pgSQL trigger / plain | $(ratio "$pt" "$p") | (baseline) | $(fmt0 "$pt") / $(fmt0 "$p") |"
		echo "| $c | C trigger overhead / PL/pgSQL trigger overhead | $(overhead_share "$ct" "$pt" "$p") | < 0.5 | $(overhead "$ct" "$p") / $(overhead "$pt" "$p") |"
		echo "| $c | update_versioned / plain | $(ratio "$uv" "$p") | ≥ 0.90 | $(fmt0 "$uv") / $(fmt0 "$p") |"
	done
	echo
	echo "p99 latency (ms), same runs:"
	echo
	echo "| clients | plain | C trigger | PL/pgSQL trigger | update_versioned |"
	echo "|---:|---:|---:|---:|---:|"
	for c in 1 16; do
		echo "| $c | ${ver_p99[plain,$c]} | ${ver_p99[c_trigger,$c]} | ${ver_p99[plpgsql_trigger,$c]} | ${ver_p99[update_versioned,$c]} |"
	done
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
	echo "HOT updates (\`n_tup_hot_upd / n_tup_upd\` from \`pg_stat_user_tables\`, all runs; goal: the"
	echo "same for every variant):"
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
	echo "update_versioned runs the same UPDATE through an SPI plan prepared once per backend and"
	echo "column set (a generic plan, never re-planned); its cost over the hand-written statement is"
	echo "the outer \`SELECT\`, building and reading the jsonb arguments, and one catalog-cache probe"
	echo "per column. None of the variants changes an indexed column, so all updates can be HOT."
} >"$BENCH_RESULT"
