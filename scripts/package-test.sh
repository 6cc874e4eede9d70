#!/usr/bin/env bash
# scripts/package-test.sh: the package suite (`scripts/test.sh --pg 15 package`; the last suite
# of the PostgreSQL 15 leg): build the Debian packages from debian/, install them on this
# machine, test the installed files, and leave the machine as it was.
#
# Owns, in order:
#   0. the preconditions: root or passwordless sudo (dpkg -i and --purge need it; without it the
#      suite fails, it is not skipped), PostgreSQL 15 (the version Debian 12 ships, so the one
#      whose packages build here), and none of the packages installed already (the suite
#      purges what it installed, and will not remove an installation it did not make);
#   1. dpkg-buildpackage -us -uc -b in a private copy of the tree, as the unprivileged test user;
#   2. lintian on the result: warnings and info are printed, an error (E:) fails;
#   3. dpkg -c: each package holds exactly the files it must;
#   4. dpkg -i of the packages.  `make install` (the other suites, or a developer) puts the same
#      files at the same paths, unowned, and dpkg overwrites them: every such file is first
#      copied aside with its checksum;
#   5. the autopkgtests: every test named in debian/tests/control, run the way autopkgtest runs
#      them (from the top of the source tree, with $AUTOPKGTEST_TMP, as root when they say
#      needs-root, and failing on stderr output unless they allow it): installcheck (regress and
#      isolation against the installed files), pg-consistency (the packaged CLI against a
#      throwaway server), router-link (a program built against the -dev package);
#   6. dpkg --purge of the packages, then the saved files put back, and the proof: no package is
#      installed, and every path the packages held is as it was before step 4 (same content, or
#      absent).  Step 6 runs also when an earlier step fails or the suite is interrupted.
# Ends with `N passed, N failed` (one per check) and exits non-zero if anything failed.
# CONSISTENCY_KEEP=1 keeps the work directory (the .deb files, the logs).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

pass=0
fail=0
ok() { printf '    ok %s\n' "$1"; pass=$((pass + 1)); }
not_ok() { printf '    NOT OK %s\n' "$1"; fail=$((fail + 1)); }
check() {	# description command...
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
stop() {	# the suite cannot go on (the EXIT trap cleans up and counts)
	not_ok "$1"
	exit 1
}
WORK=
installed=0
on_exit() {
	local rc=$?
	trap - EXIT
	[ "$installed" = 0 ] || restore_machine || true
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "${CONSISTENCY_KEEP:-0}" = 1 ]; then info "kept $WORK"; else rm -rf "$WORK"; fi
	fi
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then not_ok "the suite stopped unexpectedly (exit $rc)"; fi
	echo
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ] || exit 1
	exit 0
}
trap on_exit EXIT
trap 'exit 130' INT TERM

step "0. preconditions"
if is_root; then
	ok "running as root"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	ok "running with passwordless sudo"
else
	stop "the package suite needs root or passwordless sudo (dpkg -i, dpkg --purge); run scripts/test.sh as root"
fi
[ "$PG_MAJOR" = "$DEBIAN_PG_MAJOR" ] ||
	stop "the package suite runs on PostgreSQL $DEBIAN_PG_MAJOR only (Debian 12 ships no postgresql-server-dev-$PG_MAJOR)"
ensure_packages >/dev/null
VERSION=$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Version)
ARCH=$(dpkg-architecture -q DEB_HOST_ARCH)
MULTIARCH=$(dpkg-architecture -q DEB_HOST_MULTIARCH)
EXT_PKG=postgresql-$PG_MAJOR-consistency
DEBS=("$EXT_PKG" libconsistency-router0 libconsistency-router-dev)
installed_pkgs() {	# the packages of DEBS dpkg has installed (or half-installed)
	local p
	for p in "${DEBS[@]}"; do
		dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qvx 'not-installed' && echo "$p"
	done
	return 0
}
pre=$(installed_pkgs)
[ -z "$pre" ] || stop "already installed, not ours to remove: $(echo $pre) (dpkg --purge them first)"
ok "none of ${DEBS[*]} is installed"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cpkg.XXXXXX")
BUILD=$WORK/build
SRC=$BUILD/postgresql-consistency
SAVED=$WORK/saved
mkdir -p "$SRC" "$SAVED"
tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.so.*' --exclude='*.bc' \
	--exclude=results --exclude='tmp_check*' --exclude=output_iso --exclude=log -cf - . | tar -C "$SRC" -xf -
chmod 755 "$WORK"
if is_root; then chown -R "$TEST_USER" "$WORK"; fi
export WORK
deb() { echo "$BUILD/${1}_${VERSION}_$ARCH.deb"; }

