#!/usr/bin/env bash
# scripts/package-test.sh: build the Debian packages from debian/ and check them.
#
# Owns: the package test.  In a private copy of the tree, as the unprivileged test user:
#   1. dpkg-buildpackage -us -uc -b (pg_buildext, debian/rules);
#   2. lintian on the result: no errors (warnings and info are shown, not fatal);
#   3. dpkg -c: each package holds exactly the files it must;
#   4. dpkg -x of every package into a scratch copy of the PostgreSQL tree (nothing is
#      installed on this machine), then the regress and isolation suites against that tree,
#      and a program compiled and linked against the extracted router library and header;
#   5. only with CONSISTENCY_PACKAGE_INSTALL=1 (CI, a machine of its own): dpkg -i on this
#      machine and the autopkgtest debian/tests/installcheck against the installed files.
# Run as root or as a user with sudo, like scripts/test.sh.  Ends with `N passed, N failed`.
# CONSISTENCY_KEEP=1 keeps the work directory (the .deb files, logs).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

PACKAGES+=(debhelper dpkg-dev lintian postgresql-server-dev-all binutils)
VERSION=$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Version)
ARCH=$(dpkg-architecture -q DEB_HOST_ARCH)
MULTIARCH=$(dpkg-architecture -q DEB_HOST_MULTIARCH)
EXT_PKG=postgresql-$PG_MAJOR-consistency
DEBS=("$EXT_PKG" libconsistency-router0 libconsistency-router-dev)

