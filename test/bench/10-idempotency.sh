# Benchmark section: idempotency keys (issue: foundation + idempotency).
# A "create order" transaction (stock update + order insert) plain, made idempotent with
# idem_begin/idem_complete, and made idempotent by a hand-written PL/pgSQL layer; replays of
# completed requests; and a 50% retry mix.  1 and 16 clients; medians of interleaved runs.
# Sourced by test/bench/run.sh (lib.sh loaded, server running, BENCH_RESULT set).

bench_sql_file "$WORK/test/bench/idempotency/setup.sql"
idem_variants=(plain idem_c idem_plpgsql replay_c replay_plpgsql mix50_c)
idem_secs=$(bench_seconds 10)
idem_reps=$(bench_reps 3)
declare -A idem_tps idem_p99
for clients in 1 16; do
	declare -A runs=() p99s=()
	for rep in $(seq 1 "$idem_reps"); do
		for v in "${idem_variants[@]}"; do
			read -r tps _mean p99 _n < <(pgbench_run "$WORK/test/bench/idempotency/$v.sql" "$clients" "$idem_secs")
			info "$clients clients, run $rep, $v: $(fmt0 "$tps") tps, p99 $p99 ms"
			runs[$v]="${runs[$v]:-} $tps"
			p99s[$v]="${p99s[$v]:-} $p99"
		done
	done
	for v in "${idem_variants[@]}"; do
		# shellcheck disable=SC2086
		idem_tps[$v,$clients]=$(median ${runs[$v]})
		# shellcheck disable=SC2086
		idem_p99[$v,$clients]=$(median ${p99s[$v]})
	done
	unset runs p99s
done

{
	echo "## Idempotency keys"
	echo
	bench_environment
	echo
	echo "\"Create order\" = update one of 10,000 product rows + insert an order, one transaction;"
	echo "idempotent variants add \`idem_begin\` with a fresh key and \`idem_complete\` with a jsonb"
	echo "response. Replays are retries of 100,000 completed keys. pgbench \`-M prepared\`, ${idem_secs}s runs,"
	echo "median of ${idem_reps}."
	echo
	echo "| clients | measure | ratio | goal | rates (tps) |"
	echo "|---:|---|---:|---|---|"
	for c in 1 16; do
		p=${idem_tps[plain,$c]} ic=${idem_tps[idem_c,$c]} ip=${idem_tps[idem_plpgsql,$c]}
		rc=${idem_tps[replay_c,$c]} rp=${idem_tps[replay_plpgsql,$c]} mx=${idem_tps[mix50_c,$c]}
		echo "| $c | idempotent order (C) / plain order | $(ratio "$ic" "$p") | ≥ 0.85 | $(fmt0 "$ic") / $(fmt0 "$p") |"
		echo "| $c | idempotent order (PL/pgSQL baseline) / plain order | $(ratio "$ip" "$p") | (baseline) | $(fmt0 "$ip") / $(fmt0 "$p") |"
		echo "| $c | idempotent order: C / PL/pgSQL | $(ratio "$ic" "$ip") | | $(fmt0 "$ic") / $(fmt0 "$ip") |"
		echo "| $c | replay (C) / idempotent order (C) | $(ratio "$rc" "$ic") | ≥ 1.5 | $(fmt0 "$rc") / $(fmt0 "$ic") |"
		echo "| $c | replay: C / PL/pgSQL | $(ratio "$rc" "$rp") | | $(fmt0 "$rc") / $(fmt0 "$rp") |"
		echo "| $c | 50% retry mix (C) / idempotent order (C) | $(ratio "$mx" "$ic") | | $(fmt0 "$mx") / $(fmt0 "$ic") |"
	done
	echo
	echo "p99 latency (ms), same runs:"
	echo
	echo "| clients | plain | idempotent (C) | idempotent (PL/pgSQL) | replay (C) | replay (PL/pgSQL) |"
	echo "|---:|---:|---:|---:|---:|---:|"
	for c in 1 16; do
		echo "| $c | ${idem_p99[plain,$c]} | ${idem_p99[idem_c,$c]} | ${idem_p99[idem_plpgsql,$c]} | ${idem_p99[replay_c,$c]} | ${idem_p99[replay_plpgsql,$c]} |"
	done
	echo
	echo "Why: a fresh claim is one index probe + one heap insert under a per-key lock held only"
	echo "in memory; a replay writes nothing, assigns no transaction id and so commits without a"
	echo "WAL flush. The remaining cost of the idempotent order is the key row itself (insert at"
	echo "claim, HOT update at completion) and two extra statements' round trips."
} >"$BENCH_RESULT"