# dpkg, waiting while another package operation holds the lock (apt on a shared machine).
dpkg_run() {
	local i out
	for i in $(seq 1 60); do
		if out=$(as_root dpkg "$@" 2>&1); then
			printf '%s\n' "$out"
			return 0
		fi
		grep -q 'lock' <<<"$out" || { printf '%s\n' "$out"; return 1; }
		sleep 5
	done
	printf '%s\n' "$out"
	return 1
}

# Every regular file and symlink the packages install, one absolute path a line.
package_paths() {
	local p
	for p in "${DEBS[@]}"; do
		dpkg-deb --fsys-tarfile "$(deb "$p")" | tar -tvf - | awk '$1 !~ /^d/ { print $6 }'
	done | sed 's|^\./|/|' | sort -u
}
# What is at each path now: its checksum, the target of a symlink, or "absent".
path_states() {
	local f
	while read -r f; do
		if [ -L "$f" ]; then
			printf '%s symlink:%s\n' "$f" "$(readlink "$f")"
		elif [ -e "$f" ]; then
			printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
		else
			printf '%s absent\n' "$f"
		fi
	done <"$WORK/paths"
}

# Step 6, also on failure or interruption: purge, put the saved files back, prove it.
restore_machine() {
	[ "$installed" = 1 ] || return 0
	installed=0
	step "6. dpkg --purge, and the machine as it was"
	local left
	if dpkg_run --purge "${DEBS[@]}" >"$WORK/purge.log" 2>&1; then
		ok "dpkg --purge removes the packages"
	else
		not_ok "dpkg --purge removes the packages"
		cat "$WORK/purge.log"
	fi
	left=$(installed_pkgs)
	check "no package is left installed${left:+ (left: $(echo $left))}" test -z "$left"
	# File by file (a directory the purge removed is made again, as make install makes it).
	local f
	while read -r f; do
		if [ -e "$SAVED$f" ] || [ -L "$SAVED$f" ]; then
			as_root mkdir -p "$(dirname "$f")"
			as_root cp -a "$SAVED$f" "$f"
		fi
	done <"$WORK/paths"
	path_states >"$WORK/after"
	if cmp -s "$WORK/before" "$WORK/after"; then
		ok "every path the packages held is as before dpkg -i ($(grep -vc ' absent$' "$WORK/before") files put back, $(grep -c ' absent$' "$WORK/before") absent again)"
	else
		not_ok "every path the packages held is as before dpkg -i"
		diff "$WORK/before" "$WORK/after" | sed 's/^/    | /'
	fi
}
step "1. dpkg-buildpackage -us -uc -b"
if as_user env TMPDIR="$WORK" bash -c 'cd "$1" && dpkg-buildpackage -us -uc -b' _ "$SRC" >"$WORK/build.log" 2>&1; then
	ok "the packages build"
else
	tail -n 40 "$WORK/build.log"
	stop "the packages build (the tail of its log is above)"
fi
for p in "${DEBS[@]}"; do
	[ -f "$(deb "$p")" ] || stop "$p ${VERSION} was built"
done
ok "each of ${DEBS[*]} was built, version $VERSION"

