#!/usr/bin/env bash
# scripts/test.sh: install what is missing, build, install, and run every test suite.
#
# The README's test command; .ci/run calls it.  Works as root (servers then run as the
# postgres user) or as a user with sudo; re-running it is safe.  Ends with `N passed, N failed`
# and exits non-zero if anything failed or nothing ran.
# Usage: scripts/test.sh [regress] [isolation] [tap] [pgtap] [fuzz]   (default: all five)
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

step "checking packages"
ensure_packages

step "building and installing the extension"
prepare_workdir
build_and_install

step "running test suites as $TEST_USER in $WORK"
as_user env PG_CONFIG="$PG_CONFIG" TMPDIR="$WORK" "$WORK/scripts/lib/run-suites.sh" "$@"
