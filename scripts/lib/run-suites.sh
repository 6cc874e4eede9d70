#!/usr/bin/env bash
# scripts/lib/run-suites.sh: run every test suite in the work tree and report.
#
# Owns: running pg_regress, isolation, TAP and pgTAP one after another (a failure in one does
# not hide the others), counting what passed, and the closing `N passed, N failed` line.
# Runs as the unprivileged test user inside the copy made by scripts/test.sh, with PG_CONFIG
# naming the installation under test.  Each suite starts its own throwaway server(s).
# Usage: run-suites.sh [regress] [isolation] [tap] [pgtap]   (default: all four)
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${PG_CONFIG:?PG_CONFIG must name the installation under test}"
mkdir -p log

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(regress isolation tap pgtap)

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

# pg_regress and pg_isolation_regress print one line per test: "... ok" or "... FAILED"
# (15), "ok N - name" or "not ok N - name" (16 and later).
count_regress() {	# suite logfile status diffsfile
	local pass fail
	pass=$(grep -cE '\.\.\. ok |^ok [0-9]+ ' "$2")
	fail=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$2")
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