step "2. lintian"
lintian_rc=0
as_user env TMPDIR="$WORK" lintian --fail-on error --display-info --pedantic "$BUILD"/*.changes \
	>"$WORK/lintian.log" 2>&1 || lintian_rc=$?
{ grep -v '^N:' "$WORK/lintian.log" || true; } | sed 's/^/    | /'
info "lintian: $(grep -c '^E:' "$WORK/lintian.log") errors, $(grep -c '^W:' "$WORK/lintian.log") warnings, $(grep -cE '^[IP]:' "$WORK/lintian.log") info and pedantic tags"
check "lintian reports no errors" test "$lintian_rc" -eq 0 -a "$(grep -c '^E:' "$WORK/lintian.log")" -eq 0

step "3. package contents"
contents() { dpkg -c "$(deb "$1")" | awk '{print $6}' | sed 's|^\./|/|'; }
# grep reads a here-string, not a pipe: its early exit on a match would fail the listing
# under pipefail.
has() {	# package path
	grep -qx "$2" <<<"$(contents "$1")"
}
lacks() {	# package regex
	! grep -qE "$2" <<<"$(contents "$1")"
}
libdir=/usr/lib/postgresql/$PG_MAJOR
for f in "$libdir/lib/consistency.so" "$libdir/bin/pg_consistency" \
	/usr/share/postgresql/$PG_MAJOR/extension/consistency.control \
	/usr/share/postgresql/$PG_MAJOR/extension/consistency--1.0.sql \
	/usr/share/postgresql/$PG_MAJOR/extension/consistency--1.0--1.1.sql \
	/usr/share/doc/$EXT_PKG/README.md.gz /usr/share/doc/$EXT_PKG/copyright; do
	check "$EXT_PKG has $f" has "$EXT_PKG" "$f"
done
check "$EXT_PKG has no router library or header" lacks "$EXT_PKG" 'consistency_router|/usr/include'
check "libconsistency-router0 has the shared library" \
	has libconsistency-router0 "/usr/lib/$MULTIARCH/libconsistency_router.so.0"
check "libconsistency-router0 has no development files" \
	lacks libconsistency-router0 '\.a$|\.h$|libconsistency_router\.so$'
for f in "/usr/lib/$MULTIARCH/libconsistency_router.so" "/usr/lib/$MULTIARCH/libconsistency_router.a" \
	/usr/include/postgresql/consistency_router.h; do
	check "libconsistency-router-dev has $f" has libconsistency-router-dev "$f"
done
check "$EXT_PKG depends on the server package" \
	bash -c "dpkg-deb -f '$(deb "$EXT_PKG")' Depends | grep -q 'postgresql-$PG_MAJOR'"

step "4. dpkg -i"
package_paths >"$WORK/paths"
path_states >"$WORK/before"
# Keep a copy of whatever is at those paths now (make install's files), to put back after.
while read -r f; do
	if [ -e "$f" ] || [ -L "$f" ]; then
		mkdir -p "$SAVED$(dirname "$f")"
		as_root cp -a "$f" "$SAVED$f"
	fi
done <"$WORK/paths"
info "$(grep -vc ' absent$' "$WORK/before") of the packages' $(wc -l <"$WORK/paths") paths are present before dpkg -i (make install's files): saved"
debfiles=()
for p in "${DEBS[@]}"; do debfiles+=("$(deb "$p")"); done
installed=1
if dpkg_run -i "${debfiles[@]}" >"$WORK/dpkg.log" 2>&1; then
	ok "dpkg -i installs the packages"
else
	cat "$WORK/dpkg.log"
	stop "dpkg -i installs the packages"
fi
check "dpkg knows $EXT_PKG $VERSION" \
	bash -c "dpkg-query -W -f='\${Version}' '$EXT_PKG' | grep -qx '$VERSION'"

step "5. the autopkgtests (debian/tests/control)"
# Each paragraph: its Tests and Restrictions.
mapfile -t tests < <(awk -v RS= '{
	t = ""; r = ""
	n = split($0, line, "\n")
	for (i = 1; i <= n; i++) {
		if (line[i] ~ /^Tests:/) { t = substr(line[i], 7) }
		if (line[i] ~ /^Restrictions:/) { r = substr(line[i], 14) }
	}
	gsub(/,/, " ", r)
	split(t, names, /[ \t]+/)
	for (j in names) if (names[j] != "") print names[j] "|" r
}' "$SRC/debian/tests/control")
[ ${#tests[@]} -gt 0 ] || not_ok "debian/tests/control names tests"
i=0
for entry in "${tests[@]}"; do
	name=${entry%%|*}
	restrictions=" ${entry#*|} "
	i=$((i + 1))
	tmp=$WORK/t$i	# short: the tests' servers put their sockets under it
	mkdir -p "$tmp"
	if is_root; then chown "$TEST_USER" "$tmp"; fi
	runner=as_user
	[[ $restrictions != *" needs-root "* ]] || runner=as_root
	rc=0
	(cd "$SRC" && $runner env AUTOPKGTEST_TMP="$tmp" TMPDIR="$tmp" "debian/tests/$name") \
		>"$WORK/test-$name.log" 2>"$WORK/test-$name.err" || rc=$?
	if [ "$rc" -eq 0 ] && { [[ $restrictions == *" allow-stderr "* ]] || [ ! -s "$WORK/test-$name.err" ]; }; then
		ok "autopkgtest $name"
		case $name in
		installcheck) sed -n '/^==> summary/,$ s/^  \(regress\|isolation\)/    | &/p' "$WORK/test-$name.log" ;;
		*) sed -n 's/^ok: /    | /p' "$WORK/test-$name.log" ;;
		esac
	else
		not_ok "autopkgtest $name (exit $rc)"
		tail -n 60 "$WORK/test-$name.log" | sed 's/^/    | /'
		tail -n 20 "$WORK/test-$name.err" | sed 's/^/    | stderr: /'
	fi
done

# Step 6 runs in the EXIT trap (on_exit), which also prints the closing line.
