# scripts/lib/demo.sh: what the demo chapters in scripts/demo.d/ use to talk and to print.
#
# Owns: the SQL helpers bound to the demo's primary and standby (database "shop"), and the
# report format: a numbered chapter heading, then indented lines.  Sourced by scripts/demo.sh.

DEMO_CHAPTER=0

chapter() {
	DEMO_CHAPTER=$((DEMO_CHAPTER + 1))
	printf '\n==> %d. %s\n' "$DEMO_CHAPTER" "$*"
}

# say TEXT: one line of the report; show CMD...: print a command's output indented.
say() { printf '    %s\n' "$*"; }
show() { "$@" | sed -e '/^$/d' -e 's/^/    | /'; }

# primary_sql SQL [psql args]: unaligned, tuples only, stops at the first error.
primary_sql() { cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -At -c "$1" "${@:2}"; }
standby_sql() { cluster_psql "$STANDBY" "$STANDBY_PORT" -d shop -At -c "$1" "${@:2}"; }
# primary_table SQL: aligned output for tables in the report.
primary_table() { cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -P footer=off -c "$1"; }

wait_for_standby() {
	local i
	for i in $(seq 1 100); do
		if [ "$(primary_sql "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ]; then
			return 0
		fi
		sleep 0.1
	done
	die "the standby did not start streaming"
}

# expect_error SQL: run SQL on the primary, which must fail; print its error and SQLSTATE.
expect_error() {
	local out
	if out=$(cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -At -v VERBOSITY=verbose -c "$1" 2>&1); then
		die "expected an error from: $1"
	fi
	printf '%s\n' "$out" | sed -nE 's/^(psql:[^ ]* )?ERROR: +([0-9A-Z]{5}): (.*)$/      ERROR \2: \3/p'
}
