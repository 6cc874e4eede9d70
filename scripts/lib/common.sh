# scripts/lib/common.sh: what scripts/test.sh, scripts/demo.sh and test/bench/run.sh share.
#
# Owns: the package list, privilege handling (root or sudo for apt and `make install`, an
# unprivileged user for anything that starts a server), the private copy of the tree that is
# built and tested, and the optional sandbox install.
#
# Environment:
#   CONSISTENCY_SANDBOX=DIR  install into a private, relocated copy of the PostgreSQL tree under
#                            DIR instead of the system one (no root needed for the install, and
#                            several checkouts can be tested side by side).
#   CONSISTENCY_TEST_USER    the unprivileged user servers run as when invoked as root
#                            (default: postgres).
#   CONSISTENCY_KEEP=1       keep the work directory (logs, regression.diffs) after the run.
#   CONSISTENCY_PG=MAJOR     the PostgreSQL major version to build and test against (default
#                            15, Debian's packages; scripts/test.sh --pg sets it).  Any other
#                            version is built from source once per machine by build-pg.sh.
# Sourced, not executed.

DEBIAN_PG_MAJOR=15
PG_MAJOR=${CONSISTENCY_PG:-$DEBIAN_PG_MAJOR}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ "$PG_MAJOR" = "$DEBIAN_PG_MAJOR" ]; then
	SYSTEM_PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
else
	# What scripts/lib/build-pg.sh builds (ensure_packages runs it).
	SYSTEM_PG_CONFIG=${CONSISTENCY_PG_CACHE:-/var/cache/consistency-pg}/$PG_MAJOR/bin/pg_config
fi

# Everything the build, the suites (the package suite: debhelper, lintian, the pg_buildext of
# postgresql-server-dev-all, readelf), the demo and the benchmarks use (the Redis comparison:
# redis-server, redis-benchmark; its profile: perf; instruction counts: valgrind).
# libkrb5-dev: Debian's 15 is built with GSSAPI, so its libpq/libpq-be.h includes <gssapi/gssapi.h>.
# faketime: test/t/045 runs initdb as if after 2038 (a system identifier of 2^63 or more).
# The last line is what build-pg.sh needs to build another PostgreSQL version from source.
PACKAGES=(
	make gcc libc6-dev
	"postgresql-$DEBIAN_PG_MAJOR" "postgresql-server-dev-$DEBIAN_PG_MAJOR" "postgresql-$DEBIAN_PG_MAJOR-pgtap" libkrb5-dev
	libtap-parser-sourcehandler-pgtap-perl libipc-run-perl libpq-dev
	pgbouncer python3-psycopg python3-psycopg2 python3-sqlalchemy python3-flask curl sqlsmith faketime
	"postgresql-$DEBIAN_PG_MAJOR-cron" prometheus-postgres-exporter patroni etcd-server
	redis-server redis-tools linux-perf valgrind
	debhelper lintian postgresql-server-dev-all binutils
	dpkg-dev bison flex pkg-config libicu-dev zlib1g-dev debian-archive-keyring
)

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
	if is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root or sudo to run: $*"
	fi
}

# The unprivileged user that builds and runs servers (PostgreSQL refuses to run as root).
TEST_USER=${CONSISTENCY_TEST_USER:-}
if [ -z "$TEST_USER" ]; then
	if is_root; then TEST_USER=postgres; else TEST_USER=$(id -un); fi
fi

# Run a command as TEST_USER, keeping the environment.
as_user() {
	if is_root; then
		runuser -u "$TEST_USER" -- env HOME="${WORK:-/tmp}" "$@"
	else
		"$@"
	fi
}

ensure_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		info "all ${#PACKAGES[@]} packages present"
	else
		info "installing: ${missing[*]}"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null
	fi
	# The server package's main cluster is not ours to run; our servers are throwaway ones.
	id "$TEST_USER" >/dev/null 2>&1 || die "user $TEST_USER does not exist"
	if [ "$PG_MAJOR" != "$DEBIAN_PG_MAJOR" ]; then
		[ "$(as_root "$REPO/scripts/lib/build-pg.sh" "$PG_MAJOR")" = "$SYSTEM_PG_CONFIG" ] ||
			die "build-pg.sh did not provide $SYSTEM_PG_CONFIG"
		info "PostgreSQL $PG_MAJOR built from source: $SYSTEM_PG_CONFIG"
	fi
}

# Copy the tree (without .git and build products) to a fresh directory owned by TEST_USER, so
# that builds and test output never touch the checkout and an unprivileged user can write there.
prepare_workdir() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/consistency.XXXXXX")
	tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=results --exclude=tmp_check --exclude=output_iso --exclude=log \
		-cf - . | tar -C "$WORK" -xf -
	chmod 755 "$WORK"
	if is_root; then chown -R "$TEST_USER" "$WORK"; fi
	if [ "${CONSISTENCY_KEEP:-0}" != 1 ]; then
		trap 'cleanup_workdir' EXIT
	fi
	export WORK
}