pass=0
fail=0
ok() { printf '    ok %s\n' "$1"; pass=$((pass + 1)); }
not_ok() { printf '    NOT OK %s\n' "$1"; fail=$((fail + 1)); }
check() {	# description command...
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
deb() { echo "$BUILD/${1}_${VERSION}_$ARCH.deb"; }

step "checking packages"
ensure_packages

step "copying the tree"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/consistency-package.XXXXXX")
[ "${CONSISTENCY_KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
BUILD=$WORK/build
SRC=$BUILD/postgresql-consistency
mkdir -p "$SRC"
tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.so.*' --exclude='*.bc' \
	--exclude=results --exclude=tmp_check --exclude=output_iso --exclude=log -cf - . | tar -C "$SRC" -xf -
chmod 755 "$WORK"
if is_root; then chown -R "$TEST_USER" "$WORK"; fi
export WORK

step "1. dpkg-buildpackage -us -uc -b"
if as_user env TMPDIR="$WORK" bash -c 'cd "$1" && dpkg-buildpackage -us -uc -b' _ "$SRC" >"$WORK/build.log" 2>&1; then
	ok "the packages build"
else
	not_ok "the packages build (tail of $WORK/build.log:)"
	tail -n 40 "$WORK/build.log"
	echo "$pass passed, $((fail + 1)) failed"
	exit 1
fi
for p in "${DEBS[@]}"; do
	check "$p ${VERSION} was built" test -f "$(deb "$p")"
done

step "2. lintian"
lintian_rc=0
as_user env TMPDIR="$WORK" lintian --fail-on error --info "$BUILD"/*.changes >"$WORK/lintian.log" 2>&1 || lintian_rc=$?
sed 's/^/    | /' "$WORK/lintian.log"
check "lintian reports no errors" test "$lintian_rc" -eq 0 -a "$(grep -c '^E:' "$WORK/lintian.log")" -eq 0

step "3. package contents"
contents() { dpkg -c "$(deb "$1")" | awk '{print $6}' | sed 's|^\./|/|'; }
has() {	# package path
	contents "$1" | grep -qx "$2"
}
lacks() {	# package regex
	! contents "$1" | grep -qE "$2"
}
libdir=/usr/lib/postgresql/$PG_MAJOR
for f in "$libdir/lib/consistency.so" "$libdir/bin/pg_consistency" \
	/usr/share/postgresql/$PG_MAJOR/extension/consistency.control \
	/usr/share/postgresql/$PG_MAJOR/extension/consistency--1.0.sql \
	/usr/share/postgresql/$PG_MAJOR/extension/consistency--1.0--1.1.sql \
	/usr/share/doc/$EXT_PKG/README.md.gz; do
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

step "4. the extracted packages, in a scratch PostgreSQL tree"
ROOT=$WORK/root
CONSISTENCY_SANDBOX=$ROOT make_sandbox >/dev/null
# make_sandbox copies the system tree, which may hold an installed consistency: remove it, so
# that every file under test comes from the packages.
rm -f "$ROOT$libdir/lib/consistency.so" "$ROOT$libdir/bin/pg_consistency" \
	"$ROOT"/usr/share/postgresql/$PG_MAJOR/extension/consistency*
rm -rf "$ROOT$libdir/lib/bitcode/consistency" "$ROOT$libdir/lib/bitcode/consistency.index.bc"
for p in "${DEBS[@]}"; do dpkg -x "$(deb "$p")" "$ROOT"; done
if is_root; then chown -R "$TEST_USER" "$ROOT"; fi
check "the extracted tree has the package's library" test -f "$ROOT$libdir/lib/consistency.so"
if as_user env PG_CONFIG="$ROOT$libdir/bin/pg_config" TMPDIR="$WORK" \
	"$SRC/scripts/lib/run-suites.sh" regress isolation >"$WORK/suites.log" 2>&1; then
	ok "regress and isolation pass against the extracted packages"
else
	not_ok "regress and isolation pass against the extracted packages"
fi
sed -n 's/^  \(regress\|isolation\)/    | &/p' "$WORK/suites.log"
tail -n 1 "$WORK/suites.log" | sed 's/^/    | /'
# A client program built against the -dev package's header and library.
if as_user env TMPDIR="$WORK" gcc -Wall -Werror -o "$WORK/router_example" "$SRC/test/router_example.c" \
	-I"$ROOT/usr/include/postgresql" -I"$(pg_config --includedir)" \
	-L"$ROOT/usr/lib/$MULTIARCH" -lconsistency_router -lpq >"$WORK/link.log" 2>&1; then
	ok "a program compiles and links against libconsistency-router-dev"
	check "it needs the library by its SONAME, libconsistency_router.so.0" \
		bash -c "readelf -d '$WORK/router_example' | grep -q 'NEEDED.*\\[libconsistency_router.so.0\\]'"
	check "the shared library's SONAME is libconsistency_router.so.0" \
		bash -c "readelf -d '$ROOT/usr/lib/$MULTIARCH/libconsistency_router.so.0' | grep -q 'SONAME.*\\[libconsistency_router.so.0\\]'"
else
	not_ok "a program compiles and links against libconsistency-router-dev"
	cat "$WORK/link.log"
fi

step "5. dpkg -i and the autopkgtest installcheck"
if [ "${CONSISTENCY_PACKAGE_INSTALL:-0}" = 1 ]; then
	# This changes the machine's PostgreSQL tree: only on a machine of its own (CI).
	debfiles=()
	for p in "${DEBS[@]}"; do debfiles+=("$(deb "$p")"); done
	if as_root dpkg -i "${debfiles[@]}" >"$WORK/dpkg.log" 2>&1; then
		ok "dpkg -i installs the packages"
		check "dpkg knows $EXT_PKG $VERSION" \
			bash -c "dpkg-query -W -f='\${Version}' '$EXT_PKG' | grep -qx '$VERSION'"
		if as_root "$SRC/debian/tests/installcheck" >"$WORK/installcheck.log" 2>&1; then
			ok "debian/tests/installcheck passes against the installed files"
		else
			not_ok "debian/tests/installcheck passes against the installed files"
			tail -n 60 "$WORK/installcheck.log"
		fi
	else
		not_ok "dpkg -i installs the packages"
		cat "$WORK/dpkg.log"
	fi
else
	info "skipped: set CONSISTENCY_PACKAGE_INSTALL=1 to install the packages on this machine"
fi

echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
