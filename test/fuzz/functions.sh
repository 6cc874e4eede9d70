#!/usr/bin/env bash
# test/fuzz/functions.sh: the focused fuzzer (fuzz_functions.py) against a database where
# every feature of the extension holds data, with the library preloaded.  Passes if the fuzzer
# saw no backend crash and no XX000, and the server log agrees.
#
# Usage: [FUZZ_OPTIONS=...] test/fuzz/functions.sh [SECONDS [SEED [MAX_CALLS]]]
# (default 60 s, seed 1; FUZZ_KEEP=1 keeps the server directory and its log)
# Runs as the unprivileged test user with PG_CONFIG set (scripts/lib/run-suites.sh does this).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

seconds=${1:-60}
seed=${2:-1}
max_calls=${3:-1000000000}
extra=${FUZZ_OPTIONS:-}	# more options for fuzz_functions.py, e.g. --seed

dir=$(mktemp -d "${TMPDIR:-/tmp}/consistency-fuzz.XXXXXX")
port=5496
fuzz_server_start "$dir" "$port"

superuser=$(id -un)
status=0
/usr/bin/python3 "$FUZZ_DIR/fuzz_functions.py" --seconds "$seconds" --seed "$seed" --max-calls "$max_calls" $extra \
	--dsn "host=$FUZZ_NODE port=$port dbname=fuzz user=fuzz_admin application_name=fuzz" \
	--user-dsn "host=$FUZZ_NODE port=$port dbname=fuzz user=fuzz_user application_name=fuzz" \
	--super-dsn "host=$FUZZ_NODE port=$port dbname=fuzz user=$superuser application_name=fuzz" \
	--server-log "$FUZZ_NODE/server.log" || status=$?

info "completed calls of the extension's functions (pg_stat_user_functions):"
fuzz_function_calls "$FUZZ_NODE" "$port"
fuzz_check_log "$FUZZ_NODE/server.log" || status=1
exit "$status"
