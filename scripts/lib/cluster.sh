# scripts/lib/cluster.sh: throwaway PostgreSQL servers for the demo, pgTAP and benchmarks.
#
# Owns: creating, starting, stopping and removing a cluster in a directory of its own.  Each
# cluster listens only on a Unix socket inside its own directory, so clusters never collide
# on ports with each other or with anything else on the machine.  Everything runs as
# TEST_USER (see common.sh); PG_BINDIR must be set (build_and_install sets it).
# Sourced, not executed.

# cluster_create DIR PORT [extra postgresql.conf lines...]
cluster_create() {
	local dir=$1 port=$2
	shift 2
	as_user mkdir -p "$dir"
	as_user "$PG_BINDIR/initdb" -D "$dir/data" -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir.initdb.log" 2>&1 ||
		{ cat "$dir.initdb.log"; die "initdb failed for $dir"; }
	rm -f "$dir.initdb.log"
	{
		echo "# added by scripts/lib/cluster.sh"
		echo "port = $port"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		echo "max_prepared_transactions = 64"
		echo "max_connections = 200"
		echo "log_line_prefix = '%m [%p] %q%a '"
		local line
		for line in "$@"; do echo "$line"; done
	} | as_user tee -a "$dir/data/postgresql.conf" >/dev/null
}

# cluster_standby PRIMARY_DIR PRIMARY_PORT DIR PORT [extra postgresql.conf lines...]
# A streaming standby made with pg_basebackup -R (primary_conninfo + standby.signal).
cluster_standby() {
	local pdir=$1 pport=$2 dir=$3 port=$4
	shift 4
	as_user mkdir -p "$dir"
	as_user "$PG_BINDIR/pg_basebackup" -h "$pdir" -p "$pport" -D "$dir/data" -R -X stream \
		--no-sync -c fast >/dev/null
	{
		echo "# standby settings added by scripts/lib/cluster.sh"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		local line
		for line in "$@"; do echo "$line"; done
	} | as_user tee -a "$dir/data/postgresql.conf" >/dev/null
}

cluster_start() {
	as_user "$PG_BINDIR/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 start >/dev/null ||
		{ tail -n 30 "$1/server.log" >&2; die "could not start the server in $1"; }
}

# cluster_stop DIR [fast|immediate|smart]
cluster_stop() {
	[ -f "$1/data/postmaster.pid" ] || return 0
	as_user "$PG_BINDIR/pg_ctl" -D "$1/data" -m "${2:-fast}" -w -t 60 stop >/dev/null 2>&1 || true
}

# cluster_psql DIR PORT [psql args...]: quiet, stops at the first error.
cluster_psql() {
	local dir=$1 port=$2
	shift 2
	as_user "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" "$@"
}
