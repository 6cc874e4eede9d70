#!/usr/bin/env bash
# scripts/lib/run-suites.sh: run every test suite in the work tree and report.
#
# Owns: running pg_regress, isolation, TAP and pgTAP one after another (a failure in one does
# not hide the others), counting what passed, and the closing `N passed, N failed` line.
# Runs as the unprivileged test user inside the copy made by scripts/test.sh, with PG_CONFIG
# naming the installation under test.  Each suite starts its own throwaway server(s).
# Usage: run-suites.sh [regress] [isolation] [tap] [pgtap] [fuzz]   (default: all five)
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${PG_CONFIG:?PG_CONFIG must name the installation under test}"
mkdir -p log

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(regress isolation tap pgtap fuzz)

total_pass=0
total_fail=0
failed_suites=()

# Server settings for the pg_regress and isolation temp instances.
TEMP_CONF=$PWD/test/temp-instance.conf

report() {	# suite passed failed extra
	printf '  %-10s %4d passed, %d failed%s\n' "$1" "$2" "$3" "${4:+  ($4)}"
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	[ "$3" -eq 0 ] || failed_suites+=("$1")
}

# pg_regress and pg_isolation_regress print one line per test: "... ok" or "... FAILED".
count_regress() {	# suite logfile status diffsfile
	local pass fail
	pass=$(grep -cE '\.\.\. ok ' "$2")
	fail=$(grep -cE '\.\.\. FAILED' "$2")
	if [ "$3" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi	# the harness itself failed
	report "$1" "$pass" "$fail"
	if [ "$fail" -ne 0 ]; then
		if [ -f "$4" ]; then head -n 200 "$4"; else tail -n 40 "$2"; fi
	fi
}

# prove prints one line per test file, "... ok" when the whole file passed.
count_prove() {	# suite logfile status
	local files pass fail tests
	files=$(grep -cE '^[^ ]+\.(pl|sql) \.+' "$2")
	pass=$(grep -cE '^[^ ]+\.(pl|sql) \.+ ok' "$2")
	fail=$((files - pass))
	if [ "$3" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
	tests=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$2" | tail -n 1)
	report "$1" "$pass" "$fail" "${tests:-0} assertions"
	if [ "$fail" -ne 0 ]; then tail -n 60 "$2"; fi
}

for suite in "${suites[@]}"; do
	printf '\n==> %s\n' "$suite suite"
	log=log/$suite.log
	case $suite in
	regress)
		make -s installcheck-regress PG_CONFIG="$PG_CONFIG" \
			EXTRA_REGRESS_OPTS="--temp-instance=$PWD/tmp_check_regress --temp-config=$TEMP_CONF" >"$log" 2>&1
		count_regress regress "$log" $? regression.diffs
		;;
	isolation)
		make -s installcheck-isolation PG_CONFIG="$PG_CONFIG" \
			EXTRA_REGRESS_OPTS="--temp-instance=$PWD/tmp_check_iso --temp-config=$TEMP_CONF" >"$log" 2>&1
		count_regress isolation "$log" $? output_iso/regression.diffs
		;;
	tap)
		make -s installcheck-tap PG_CONFIG="$PG_CONFIG" >"$log" 2>&1
		count_prove tap "$log" $?
		;;
	pgtap)
		make -s installcheck-pgtap PG_CONFIG="$PG_CONFIG" >"$log" 2>&1
		count_prove pgtap "$log" $?
		;;
	fuzz)	# test/fuzz/: sqlsmith, then the focused fuzzer, FUZZ_SECONDS (default 60) each
		pass=0 fail=0
		for t in sqlsmith functions; do
			if test/fuzz/$t.sh "${FUZZ_SECONDS:-60}" >"log/fuzz-$t.log" 2>&1; then
				pass=$((pass + 1))
			else
				fail=$((fail + 1))
				tail -n 40 "log/fuzz-$t.log"
			fi
		done
		report fuzz "$pass" "$fail"
		;;
	*)
		echo "unknown suite: $suite" >&2
		exit 2
		;;
	esac
done

echo
if [ $((total_pass + total_fail)) -eq 0 ]; then
	echo "no test ran"
	echo "0 passed, 1 failed"
	exit 1
fi
[ ${#failed_suites[@]} -eq 0 ] || echo "failing suites: ${failed_suites[*]} (logs in $PWD/log)"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
