# test/fuzz/lib.sh: the server both fuzzers run against, and the verdict on its log.
#
# Owns: a throwaway cluster with the library in shared_preload_libraries and prepared
# transactions enabled, the database "fuzz" where every feature holds data (fixture.sql), and
# the check that its server log shows no backend crash and no XX000 error.  Runs as the
# unprivileged test user with PG_CONFIG set (as scripts/lib/run-suites.sh runs it).
# Sourced, not executed.

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$FUZZ_DIR/../../scripts/lib/common.sh"
. "$FUZZ_DIR/../../scripts/lib/cluster.sh"
PG_CONFIG=${PG_CONFIG:-$(target_pg_config)}
PG_BINDIR=$("$PG_CONFIG" --bindir)

# fuzz_server_start DIR PORT: create, start and fill the server; leaves FUZZ_NODE and
# FUZZ_PORT set and a trap that stops and removes it (set FUZZ_KEEP=1 to keep the directory).
fuzz_server_start() {
	FUZZ_NODE=$1/node
	FUZZ_PORT=$2
	trap 'fuzz_server_cleanup "$FUZZ_NODE"' EXIT
	# %e puts every message's SQLSTATE in the log; log_min_error_statement logs the statement
	# that failed, so an XX000 comes with the SQL that caused it.
	cluster_create "$FUZZ_NODE" "$FUZZ_PORT" \
		"shared_preload_libraries = 'consistency'" \
		"log_line_prefix = '%m [%p] %e %q%u@%d '" \
		"log_min_error_statement = error" \
		"log_min_messages = warning" \
		"max_worker_processes = 16" \
		"restart_after_crash = on" \
		"track_functions = all" \
		"fsync = off"
	cluster_start "$FUZZ_NODE"
	cluster_psql "$FUZZ_NODE" "$FUZZ_PORT" -d postgres -c 'CREATE DATABASE fuzz'
	cluster_psql "$FUZZ_NODE" "$FUZZ_PORT" -d fuzz -f "$FUZZ_DIR/fixture.sql" >/dev/null
	# The calls reported from pg_stat_user_functions are the fuzzers', not the fixture's: reset
	# once the fixture's session has ended and flushed its counts.
	cluster_psql "$FUZZ_NODE" "$FUZZ_PORT" -d fuzz -c 'SELECT pg_catalog.pg_stat_reset()' >/dev/null
}

# fuzz_function_calls DIR PORT: calls of each extension function since the server started
# (track_functions = all counts C functions too), most called first.
fuzz_function_calls() {
	cluster_psql "$1" "$2" -d fuzz -At -F ' ' -c "SELECT pg_stat_force_next_flush()" -c "
		SELECT calls, funcname FROM pg_stat_user_functions
		 WHERE schemaname = 'consistency' ORDER BY calls DESC, funcname" | sed -e '/^$/d' -e 's/^/      /'
}

fuzz_server_cleanup() {
	cluster_stop "$1" immediate
	if [ "${FUZZ_KEEP:-0}" = 1 ]; then
		echo "fuzz server kept in $1 (log: $1/server.log)"
	else
		rm -rf "$(dirname "$1")"
	fi
}

# fuzz_check_log LOGFILE: print every crash and XX000 line; return 1 if there is any.
fuzz_check_log() {
	local crashes xx000
	crashes=$(grep -cE 'terminated by signal|was terminated by|server process .* exited with exit code|all server processes terminated|database system was not properly shut down' "$1" || true)
	xx000=$(grep -cE '\] XX000 .*(ERROR|FATAL|PANIC): ' "$1" || true)
	echo "server log: $crashes crash lines, $xx000 XX000 errors"
	if [ "$crashes" -ne 0 ] || [ "$xx000" -ne 0 ]; then
		# each error with the statement that caused it (the next line)
		grep -A1 -E 'terminated by signal|was terminated by|exited with exit code|\] XX000 ' "$1" | head -n 80
		return 1
	fi
	return 0
}
