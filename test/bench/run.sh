#!/usr/bin/env bash
# test/bench/run.sh: run benchmark sections and write BENCHMARKS.md.
#
# Each section is test/bench/NN-name.sh (sourced, with test/bench/lib.sh loaded and a fresh
# throwaway server running); it writes its markdown to test/bench/results/NN-name.md.
# BENCHMARKS.md is the header below plus every results file, so running one section keeps
# the others' last figures.  Figures are ratios against baselines measured in the same run.
# test/bench/versions.sh (not a section: it needs a server of each version at once) adds
# results/70-versions.md, the idempotency and inventory ratios on 15 and 18 side by side.
# While it runs, a line per measured run shows the section, the variant, run i of n and the
# time left (sections declare their runs with bench_plan, see lib.sh).  Each section's results
# file ends with its duration, the load average before and after it, and how much CPU other
# processes took meanwhile (test/bench/cpuwatch.py); a section during which others took more
# than BENCH_BUSY_SHARE of the machine (default 0.25) is flagged, there and on the terminal,
# so that its ratios are measured again (--rerun-flagged).  The load average alone cannot
# tell: a section's own 64 clients push it far above the core count.
# Usage: test/bench/run.sh [--quick] [name...]      (default: every section)
#        test/bench/run.sh --rerun-flagged [--quick] (the sections flagged last time)
#        test/bench/run.sh --plan [--quick] [name...] (the time plan only; runs nothing)
#        test/bench/run.sh --assemble                (rebuild BENCHMARKS.md only)
# BENCH_BUDGET (seconds, default 1200): what the whole set should take; the plan says if not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/common.sh"
. "$here/../../scripts/lib/cluster.sh"
. "$here/lib.sh"

BENCH_QUICK=0
assemble_only=0
plan_only=0
rerun_flagged=0
wanted=()
for arg in "$@"; do
	case $arg in
	--quick) BENCH_QUICK=1 ;;
	--assemble) assemble_only=1 ;;
	--plan) plan_only=1 ;;
	--rerun-flagged) rerun_flagged=1 ;;
	-*) die "unknown option $arg" ;;
	*) wanted+=("$arg") ;;
	esac
done
export BENCH_QUICK
BENCH_BUDGET=${BENCH_BUDGET:-1200}
BENCH_BUSY_SHARE=${BENCH_BUSY_SHARE:-0.25}
mode_words=
[ "$BENCH_QUICK" = 0 ] || mode_words='with --quick '
# What the runner adds to each section: a fresh server (initdb, CREATE EXTENSION) and its stop.
bench_section_setup=6
busy_mark='**Busy machine:'

