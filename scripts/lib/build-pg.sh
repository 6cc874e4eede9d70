#!/usr/bin/env bash
# scripts/lib/build-pg.sh: provide a PostgreSQL major version that Debian 12 has no binary
# package for, built from Debian's source package into a cache directory outside the work tree,
# with pgTAP built against it (Debian's pgtap package is built for 15 only).
#
# Owns: fetching the sources through the machine's own Debian mirror (read from its apt
# configuration at run time; no mirror host is written in this repository), with a private apt
# state directory so the machine's package lists are untouched; configure, build and install
# into $CONSISTENCY_PG_CACHE/<major> (default /var/cache/consistency-pg/<major>), with the test
# harness pieces PGXS extensions need (pg_regress, isolation tester, TAP modules, contrib), then
# pgTAP (source package pgtap) installed into the same prefix.
# Done once per machine: each finished stage is recognised by its stamp file and reused.
# Usage: build-pg.sh MAJOR [SUITE]   (SUITE: the Debian suite with the sources; default sid)
# Prints the install's pg_config path on success.  Needs root (or write access to the cache).
set -euo pipefail
major=${1:?usage: build-pg.sh MAJOR [SUITE]}
suite=${2:-sid}
cache_root=${CONSISTENCY_PG_CACHE:-/var/cache/consistency-pg}
prefix=$cache_root/$major
stamp=$prefix/.built-by-consistency
pgtap_stamp=$prefix/.pgtap-built-by-consistency

pg_built() { [ -f "$stamp" ] && [ -x "$prefix/bin/pg_config" ]; }
pgtap_built() { [ -f "$pgtap_stamp" ] && [ -f "$prefix/share/postgresql/extension/pgtap.control" ]; }

if pg_built && pgtap_built; then
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
apt-get "${apt_opts[@]}" -qq update >"$work/apt.log" 2>&1 ||
	{ cat "$work/apt.log" >&2; fail "apt-get update of the $suite source index failed"; }
# fetch_orig PACKAGE: download PACKAGE's source into $work/src, print its orig tarball.
# Only the upstream tarball is used, so a mirror that lacks the Debian parts (.dsc,
# .debian.tar) of a package is good enough; apt checks every file it fetches against the
# signed source index.
fetch_orig() {
	local orig
	(cd "$work/src" && apt-get "${apt_opts[@]}" -qq source --download-only "$1") >>"$work/apt.log" 2>&1 || true
	orig=$(ls "$work"/src/"$1"_*.orig.tar.* 2>/dev/null | head -n 1)
	[ -n "$orig" ] || { cat "$work/apt.log" >&2; fail "no upstream tarball of source package $1 in $suite on the configured mirror"; }
	echo "$orig"
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

pg_built || build_postgres
pgtap_built || build_pgtap
echo "$prefix/bin/pg_config"
