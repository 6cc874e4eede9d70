#!/usr/bin/env bash
# scripts/test.sh: install what is missing, build, install, and run every test suite.
#
# The README's test command; .ci/run calls it.  Works as root (servers then run as the
# postgres user) or as a user with sudo; re-running it is safe.  Ends with `N passed, N failed`
# and exits non-zero if anything failed or nothing ran.
# Every suite runs twice: on servers without the library preloaded ("plain") and on servers
# with shared_preload_libraries = 'consistency' ("preload", the production setting).
# Usage: scripts/test.sh [--pg 15|18|all] [--config plain|preload|both] [regress] [isolation] [tap] [pgtap] [fuzz] [ha]
#   --pg: the PostgreSQL major version (default all: 15, then 18); 18 is built from source once per machine
#   (scripts/lib/build-pg.sh); `all` runs every suite on each version in turn and sums them.
#   --config: default both configurations.  Suites: default all six
#   (fuzz and ha run once per version, on preloaded servers of their own).
set -euo pipefail

pg=${CONSISTENCY_PG:-all}
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--pg) pg=${2:?--pg needs 15, 18 or all}; shift 2 ;;
	--pg=*) pg=${1#--pg=}; shift ;;
	*) args+=("$1"); shift ;;
	esac
done

if [ "$pg" = all ]; then
	# One leg per version, each a run of this script; the closing line sums the legs.
	pass=0 fail=0 legs=()
	for v in 15 18; do
		out=$(mktemp)
		start=$SECONDS
		CONSISTENCY_PG=$v "${BASH_SOURCE[0]}" "${args[@]}" 2>&1 | tee "$out" || true
		line=$(tail -n 1 "$out")
		rm -f "$out"
		if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
			p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
		else
			p=0 f=1		# the leg stopped before its suites' summary
		fi
		pass=$((pass + p)) fail=$((fail + f))
		legs+=("$(printf 'PostgreSQL %s: %d passed, %d failed (%ds)' "$v" "$p" "$f" $((SECONDS - start)))")
	done
	echo
	printf '%s\n' "${legs[@]}"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit
fi
[[ $pg =~ ^[0-9]+$ ]] || { echo "error: --pg: a major version (15, 18) or all, not '$pg'" >&2; exit 2; }
export CONSISTENCY_PG=$pg

. "$(dirname "$0")/lib/common.sh"

step "checking packages (PostgreSQL $PG_MAJOR)"
ensure_packages

step "building and installing the extension for PostgreSQL $PG_MAJOR"
prepare_workdir
build_and_install

step "running test suites on PostgreSQL $PG_MAJOR as $TEST_USER in $WORK"
as_user env PG_CONFIG="$PG_CONFIG" TMPDIR="$WORK" "$WORK/scripts/lib/run-suites.sh" "${args[@]}"
