#!/usr/bin/env bash
# scripts/lib/run-suites.sh: run every test suite in the work tree, in both configurations, and
# report.
#
# Owns: running pg_regress, isolation, TAP and pgTAP one after another (a failure in one does
# not hide the others), once per server configuration, counting what passed, and the closing
# `N passed, N failed` line.  The configurations:
#   plain    the library is loaded on demand (by the first call of an extension function);
#   preload  every server the suites start has shared_preload_libraries = 'consistency' (the
#            production setting), from test/preload.conf: pg_regress and the isolation tester
#            get it as a second --temp-config, and TAP (PostgreSQL::Test::Cluster appends
#            $TEMP_CONFIG to every node it inits; standbys copy their primary's configuration)
#            and pgTAP (scripts/lib/run-pgtap.sh) through the TEMP_CONFIG environment variable.
#            A TAP node that sets shared_preload_libraries itself still wins: its setting is
#            appended after TEMP_CONFIG's.
# Runs as the unprivileged test user inside the copy made by scripts/test.sh, with PG_CONFIG
# naming the installation under test.  Each suite starts its own throwaway server(s).  Logs and
# outputs go to log/<configuration>/.  The fuzz suite (test/fuzz/) runs once, after the others:
# its server always preloads the library (sqlsmith and the focused fuzzer are about the
# production setting), so it has no plain leg.  So does the ha suite (test/ha/*.pl: Patroni
# clusters, whose servers always preload the library), run once with prove like TAP.
# Usage: run-suites.sh [--config plain|preload|both] [regress] [isolation] [tap] [pgtap] [fuzz] [ha]
#        (default: both configurations, all six suites)
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${PG_CONFIG:?PG_CONFIG must name the installation under test}"

usage() {
	echo "usage: $0 [--config plain|preload|both] [regress] [isolation] [tap] [pgtap] [fuzz] [ha]" >&2
	exit 2
}

config=both
suites=()
while [ $# -gt 0 ]; do
	case $1 in
	--config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
	--config=*) config=${1#--config=}; shift ;;
	regress | isolation | tap | pgtap | fuzz | ha) suites+=("$1"); shift ;;
	*) echo "unknown suite or option: $1" >&2; usage ;;
	esac
done
case $config in
plain | preload) configs=("$config") ;;
both) configs=(plain preload) ;;
*) echo "unknown configuration: $config" >&2; usage ;;
esac
[ ${#suites[@]} -gt 0 ] || suites=(regress isolation tap pgtap fuzz ha)

total_pass=0
total_fail=0
failed_suites=()
summary=()

# Server settings for the pg_regress and isolation temp instances, and the preload leg's.
TEMP_CONF=$PWD/test/temp-instance.conf
PRELOAD_CONF=$PWD/test/preload.conf

report() {	# name passed failed seconds extra
	local line
	line=$(printf '  %-18s %4d passed, %d failed  (%ds%s)' "$1" "$2" "$3" "$4" "${5:+, $5}")
	echo "$line"
	summary+=("$line")
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	[ "$3" -eq 0 ] || failed_suites+=("$1")
}

# pg_regress and pg_isolation_regress print one line per test: "... ok" or "... FAILED"
# (15), "ok N - name" or "not ok N - name" (16 and later).
count_regress() {	# name logfile status seconds diffsfile
	local pass fail
	pass=$(grep -cE '\.\.\. ok |^ok [0-9]+ ' "$2")
	fail=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$2")
	if [ "$3" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi	# the harness itself failed
	report "$1" "$pass" "$fail" "$4"
	if [ "$fail" -ne 0 ]; then
		if [ -f "$5" ]; then head -n 200 "$5"; else tail -n 40 "$2"; fi
	fi
}

# prove prints one line per test file, "... ok" when the whole file passed, "... skipped:
# REASON" when it planned to skip everything (093 without pg_cron: neither passed nor failed,
# and named with its reason on the suite's line).
count_prove() {	# name logfile status seconds
	local files pass fail skipped tests extra
	files=$(grep -cE '^[^ ]+\.(pl|sql) \.+' "$2")
	pass=$(grep -cE '^[^ ]+\.(pl|sql) \.+ ok' "$2")
	skipped=$(grep -cE '^[^ ]+\.(pl|sql) \.+ skipped:' "$2")
	fail=$((files - pass - skipped))
	if [ "$3" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
	tests=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$2" | tail -n 1)
	extra="${tests:-0} assertions"
	if [ "$skipped" -ne 0 ]; then
		extra="$extra; skipped: $(sed -nE 's#^([^ ]+/)?([^ /]+\.(pl|sql)) \.+ skipped: (.*)#\2 (\4)#p' "$2" | awk 'NR > 1 { printf "; " } { printf "%s", $0 }')"
	fi
	report "$1" "$pass" "$fail" "$4" "$extra"
	if [ "$fail" -ne 0 ]; then
		# why, first: failed assertions and a test's own death (a timeout, say), which the
		# servers' log lines a test prints can push out of the tail
		grep -E '^(not ok|Dubious|# +Failed test)|timed out after|BAIL OUT| at [^ ]+ line [0-9]+\.$' "$2" | head -n 40
		tail -n 60 "$2"
	fi
}

for cfg in "${configs[@]}"; do
	out=$PWD/log/$cfg
	rm -rf "$out"
	mkdir -p "$out"
	# One variable carries the configuration to every server the suites start.
	if [ "$cfg" = preload ]; then
		export TEMP_CONFIG=$PRELOAD_CONF
		regress_conf="--temp-config=$TEMP_CONF --temp-config=$PRELOAD_CONF"
	else
		unset TEMP_CONFIG
		regress_conf="--temp-config=$TEMP_CONF"
	fi
	for suite in "${suites[@]}"; do
		[ "$suite" != fuzz ] && [ "$suite" != ha ] || continue	# once, below
		printf '\n==> %s suite, %s configuration\n' "$suite" "$cfg"
		log=$out/$suite.log
		start=$SECONDS
		case $suite in
		regress)
			make -s installcheck-regress PG_CONFIG="$PG_CONFIG" \
				EXTRA_REGRESS_OPTS="--temp-instance=$PWD/tmp_check_regress $regress_conf --outputdir=$out/regress" \
				>"$log" 2>&1
			count_regress "regress/$cfg" "$log" $? $((SECONDS - start)) "$out/regress/regression.diffs"
			;;
		isolation)
			make -s installcheck-isolation PG_CONFIG="$PG_CONFIG" \
				EXTRA_REGRESS_OPTS="--temp-instance=$PWD/tmp_check_iso $regress_conf --outputdir=$out/isolation" \
				>"$log" 2>&1
			count_regress "isolation/$cfg" "$log" $? $((SECONDS - start)) "$out/isolation/regression.diffs"
			;;
		tap)
			make -s installcheck-tap PG_CONFIG="$PG_CONFIG" >"$log" 2>&1
			status=$?
			# The Makefile's TAP run always uses tmp_check/ (and empties it first): keep
			# this configuration's server logs next to its other outputs.
			[ -d tmp_check ] && mv tmp_check "$out/tap"
			count_prove "tap/$cfg" "$log" $status $((SECONDS - start))
			;;
		pgtap)
			make -s installcheck-pgtap PG_CONFIG="$PG_CONFIG" >"$log" 2>&1
			count_prove "pgtap/$cfg" "$log" $? $((SECONDS - start))
			;;
		esac
	done
