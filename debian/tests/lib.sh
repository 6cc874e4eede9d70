# debian/tests/lib.sh: what the autopkgtests share (sourced, not a test).
#
# Owns: the scratch directory (autopkgtest's $AUTOPKGTEST_TMP, or a temporary one), the list of
# PostgreSQL versions a postgresql-<major>-consistency package is installed for, the check that
# a package's files are the ones dpkg installed, and a throwaway server of an installed
# version, run as the unprivileged test user (scripts/lib/common.sh, cluster.sh) on a Unix
# socket in the scratch directory and removed on exit.  The tests run as root from the top of
# the source tree, as autopkgtest runs them; nothing is built from it but the tests' own programs.
set -euo pipefail
. scripts/lib/common.sh
. scripts/lib/cluster.sh

# Paths stay short: a server's socket path (directory, then .s.PGSQL.<port>) must fit in 107
# bytes, and pg_regress puts its sockets in a directory under TMPDIR.
if [ -n "${AUTOPKGTEST_TMP:-}" ]; then
	SCRATCH=$AUTOPKGTEST_TMP
else
	SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/cpkg.XXXXXX")
	trap 'rm -rf "$SCRATCH"' EXIT
fi
[ ${#SCRATCH} -le 64 ] || die "scratch directory $SCRATCH: a path this long leaves no room for a server's socket"
chmod 755 "$SCRATCH"
if is_root; then chown "$TEST_USER" "$SCRATCH"; fi

# The versions to test: every postgresql-<major>-consistency that is installed.
installed_versions() {
	local v
	v=$(pg_buildext installed-versions)
	[ -n "$v" ] || die "no postgresql-<major>-consistency package is installed"
	echo "$v"
}

# verify_package PACKAGE: every file of PACKAGE is as dpkg installed it (nothing overwritten).
verify_package() {
	local out
	out=$(dpkg --verify "$1") || die "dpkg --verify $1 failed"
	[ -z "$out" ] || { printf '%s\n' "$out" >&2; die "files of $1 differ from the package's"; }
	echo "ok: the files of $1 are the package's (dpkg --verify)"
}

# start_server MAJOR: a throwaway server of installed PostgreSQL MAJOR; sets SERVER and PORT
# and stops the server when the test exits.
start_server() {
	PG_BINDIR=/usr/lib/postgresql/$1/bin
	SERVER=$SCRATCH/s$1
	PORT=$((5500 + $1))
	cluster_create "$SERVER" "$PORT"
	trap 'cluster_stop "$SERVER" immediate' EXIT
	cluster_start "$SERVER"
}

# sql DATABASE SQL...: run statements on the server, unaligned, tuples only.
sql() {
	local db=$1
	shift
	local args=() s
	for s in "$@"; do args+=(-c "$s"); done
	cluster_psql "$SERVER" "$PORT" -d "$db" -At "${args[@]}"
}