sections=()
for section in "$REPO"/test/bench/[0-9]*-*.sh; do
	name=$(basename "$section" .sh)
	if [ $rerun_flagged = 1 ]; then
		grep -qF "$busy_mark" "$REPO/test/bench/results/$name.md" 2>/dev/null || continue
	fi
	if [ ${#wanted[@]} -gt 0 ] && ! grep -qx "${name#*-}" <<<"$(printf '%s\n' "${wanted[@]}")"; then
		continue
	fi
	sections+=("$section")
done

# section_plan FILE: "runs seconds source" -- from the section's own plan, else from how long
# it took last time, else unknown (0).
section_plan() {
	local file=$1 name took
	name=$(basename "$file" .sh)
	if grep -q '^bench_plan_done' "$file"; then
		# shellcheck disable=SC1090
		echo "$(BENCH_PLANNING=1 WORK=${WORK:-/nonexistent} . "$file") plan"
	else
		# "_Section ran N s (planned ...": a full run; "_Section ran N s with --quick (planned ...": quick
		took=$(sed -nE "s/^_Section ran ([0-9]+) s $mode_words\(planned .*/\1/p" \
			"$REPO/test/bench/results/$name.md" 2>/dev/null | tail -n 1)
		echo "0 ${took:-0} $([ -n "$took" ] && echo 'last run' || echo unknown)"
	fi
}

declare -A plan_secs
if [ $assemble_only = 0 ]; then
	[ ${#sections[@]} -gt 0 ] || die "no section to run"
	step "time plan ($([ "$BENCH_QUICK" = 1 ] && echo quick || echo full))"
	plan_total=0
	for section in "${sections[@]}"; do
		name=$(basename "$section" .sh)
		read -r runs secs source < <(section_plan "$section")
		[ "$secs" = 0 ] || secs=$((secs + bench_section_setup))
		plan_secs[$name]=$secs
		plan_total=$((plan_total + secs))
		info "$(printf '%-22s %4s runs  %6s  (%s)' "$name" "$runs" "$(bench_mmss "$secs")" "$source")"
	done
	info "total ~$(bench_mmss "$plan_total") (budget $(bench_mmss "$BENCH_BUDGET"); the build adds about a minute)"
	[ "$plan_total" -le "$BENCH_BUDGET" ] || info "warning: the plan is over the budget"
	[ $plan_only = 0 ] || exit 0

	step "checking packages"
	ensure_packages
	step "building and installing the extension"
	prepare_workdir
	# On any exit, an error in a section included: its servers first, then the work directory.
	watch_pid=
	trap '[ -z "$watch_pid" ] || { kill -TERM "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null; }
		bench_exit; [ "${CONSISTENCY_KEEP:-0}" = 1 ] || cleanup_workdir' EXIT
	build_and_install
	# Everything the benchmark starts works under WORK, so cpuwatch.py can tell it from the rest.
	cd "$WORK"
	BENCH_SET_START=$(date +%s)
	BENCH_RUN_FILE=$WORK/bench-run-no
	export BENCH_SET_START BENCH_RUN_FILE
	flagged=()
	later=$plan_total
	for section in "${sections[@]}"; do
		name=$(basename "$section" .sh)
		later=$((later - plan_secs[$name]))
		step "benchmark section $name"
		BENCH_SECTION=$name
		BENCH_SECTION_START=$(date +%s)
		BENCH_LATER_SECS=$later
		BENCH_SECTION_ESTIMATE=${plan_secs[$name]}
		export BENCH_SECTION BENCH_SECTION_START BENCH_LATER_SECS BENCH_SECTION_ESTIMATE
		rm -f "$BENCH_RUN_FILE"
		# shellcheck disable=SC2034 # lib.sh's: the section's plan and stage start empty
		bench_plan_runs=0 bench_plan_ds=0 BENCH_STAGE=
		load_before=$(cut -d' ' -f1-3 /proc/loadavg)
		/usr/bin/python3 "$here/cpuwatch.py" --root "$WORK" --out "$WORK/cpuwatch.out" &
		watch_pid=$!
		# shellcheck disable=SC2119 # no extra settings: the default server
		bench_server_start
		BENCH_RESULT=$REPO/test/bench/results/$name.md
		# shellcheck disable=SC1090
		. "$section"
		bench_server_stop
		kill -TERM "$watch_pid"
		wait "$watch_pid" || true
		watch_pid=
		load_after=$(cut -d' ' -f1-3 /proc/loadavg)
		took=$(($(date +%s) - BENCH_SECTION_START))
		read -r _elapsed busy ours others <"$WORK/cpuwatch.out"
		busy_limit=$(awk -v s="$BENCH_BUSY_SHARE" -v n="$(nproc)" 'BEGIN { printf "%.2f", s * n }')
		is_busy=$(awk -v o="$others" -v l="$busy_limit" 'BEGIN { print (o > l) ? 1 : 0 }')
		{
			echo
			echo "_Section ran $took s $mode_words(planned ~${plan_secs[$name]} s). Load average (1, 5, 15 min) $load_before"
			echo "before it and $load_after after it (that includes its own clients). On average the machine"
			echo "was busy on $busy of $(nproc) cores: this benchmark $ours, other processes $others._"
			if [ "$is_busy" = 1 ]; then
				echo
				echo "$busy_mark other processes took $others cores on average (more than $busy_limit), so these"
				echo "ratios are noisy: run this section again (\`test/bench/run.sh --rerun-flagged\`).**"
			fi
		} >>"$BENCH_RESULT"
		info "wrote $BENCH_RESULT ($(bench_mmss "$took"); other processes used $others cores)"
		if [ "$is_busy" = 1 ]; then
			flagged+=("$name")
			info "FLAGGED $name: other processes took $others cores (limit $busy_limit); re-run it"
		fi
	done
	info "the set took $(bench_mmss $(($(date +%s) - BENCH_SET_START))) (planned ~$(bench_mmss "$plan_total"))"
	if [ ${#flagged[@]} -gt 0 ]; then
		info "flagged (busy machine): ${flagged[*]}; run test/bench/run.sh --rerun-flagged"
	fi
fi

step "assembling BENCHMARKS.md"
{
	cat <<HEADER
# Benchmarks

Produced by \`test/bench/run.sh\` (one section: \`test/bench/run.sh idempotency\`). Every figure
is a ratio against a baseline measured in the same run on the same throwaway server, because
these machines are noisy: absolute rates are shown only to make the ratios checkable. Each
rate is the median of several interleaved runs. Timing is never part of a pass/fail test.
Each section ends with how long it ran, the load average, and how much of the CPU other
processes took meanwhile; a section marked **Busy machine** was disturbed and is to be re-run
(\`test/bench/run.sh --rerun-flagged\`).

HEADER
	for f in "$REPO"/test/bench/results/*.md; do
		[ -e "$f" ] || continue
		cat "$f"
		echo
	done
} >"$REPO/BENCHMARKS.md"
info "BENCHMARKS.md has $(find "$REPO/test/bench/results" -name '*.md' | wc -l) section(s)"