done

wants() { [[ " ${suites[*]} " == *" $1 "* ]]; }

# The suites that run once per version, after the per-configuration ones, on servers of their
# own that always preload the library: announce one, give it an empty log/<name>/ ($out) and
# start its clock ($start).
begin_once_suite() {	# name description
	printf '\n==> %s suite (%s)\n' "$1" "$2"
	out=$PWD/log/$1
	rm -rf "$out"
	mkdir -p "$out"
	unset TEMP_CONFIG
	start=$SECONDS
}

# The fuzz suite: sqlsmith, then the focused fuzzer, FUZZ_SECONDS (default 60) each, on a
# preloaded server of their own (test/fuzz/lib.sh).
if wants fuzz; then
	begin_once_suite fuzz "its own preloaded server"
	pass=0 fail=0
	for t in sqlsmith functions; do
		if test/fuzz/$t.sh "${FUZZ_SECONDS:-60}" >"$out/$t.log" 2>&1; then
			pass=$((pass + 1))
		else
			fail=$((fail + 1))
			tail -n 40 "$out/$t.log"
		fi
	done
	report "fuzz/preload" "$pass" "$fail" $((SECONDS - start))
fi

# The ha suite: Patroni + etcd clusters on loopback (test/ha/PatroniCluster.pm), every server
# preloading the library; prove runs test/ha/*.pl (HA_TESTS names a subset) through the
# Makefile's TAP target, so PATH and the PostgreSQL test modules are set up like for TAP.
if wants ha; then
	begin_once_suite ha "Patroni clusters, library preloaded"
	make -s installcheck-tap PG_CONFIG="$PG_CONFIG" PROVE_TESTS="${HA_TESTS:-$(echo test/ha/*.pl)}" \
		>"$out/ha.log" 2>&1
	status=$?
	[ -d tmp_check ] && mv tmp_check "$out/tap"
	count_prove "ha/preload" "$out/ha.log" $status $((SECONDS - start))
fi

# Every suite asked for must have reported: one that reported nothing did not run, and counts
# as failed rather than vanishing from the total.
for suite in "${suites[@]}"; do
	# (grep reads a here-string: fed by a pipe, its early exit could fail printf under pipefail)
	grep -qE "^  $suite(/| )" <<<"$(printf '%s\n' "${summary[@]}")" || report "$suite" 0 1 0 "did not run"
done

printf '\n==> summary\n'
[ ${#summary[@]} -eq 0 ] || printf '%s\n' "${summary[@]}"
echo
if [ $((total_pass + total_fail)) -eq 0 ]; then
	echo "no test ran"
	echo "0 passed, 1 failed"
	exit 1
fi
[ ${#failed_suites[@]} -eq 0 ] || echo "failing suites: ${failed_suites[*]} (logs in $PWD/log)"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
