#!/usr/bin/env bash
# test/bench/run.sh: run benchmark sections and write BENCHMARKS.md.
#
# Each section is test/bench/NN-name.sh (sourced, with test/bench/lib.sh loaded and a fresh
# throwaway server running); it writes its markdown to test/bench/results/NN-name.md.
# BENCHMARKS.md is the header below plus every results file, so running one section keeps
# the others' last figures.  Figures are ratios against baselines measured in the same run.
# test/bench/versions.sh (not a section: it needs a server of each version at once) adds
# results/70-versions.md, the idempotency and inventory ratios on 15 and 18 side by side.
# Usage: test/bench/run.sh [--quick] [name...]      (default: every section)
#        test/bench/run.sh --assemble                (rebuild BENCHMARKS.md only)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/common.sh"
. "$here/../../scripts/lib/cluster.sh"
. "$here/lib.sh"

BENCH_QUICK=0
assemble_only=0
wanted=()
for arg in "$@"; do
	case $arg in
	--quick) BENCH_QUICK=1 ;;
	--assemble) assemble_only=1 ;;
	*) wanted+=("$arg") ;;
	esac
done
export BENCH_QUICK

if [ $assemble_only = 0 ]; then
	step "checking packages"
	ensure_packages
	step "building and installing the extension"
	prepare_workdir
	build_and_install
	for section in "$REPO"/test/bench/[0-9]*-*.sh; do
		name=$(basename "$section" .sh)
		if [ ${#wanted[@]} -gt 0 ] && ! printf '%s\n' "${wanted[@]}" | grep -qx "${name#*-}"; then
			continue
		fi
		step "benchmark section $name"
		bench_server_start
		BENCH_RESULT=$REPO/test/bench/results/$name.md
		. "$section"
		bench_server_stop
		info "wrote $BENCH_RESULT"
	done
fi

step "assembling BENCHMARKS.md"
{
	cat <<HEADER
# Benchmarks

Produced by \`test/bench/run.sh\` (one section: \`test/bench/run.sh idempotency\`). Every figure
is a ratio against a baseline measured in the same run on the same throwaway server, because
these machines are noisy: absolute rates are shown only to make the ratios checkable. Each
rate is the median of several interleaved runs. Timing is never part of a pass/fail test.

HEADER
	for f in "$REPO"/test/bench/results/*.md; do
		[ -e "$f" ] || continue
		cat "$f"
		echo
	done
} >"$REPO/BENCHMARKS.md"
info "BENCHMARKS.md has $(ls "$REPO"/test/bench/results/*.md 2>/dev/null | wc -l) section(s)"
