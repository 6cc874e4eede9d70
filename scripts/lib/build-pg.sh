#!/usr/bin/env bash
# scripts/lib/build-pg.sh: provide a PostgreSQL major version that Debian 12 has no binary
# package for, built from Debian's source package into a cache directory outside the work tree,
# with pgTAP and pg_cron built against it (Debian's pgtap and pg_cron packages are built for 15
# only; sid's postgresql-18-cron binary needs a newer glibc than Debian 12's).
#
# Owns: fetching the sources through the machine's own Debian mirror (read from its apt
# configuration at run time; no mirror host is written in this repository), with a private apt
# state directory so the machine's package lists are untouched; configure, build and install
# into $CONSISTENCY_PG_CACHE/<major> (default /var/cache/consistency-pg/<major>), with the test
# harness pieces PGXS extensions need (pg_regress, isolation tester, TAP modules, contrib), then
# pgTAP (source package pgtap) installed into the same prefix, then pg_cron (source package
# pg-cron) likewise.
# Done once per machine: each finished stage is recognised by its stamp file and reused.
# pg_cron is optional: when its stage cannot be done (the mirror lacks the source, or it does not
# build), the server and pgTAP are still provided, the reason is written, in one line, to
# $prefix/.pg-cron-unavailable (test/t/093_maintenance_pg_cron.pl skips with it), and the stage
# is tried again on the next run; the file is removed once pg_cron is built.
# Usage: build-pg.sh MAJOR [SUITE]   (SUITE: the Debian suite with the sources; default sid)
# Prints the install's pg_config path on success.  Needs root (or write access to the cache).
set -euo pipefail
major=${1:?usage: build-pg.sh MAJOR [SUITE]}
suite=${2:-sid}
cache_root=${CONSISTENCY_PG_CACHE:-/var/cache/consistency-pg}
prefix=$cache_root/$major
stamp=$prefix/.built-by-consistency
pgtap_stamp=$prefix/.pgtap-built-by-consistency
pg_cron_stamp=$prefix/.pg-cron-built-by-consistency
pg_cron_reason=$prefix/.pg-cron-unavailable

pg_built() { [ -f "$stamp" ] && [ -x "$prefix/bin/pg_config" ]; }
pgtap_built() { [ -f "$pgtap_stamp" ] && [ -f "$prefix/share/postgresql/extension/pgtap.control" ]; }
pg_cron_built() {
	[ -f "$pg_cron_stamp" ] && [ -f "$prefix/share/postgresql/extension/pg_cron.control" ] &&
		[ -f "$prefix/lib/postgresql/pg_cron.so" ]
}

if pg_built && pgtap_built && pg_cron_built; then
	echo "$prefix/bin/pg_config"
	exit 0
fi

fail() { printf 'build-pg.sh: PostgreSQL %s: %s\n' "$major" "$*" >&2; exit 1; }

for tool in apt-get dpkg-source make gcc bison flex pkg-config; do
	command -v "$tool" >/dev/null 2>&1 || fail "missing build tool '$tool' (Debian packages: dpkg-dev make gcc bison flex pkg-config)"
done

# The machine's Debian mirror: the first URIs of a deb822 source for the main archive, or a
# one-line sources.list entry.  Never written down in the repository.
mirror_uri() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/ && $i !~ /security/) { print $i; exit } }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
}
uri=$(mirror_uri)
[ -n "$uri" ] || fail "no Debian mirror found in /etc/apt (sources.list.d/*.sources or sources.list)"

