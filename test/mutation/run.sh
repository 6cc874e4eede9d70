#!/usr/bin/env bash
# test/mutation/run.sh: mutation testing, to show the suites notice a deliberate bug.
#
# Owns: applying each mutant (test/mutation/mutants/*.patch, one realistic one-line bug each,
# its first line a comment saying what it breaks) to a fresh copy of the tree, running the
# suites on the copy through scripts/test.sh one at a time (regress, isolation, tap, pgtap) and
# stopping at the first that fails: the mutant is killed.  If all four pass, it survived: some
# behaviour is not tested.  A mutant that does not apply or does not build is reported as
# broken and not counted.  Prints one line per mutant and "killed K of N".
#
# Each suite runs on one leg only: PostgreSQL 15, configuration plain (scripts/test.sh --pg 15
# --config plain).  A mutant is a bug in the extension's own logic, not in version or
# preload handling, so one leg is enough to judge it, and a run of all mutants stays
# affordable (the default, both versions and both configurations, would cost four times as much).
#
# Before the mutants, the unmodified tree must pass all four suites (else every mutant would
# look killed); MUTATION_BASELINE=0 skips that check when it was just run.
# Everything is installed into a private sandbox PostgreSQL tree (CONSISTENCY_SANDBOX, default
# ${TMPDIR:-/tmp}/consistency-mutation-sandbox), never into the system one.
# Usage (as root, like scripts/test.sh): test/mutation/run.sh [mutant...]
#   a mutant is a name (inventory-sell-out-refused) or a patch file; default: all of them.
#   CONSISTENCY_KEEP=1 keeps the per-suite logs of every mutant (each failing suite's log
#   holds its diffs); the copies of the tree are removed either way.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
MUTANTS_DIR=$REPO/test/mutation/mutants
SUITES=(regress isolation tap pgtap)
export CONSISTENCY_SANDBOX=${CONSISTENCY_SANDBOX:-${TMPDIR:-/tmp}/consistency-mutation-sandbox}

die() { printf 'error: %s\n' "$*" >&2; exit 2; }

patches=()
if [ $# -eq 0 ]; then
	for p in "$MUTANTS_DIR"/*.patch; do [ -f "$p" ] && patches+=("$p"); done
else
	for m in "$@"; do
		if [ -f "$m" ]; then patches+=("$(cd "$(dirname "$m")" && pwd)/$(basename "$m")")
		elif [ -f "$MUTANTS_DIR/$m.patch" ]; then patches+=("$MUTANTS_DIR/$m.patch")
		elif [ -f "$MUTANTS_DIR/$m" ]; then patches+=("$MUTANTS_DIR/$m")
		else die "no such mutant: $m"
		fi
	done
fi
[ ${#patches[@]} -gt 0 ] || die "no mutants in $MUTANTS_DIR"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/consistency-mutation.XXXXXX")
chmod 755 "$RUN"
[ "${CONSISTENCY_KEEP:-0}" = 1 ] || trap 'rm -rf "$RUN"' EXIT

# A copy of the tree (no .git, no build products), with the patch applied if one is given.
copy_tree() {	# dest [patch]
	mkdir -p "$1"
	tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=results --exclude=tmp_check --exclude=output_iso --exclude=log \
		-cf - . | tar -C "$1" -xf -
	[ $# -lt 2 ] || patch -d "$1" -p1 --quiet --forward --no-backup-if-mismatch <"$2" >"$1.patch.log" 2>&1
}

# Run the suites in order, stopping at the first failure.  Prints the failing suite, "build"
# if the tree did not build, or nothing if every suite passed; returns non-zero on a failure.
run_suites() {	# tree logprefix
	local suite
	for suite in "${SUITES[@]}"; do
		# CONSISTENCY_KEEP is the runner's: scripts/test.sh's work directories always go.
		if ! env -u CONSISTENCY_KEEP "$1/scripts/test.sh" --pg 15 --config plain "$suite" >"$2-$suite.log" 2>&1; then
			if grep -q '^==> running test suites' "$2-$suite.log"; then echo "$suite"; else echo build; fi
			return 1
		fi
	done
	return 0
}

start=$(date +%s)
if [ "${MUTATION_BASELINE:-1}" != 0 ]; then
	printf 'baseline (unmodified tree, %s) ... ' "${SUITES[*]}"
	copy_tree "$RUN/baseline"
	if failed=$(run_suites "$RUN/baseline" "$RUN/baseline"); then
		echo "pass"
		rm -rf "${RUN:?}/baseline"
	else
		echo "FAILED in $failed"
		tail -n 30 "$RUN/baseline-$failed.log"
		die "the unmodified tree fails; fix that before mutation testing"
	fi
fi

killed=0
survived=()
broken=()
for p in "${patches[@]}"; do
	name=$(basename "$p" .patch)
	t0=$(date +%s)
	if ! copy_tree "$RUN/$name" "$p"; then
		printf '%-45s broken (does not apply: %s)\n' "$name" "$(head -n 1 "$RUN/$name.patch.log")"
		broken+=("$name")
		continue
	fi
	failed=$(run_suites "$RUN/$name" "$RUN/$name")
	rc=$?
	secs=$(($(date +%s) - t0))
	if [ "$rc" -eq 0 ]; then
		printf '%-45s SURVIVED all four suites (%ds)\n' "$name" "$secs"
		survived+=("$name")
	elif [ "$failed" = build ]; then
		printf '%-45s broken (does not build; see %s)\n' "$name" "$RUN/$name-regress.log"
		broken+=("$name")
	else
		printf '%-45s killed by %s (%ds)\n' "$name" "$failed" "$secs"
		killed=$((killed + 1))
	fi
	rm -rf "${RUN:?}/$name"
done

n=$((killed + ${#survived[@]}))
echo
[ ${#survived[@]} -eq 0 ] || printf 'survivors (untested behaviour):\n%s\n' "$(printf '  %s\n' "${survived[@]}")"
[ ${#broken[@]} -eq 0 ] || printf 'broken mutants (not counted): %s\n' "${broken[*]}"
echo "killed $killed of $n ($(($(date +%s) - start))s)"
[ ${#broken[@]} -eq 0 ]