cleanup_workdir() {
	# Servers started by the suites are stopped by them; this only removes files.
	[ -n "${WORK:-}" ] && [ -d "$WORK" ] && rm -rf "$WORK"
}

# PG_CONFIG of the installation the tests run against (the sandbox's, or the system's).
target_pg_config() {
	if [ -n "${CONSISTENCY_SANDBOX:-}" ]; then
		echo "$CONSISTENCY_SANDBOX${SYSTEM_PG_CONFIG}"
	else
		echo "$SYSTEM_PG_CONFIG"
	fi
}

# A relocated copy of the PostgreSQL tree: its binaries find share/ and lib/ relative to
# themselves, so extension files installed with DESTDIR=sandbox are found by its server.
# Debian's server is spread over /usr/lib and /usr/share; files that packages installed since
# (postgresql-15-cron, say) are copied in at every run, without replacing any.  A source-built
# one is one prefix, copied again whenever its build stamps (server, pgTAP, pg_cron) change;
# its record of why pg_cron is missing is copied at every run.
make_sandbox() {
	local sb=$CONSISTENCY_SANDBOX prefix f
	if [ "$PG_MAJOR" = "$DEBIAN_PG_MAJOR" ]; then
		if [ ! -x "$sb/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ]; then
			info "creating sandbox PostgreSQL tree in $sb"
			mkdir -p "$sb/usr/lib/postgresql" "$sb/usr/share/postgresql"
			cp -a "/usr/lib/postgresql/$PG_MAJOR" "$sb/usr/lib/postgresql/"
			cp -a "/usr/share/postgresql/$PG_MAJOR" "$sb/usr/share/postgresql/"
		else
			cp -an "/usr/lib/postgresql/$PG_MAJOR/." "$sb/usr/lib/postgresql/$PG_MAJOR/"
			cp -an "/usr/share/postgresql/$PG_MAJOR/." "$sb/usr/share/postgresql/$PG_MAJOR/"
		fi
		# The system's headers, seen through symlinks, in directories of the sandbox's own: make
		# install adds the router's header there (through a symlink to /usr/include itself, as
		# sandboxes once had, it went into the system's, under the package suite's feet).
		if [ -L "$sb/usr/include" ] || [ ! -d "$sb/usr/include/postgresql" ]; then
			rm -f "$sb/usr/include"
			mkdir -p "$sb/usr/include/postgresql"
			for f in /usr/include/*; do
				[ "$f" = /usr/include/postgresql ] || ln -sfn "$f" "$sb/usr/include/"
			done
			for f in /usr/include/postgresql/*; do
				[ "${f##*/}" = consistency_router.h ] || ln -sfn "$f" "$sb/usr/include/postgresql/"
			done
		fi
	else
		prefix=$(dirname "$(dirname "$SYSTEM_PG_CONFIG")")
		for f in .built-by-consistency .pgtap-built-by-consistency .pg-cron-built-by-consistency; do
			if [ -e "$prefix/$f" ] || [ -e "$sb$prefix/$f" ]; then
				cmp -s "$prefix/$f" "$sb$prefix/$f" || { rm -rf "${sb:?}$prefix"; break; }
			fi
		done
		if [ ! -x "$sb$prefix/bin/postgres" ]; then
			info "creating sandbox PostgreSQL $PG_MAJOR tree in $sb$prefix"
			mkdir -p "$sb$prefix"
			cp -a "$prefix/." "$sb$prefix/"
		fi
		if [ -e "$prefix/.pg-cron-unavailable" ]; then
			cp -p "$prefix/.pg-cron-unavailable" "$sb$prefix/"
		else
			rm -f "$sb$prefix/.pg-cron-unavailable"
		fi
	fi
	chmod 755 "$sb"
}

# Build in WORK as TEST_USER, then install (system-wide, or into the sandbox).
build_and_install() {
	as_user make -C "$WORK" -s -j"$(nproc)" PG_CONFIG="$SYSTEM_PG_CONFIG" all
	if [ -n "${CONSISTENCY_SANDBOX:-}" ]; then
		make_sandbox
		make -C "$WORK" -s PG_CONFIG="$SYSTEM_PG_CONFIG" DESTDIR="$CONSISTENCY_SANDBOX" install
		info "installed into sandbox $CONSISTENCY_SANDBOX"
	else
		as_root make -C "$WORK" -s PG_CONFIG="$SYSTEM_PG_CONFIG" install
		info "installed into $("$SYSTEM_PG_CONFIG" --pkglibdir) and $("$SYSTEM_PG_CONFIG" --sharedir)/extension"
	fi
	PG_CONFIG=$(target_pg_config)
	PG_BINDIR=$("$PG_CONFIG" --bindir)
	export PG_CONFIG PG_BINDIR
}