work=$(mktemp -d "${TMPDIR:-/tmp}/consistency-build-pg$major.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/parts" "$work/src"
{
	echo "Types: deb-src"
	echo "URIs: $uri"
	echo "Suites: $suite"
	echo "Components: main"
	echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
} >"$work/apt/parts/consistency-src.sources"
apt_opts=(-o "Dir::State::Lists=$work/apt/lists" -o "Dir::Etc::SourceList=/dev/null"
	-o "Dir::Etc::SourceParts=$work/apt/parts" -o "Dir::Cache=$work/apt/cache"
	-o "APT::Sandbox::User=root")
apt_updated=false
if apt-get "${apt_opts[@]}" -qq update >"$work/apt.log" 2>&1; then
	apt_updated=true
elif ! pg_built || ! pgtap_built; then
	cat "$work/apt.log" >&2
	fail "apt-get update of the $suite source index failed"
fi

# try_fetch_orig PACKAGE: download PACKAGE's source into $work/src, print its orig tarball;
# fail (status 1, apt's messages in $work/apt-PACKAGE.log) if there is none.
# Only the upstream tarball is used, so a mirror that lacks the Debian parts (.dsc,
# .debian.tar) of a package is good enough; apt checks every file it fetches against the
# signed source index.
try_fetch_orig() {
	local orig
	(cd "$work/src" && apt-get "${apt_opts[@]}" -qq source --download-only "$1") >"$work/apt-$1.log" 2>&1 || true
	orig=$(ls "$work"/src/"$1"_*.orig.tar.* 2>/dev/null | head -n 1)
	[ -n "$orig" ] || return 1
	echo "$orig"
}
fetch_orig() {
	try_fetch_orig "$1" ||
		{ cat "$work/apt-$1.log" >&2; fail "no upstream tarball of source package $1 in $suite on the configured mirror"; }
}

# apt's errors in one line, without the mirror's address: "Failed to fetch
# http://HOST/.../pool/main/p/pg-cron/pg-cron_1.6.8.orig.tar.gz  404  Not Found [IP: ...]"
# becomes "pg-cron_1.6.8.orig.tar.gz: 404 Not Found".
apt_errors() {
	sed -nE 's/^(E|W): //p' "$1" | sed -E \
		-e 's#^Failed to fetch [^ ]*/([^/ ]+) +([0-9]{3}) +([^[]*[^[ ]) *(\[.*\])?$#\1: \2 \3#' \
		-e 's#[a-z]+://[^ ]*/#<mirror>/#g' | { grep -v '^Failed to fetch some archives' || true; } |
		paste -sd ';' | sed 's/;/; /g'
}

build_postgres() {
	local orig version srcdir jobs
	orig=$(fetch_orig "postgresql-$major")
	version=$(basename "$orig" | sed -E "s/^postgresql-${major}_([^.]+\.[^.]+)\.orig.*/\1/")
	tar -C "$work/src" -xf "$orig"
	srcdir=$(find "$work/src" -maxdepth 1 -type d -name "postgresql-$major*" | head -n 1)
	[ -d "$srcdir" ] || fail "could not unpack $orig"

	echo "build-pg.sh: building PostgreSQL $version into $prefix (a few minutes, once per machine)" >&2
	cd "$srcdir"
	./configure --prefix="$prefix" --enable-tap-tests --enable-debug --with-icu \
		--without-readline >"$work/configure.log" 2>&1 ||
		{ tail -n 30 "$work/configure.log" >&2; fail "configure failed (Debian packages: libicu-dev zlib1g-dev)"; }
	jobs=$(nproc)
	make -s -j"$jobs" world-bin >"$work/make.log" 2>&1 || { tail -n 40 "$work/make.log" >&2; fail "make failed"; }
	rm -rf "$prefix"
	mkdir -p "$prefix"
	make -s install-world-bin >"$work/install.log" 2>&1 || { tail -n 40 "$work/install.log" >&2; fail "make install failed"; }
	# What PGXS installcheck needs beyond install-world-bin: pg_regress, the isolation tester and
	# the TAP modules under lib/pgxs/src/test.
	make -s -C src/test/regress install >>"$work/install.log" 2>&1 || fail "installing pg_regress failed"
	make -s -C src/test/isolation install >>"$work/install.log" 2>&1 || fail "installing the isolation tester failed"
	make -s -C src/test/perl install >>"$work/install.log" 2>&1 || fail "installing the TAP modules failed"
	echo "$version" >"$stamp"
	chmod -R a+rX "$prefix"
	cd "$work"
}

# pgTAP from Debian's source package, with PGXS against this server.  pg_prove (Perl) is
# version-independent and comes from the Debian package.
build_pgtap() {
	local orig srcdir
	orig=$(fetch_orig pgtap)
	tar -C "$work/src" -xf "$orig"
	srcdir=$(find "$work/src" -maxdepth 1 -type d -name 'pgtap-*' | head -n 1)
	[ -d "$srcdir" ] || fail "could not unpack $orig"
	echo "build-pg.sh: building $(basename "$srcdir") for PostgreSQL $major into $prefix" >&2
	if ! { make -s -C "$srcdir" PG_CONFIG="$prefix/bin/pg_config" &&
		make -s -C "$srcdir" PG_CONFIG="$prefix/bin/pg_config" install; } >"$work/pgtap.log" 2>&1; then
		tail -n 40 "$work/pgtap.log" >&2
		fail "building pgTAP failed"
	fi
	basename "$srcdir" >"$pgtap_stamp"
	chmod -R a+rX "$prefix"
}

# pg_cron from Debian's source package, with PGXS against this server.  Never fails the run:
# what went wrong goes to $pg_cron_reason, one line, and the next run tries again.
pg_cron_unavailable() {
	printf 'pg_cron for PostgreSQL %s could not be built from Debian'"'"'s pg-cron source package (%s), checked %s by scripts/lib/build-pg.sh, retried on its next run: %s\n' \
		"$major" "$suite" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$*" >"$pg_cron_reason"
	chmod a+r "$pg_cron_reason"
	echo "build-pg.sh: PostgreSQL $major: no pg_cron: $*" >&2
}
build_pg_cron() {
	local orig srcdir errors
	if ! $apt_updated; then
		pg_cron_unavailable "apt-get update of the $suite source index failed: $(apt_errors "$work/apt.log")"
		return
	fi
	if ! orig=$(try_fetch_orig pg-cron); then
		errors=$(apt_errors "$work/apt-pg-cron.log")
		pg_cron_unavailable "no upstream tarball downloaded: ${errors:-apt-get source printed no error}"
		return
	fi
	rm -rf "$work"/src/pg_cron-* "$work"/src/pg-cron-*
	tar -C "$work/src" -xf "$orig" || { pg_cron_unavailable "could not unpack $(basename "$orig")"; return; }
	srcdir=$(find "$work/src" -maxdepth 1 -type d \( -name 'pg_cron-*' -o -name 'pg-cron-*' \) | head -n 1)
	[ -d "$srcdir" ] || { pg_cron_unavailable "no source directory in $(basename "$orig")"; return; }
	echo "build-pg.sh: building $(basename "$srcdir") for PostgreSQL $major into $prefix" >&2
	if ! { make -s -C "$srcdir" PG_CONFIG="$prefix/bin/pg_config" &&
		make -s -C "$srcdir" PG_CONFIG="$prefix/bin/pg_config" install; } >"$work/pg-cron.log" 2>&1; then
		tail -n 40 "$work/pg-cron.log" >&2
		pg_cron_unavailable "$(basename "$srcdir") did not build: $(grep -m 1 -E 'error|Error' "$work/pg-cron.log" || tail -n 1 "$work/pg-cron.log")"
		return
	fi
	basename "$srcdir" >"$pg_cron_stamp"
	rm -f "$pg_cron_reason"
	chmod -R a+rX "$prefix"
}

pg_built || build_postgres
pgtap_built || build_pgtap
pg_cron_built || build_pg_cron
echo "$prefix/bin/pg_config"
