#!/usr/bin/env bash
# test/valgrind/fetch-suppressions.sh: PostgreSQL's own valgrind suppressions for the installed server.
#
# Owns: fetching src/tools/valgrind.supp from the Debian source package of the installed
# postgresql-15, through the mirror this machine's apt is already configured with (read at run
# time from /etc/apt; no host name is written into the repository), using a private apt state
# directory so the system's package lists and sources are left alone.  The file is cached in
# CONSISTENCY_PG_CACHE (default /var/cache/consistency-pg) and printed on stdout.
#
# The installed version's source is tried first; if the mirror no longer serves it (it answered
# 404 for 15.20 when this was written), the newest postgresql-15 source the mirror has is used:
# valgrind.supp changes rarely within a major version, and the name of the version used is part
# of the cached file's name so a reader can tell.
# Needs root (apt-get).  Usage: fetch-suppressions.sh   (prints the path of valgrind.supp)
set -euo pipefail

PG_MAJOR=15
PKG=postgresql-$PG_MAJOR
CACHE=${CONSISTENCY_PG_CACHE:-/var/cache/consistency-pg}

say() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

installed=$(dpkg-query -W -f='${Version}' "$PKG" 2>/dev/null) || die "$PKG is not installed"
mkdir -p "$CACHE"

# A cached copy from an earlier run: the installed version's, else any other.
for f in "$CACHE/valgrind-$installed.supp" "$CACHE"/valgrind-*.supp; do
	if [ -s "$f" ]; then
		echo "$f"
		exit 0
	fi
done

[ "$(id -u)" = 0 ] || die "fetching the suppressions needs root (apt-get); run as root once to fill $CACHE"

# The mirror URIs and suites of the machine's Debian sources, deb822 and one-line formats.
apt_dir=$CACHE/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/parts"
list=$apt_dir/sources.list
: >"$list"
shopt -s nullglob
for src in /etc/apt/sources.list.d/*.sources; do
	awk '
		/^[ \t]*$/ { flush(); next }
		/^URIs:/   { uris = $0; sub(/^URIs:[ \t]*/, "", uris) }
		/^Suites:/ { suites = $0; sub(/^Suites:[ \t]*/, "", suites) }
		/^Components:/ { comps = $0; sub(/^Components:[ \t]*/, "", comps) }
		/^Signed-By:/ { key = $0; sub(/^Signed-By:[ \t]*/, "", key) }
		/^Enabled:[ \t]*no/ { off = 1 }
		END { flush() }
		function flush(   u, s, nu, ns, i, j, U, S) {
			if (uris != "" && suites != "" && !off) {
				nu = split(uris, U, /[ \t]+/); ns = split(suites, S, /[ \t]+/)
				for (i = 1; i <= nu; i++)
					for (j = 1; j <= ns; j++)
						printf "deb-src %s%s %s %s\n", (key != "" ? "[signed-by=" key "] " : ""), U[i], S[j], comps
			}
			uris = suites = comps = key = ""; off = 0
		}' "$src" >>"$list"
done
for src in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[ -f "$src" ] || continue
	sed -nE 's/^[ \t]*deb[ \t]+/deb-src /p' "$src" >>"$list"
done
[ -s "$list" ] || die "no Debian mirror found in /etc/apt (sources.list, sources.list.d/*.sources)"
say "source entries: $(wc -l <"$list") (from the machine's apt configuration)"

apt_opts=(-o APT::Sandbox::User=root -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Etc::SourceList=$list"
	-o "Dir::Etc::SourceParts=$apt_dir/parts" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
apt-get "${apt_opts[@]}" -qq update >&2 || die "apt-get update of the source lists failed"

# Candidate versions: the installed one, then every version the mirror lists, newest first.
mapfile -t versions < <({
	echo "$installed"
	apt-cache "${apt_opts[@]}" showsrc "$PKG" 2>/dev/null |
		sed -nE 's/^Version: //p' | sort -u -r -V
} | awk '!seen[$0]++')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
used=
for v in "${versions[@]}"; do
	[ -n "$v" ] || continue
	say "trying $PKG=$v source"
	rm -rf "${work:?}"/*
	if (cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only "$PKG=$v" >&2 2>&1); then
		used=$v
		break
	fi
done
[ -n "$used" ] || die "no $PKG source package could be downloaded"

orig=$(ls "$work"/*.orig.tar.* 2>/dev/null | head -n 1)
[ -n "$orig" ] || die "the $PKG=$used source has no orig tarball"
member=$(tar -tf "$orig" | grep -E '^[^/]+/src/tools/valgrind\.supp$' | head -n 1)
[ -n "$member" ] || die "src/tools/valgrind.supp is not in $orig"
tar -xOf "$orig" "$member" >"$CACHE/valgrind-$used.supp.tmp"
mv "$CACHE/valgrind-$used.supp.tmp" "$CACHE/valgrind-$used.supp"
[ "$used" = "$installed" ] || say "installed $installed has no source on the mirror; using $used's suppressions"
echo "$CACHE/valgrind-$used.supp"
