#!/usr/bin/env bash
# scripts/test.sh: install what is missing, build, install, and run every test suite.
#
# The README's test command; .ci/run calls it.  Works as root (servers then run as the
# postgres user) or as a user with sudo; re-running it is safe.  Ends with `N passed, N failed`
# and exits non-zero if anything failed or nothing ran.
# Every suite runs twice: on servers without the library preloaded ("plain") and on servers
# with shared_preload_libraries = 'consistency' ("preload", the production setting).
# Usage: scripts/test.sh [--pg 15|18|all] [--config plain|preload|both] [regress] [isolation] [tap] [pgtap] [fuzz] [ha] [package]
#   --pg: the PostgreSQL major version (default all: 15, then 18); 18 is built from source once per machine
#   (scripts/lib/build-pg.sh); `all` runs every suite on each version in turn and sums them.
#   --config: default both configurations.  Suites: default all seven
#   (fuzz and ha run once per version, on preloaded servers of their own; package,
#   scripts/package-test.sh, runs once, last, in the PostgreSQL 15 leg only: it builds the Debian
#   packages, installs them with dpkg -i, tests the installed files, purges them and puts back
#   what make install had there, so it needs root or passwordless sudo, and fails without).
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

# The package suite is the Debian packages' (Debian 12 ships PostgreSQL 15 only): it runs in
# the 15 leg.  Which suites were named, and whether the package suite is among them.
PACKAGE_PG=15
named=() package=0
for a in "${args[@]}"; do
	case $a in
	package) package=1 ;;
	regress | isolation | tap | pgtap | fuzz | ha) named+=("$a") ;;
	esac
done
# No suite named: all of them, the package suite included (in its leg).
all=0
if [ ${#named[@]} -eq 0 ] && [ "$package" = 0 ]; then all=1 package=1; fi

if [ "$pg" = all ]; then
	# One leg per version, each a run of this script; the closing line sums the legs.  Other
	# versions' legs run without the package suite, and are left out when it is all that was named.
	pass=0 fail=0 legs=()
	for v in 15 18; do
		leg_args=()
		for a in "${args[@]}"; do
			[ "$v" != "$PACKAGE_PG" ] && [ "$a" = package ] && continue
			leg_args+=("$a")
		done
		if [ "$v" != "$PACKAGE_PG" ] && [ ${#named[@]} -eq 0 ] && [ "$package" = 1 ] &&
			[[ " ${args[*]} " == *" package "* ]]; then
			continue
		fi
		out=$(mktemp)
		start=$SECONDS
		CONSISTENCY_PG=$v "${BASH_SOURCE[0]}" "${leg_args[@]}" 2>&1 | tee "$out" || true
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
if [ "$pg" != "$PACKAGE_PG" ]; then
	if [[ " ${args[*]} " == *" package "* ]]; then
		echo "error: the package suite runs with --pg $PACKAGE_PG only: Debian 12 ships PostgreSQL $PACKAGE_PG," \
			"and its Debian packages build for the versions Debian offers (README: Installing from a Debian package)" >&2
		exit 2
	fi
	package=0
fi
suite_args=()
for a in "${args[@]}"; do [ "$a" = package ] || suite_args+=("$a"); done

. "$(dirname "$0")/lib/common.sh"

step "checking packages (PostgreSQL $PG_MAJOR)"
ensure_packages

step "building and installing the extension for PostgreSQL $PG_MAJOR"
prepare_workdir
build_and_install

summary=() pass=0 fail=0
if [ ${#named[@]} -gt 0 ] || [ "$all" = 1 ]; then
	step "running test suites on PostgreSQL $PG_MAJOR as $TEST_USER in $WORK"
	status=0
	as_user env PG_CONFIG="$PG_CONFIG" TMPDIR="$WORK" "$WORK/scripts/lib/run-suites.sh" "${suite_args[@]}" |
		tee "$WORK/suites.out" || status=$?
	[ "$package" = 1 ] || exit "$status"
	# The suites' summary lines and totals, to close with after the package suite.
	mapfile -t summary < <(sed -n '/^==> summary$/,/^$/ { /^  /p }' "$WORK/suites.out")
	if [[ $(tail -n 1 "$WORK/suites.out") =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		pass=${BASH_REMATCH[1]} fail=${BASH_REMATCH[2]}
	else
		fail=1		# the suites stopped before their summary
	fi
fi

# With no suite named, every suite must have run before the package suite.
if [ "$all" = 1 ] && [ ${#summary[@]} -eq 0 ]; then
	summary+=("  suites             0 passed, 1 failed  (did not run)")
	fail=$((fail + 1))
fi

# The package suite, last: as root (dpkg), in a copy of its own; one count per check.
printf '\n==> package suite (PostgreSQL %s, Debian packages)\n' "$PG_MAJOR"
start=$SECONDS
"$REPO/scripts/package-test.sh" 2>&1 | tee "$WORK/package.out" || true
if [[ $(tail -n 1 "$WORK/package.out") =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
	p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
else
	p=0 f=1
fi
[ $((p + f)) -gt 0 ] || f=1	# nothing counted: the suite did not run
summary+=("$(printf '  %-18s %4d passed, %d failed  (%ds, checks)' package "$p" "$f" $((SECONDS - start)))")
pass=$((pass + p)) fail=$((fail + f))

printf '\n==> summary\n'
printf '%s\n' "${summary[@]}"
echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
