#!/usr/bin/env bash
# test/valgrind/run.sh: the regress and isolation suites on a server running under valgrind memcheck.
#
# Owns: the on-demand memcheck run of issue 9 (slow, so not part of scripts/test.sh).  It builds
# and installs the tree like scripts/test.sh (CONSISTENCY_SANDBOX is honoured), fetches
# PostgreSQL's own suppressions (test/valgrind/fetch-suppressions.sh), starts a throwaway
# server whose postmaster and every child run under memcheck, runs pg_regress and the isolation
# tester against it (installcheck style), stops it, and hands the per-process logs to
# test/valgrind/report.py, which prints every error whose stack includes the extension.
#
# Debian's server is not built with USE_VALGRIND, so memcheck does not know palloc's chunks and
# reports some noise in PostgreSQL itself; only errors whose stack passes through consistency.so
# (by object name or by one of our source files) count, after PostgreSQL's suppressions and
# their restatement for a stripped binary (test/valgrind/stripped-server.supp).  Exits non-zero
# if there is any such error, or if the server did not start or stop.
#
# Usage (as root, or a user with sudo for the packages and a filled suppression cache):
#   test/valgrind/run.sh [preload] [plain]
#     preload  shared_preload_libraries = 'consistency' (the production setting)
#     plain    the library loaded on first use, as the suites normally run
#   (default: both).
#   test/valgrind/run.sh --self-check
#     builds the tree with test/valgrind/planted-error.patch (a heap overrun in token_max),
#     runs pg_regress in the plain configuration, and passes only if the report finds that
#     error in the extension: proof that a clean report is not a report that looks nowhere.
#   Environment: CONSISTENCY_SANDBOX, CONSISTENCY_KEEP=1 (keep the logs),
#   VALGRIND_EXTRA (more valgrind options, e.g. --track-origins=yes), VALGRIND_ERROR_EXITCODE
#   (default 128; 0 lets a process with an error exit normally, for a run that must not crash).
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib/common.sh"
. "$REPO/scripts/lib/cluster.sh"

self_check=
suites=(regress isolation)
if [ "${1:-}" = --self-check ]; then
	self_check=1
	suites=(regress)
	shift
	set -- plain
fi
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(preload plain)
for c in "${configs[@]}"; do
	case $c in preload | plain) ;; *) die "unknown configuration: $c (preload or plain)" ;; esac
done

# valgrind is only needed here, so it is not in common.sh's PACKAGES (every test run installs those).
if ! command -v valgrind >/dev/null 2>&1; then
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
start=$(date +%s)

step "PostgreSQL's valgrind suppressions"
supp_src=$("$REPO/test/valgrind/fetch-suppressions.sh")
info "$supp_src"

step "building and installing the extension"
ensure_packages
prepare_workdir
if [ -n "$self_check" ]; then
	patch -d "$WORK" -p1 --quiet <"$REPO/test/valgrind/planted-error.patch"
	info "planted: test/valgrind/planted-error.patch"
fi
build_and_install
supp=$WORK/valgrind.supp
cp "$supp_src" "$supp"
chmod 644 "$supp"

status=0
results=()
for config in "${configs[@]}"; do
	dir=$WORK/vg-$config
	port=54390
	logs=$dir/valgrind
	step "server under memcheck ($config)"
	preload=()
	[ "$config" = plain ] || preload=("shared_preload_libraries = 'consistency'")
	# The suites' own temp-instance settings, plus slack for a server many times slower.
	mapfile -t temp_conf < <(grep -vE '^[[:space:]]*(#|$)' "$REPO/test/temp-instance.conf")
	cluster_create "$dir" "$port" "${preload[@]}" "${temp_conf[@]}" "authentication_timeout = 10min"
	as_user mkdir -p "$logs"

	# The postmaster itself is started by valgrind (pg_ctl cannot wrap it); every backend and
	# auxiliary process is a fork of it and is traced into its own %p.log.  --error-exitcode
	# turns a process with an error into a crash the postmaster reacts to, as on PostgreSQL's
	# valgrind buildfarm animals, so an error also shows up as failing tests.
	as_user setsid valgrind --tool=memcheck --trace-children=yes \
		--suppressions="$supp" --suppressions="$WORK/test/valgrind/stripped-server.supp" \
		--error-exitcode=${VALGRIND_ERROR_EXITCODE:-128} --log-file="$logs/%p.log" --gen-suppressions=all \
		--read-var-info=yes --leak-check=no --num-callers=40 --error-limit=no \
		--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END ${VALGRIND_EXTRA:-} \
		"$PG_BINDIR/postgres" -D "$dir/data" >"$dir/server.log" 2>&1 </dev/null &
	pm=$!
	ready=
	for _ in $(seq 1 600); do
		if as_user "$PG_BINDIR/pg_isready" -q -h "$dir" -p "$port"; then ready=1; break; fi
		kill -0 "$pm" 2>/dev/null || break
		sleep 1
	done
	[ -n "$ready" ] || { tail -n 30 "$dir/server.log" >&2; die "the server under valgrind did not start"; }
	info "server up (valgrind started as pid $pm), logs in $logs"

	for suite in "${suites[@]}"; do
		s0=$(date +%s)
		rc=0
		as_user env PGHOST="$dir" PGPORT="$port" make -C "$WORK" -s "installcheck-$suite" \
			PG_CONFIG="$PG_CONFIG" >"$WORK/log-$config-$suite.txt" 2>&1 || rc=$?
		pass=$(grep -cE '\.\.\. ok ' "$WORK/log-$config-$suite.txt" || true)
		fail=$(grep -cE '\.\.\. FAILED' "$WORK/log-$config-$suite.txt" || true)
		line=$(printf '%-8s %-10s %3d passed, %d failed, %4ds' "$config" "$suite" "$pass" "$fail" $(($(date +%s) - s0)))
		info "$line"
		results+=("$line")
		# A failing suite is reported, not counted: an error in a process makes it exit with
		# 128, which the failing tests then show, and the report below counts the error itself;
		# under preload, session_token's expected output (written for a library loaded on
		# first use) differs by design.
		if [ "$rc" -ne 0 ]; then
			tail -n 20 "$WORK/log-$config-$suite.txt"
			for d in "$WORK/regression.diffs" "$WORK/output_iso/regression.diffs"; do
				[ -f "$d" ] && head -n 80 "$d"
			done
		fi
	done

	# A fast shutdown requested while the server is still recovering from a crash (an error
	# turned into exit code 128 at the end of the last test) was seen to wait forever for the
	# checkpointer under valgrind: let recovery finish first, and if a fast shutdown still
	# hangs, stop the immediate way (every process still writes its valgrind summary).
	for _ in $(seq 1 300); do
		as_user "$PG_BINDIR/pg_isready" -q -h "$dir" -p "$port" && break
		sleep 1
	done
	info "stopping the server"
	if ! as_user "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 300 stop >/dev/null; then
		info "fast shutdown did not finish in 300s; stopping with -m immediate"
		as_user "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w -t 300 stop >/dev/null || {
			status=1
			info "the server did not stop"
		}
	fi
	wait "$pm" || true

	step "memcheck report ($config)"
	rc=0
	/usr/bin/python3 "$REPO/test/valgrind/report.py" --source-dir "$REPO/src" "$logs" \
		| tee "$WORK/report-$config.txt" || rc=$?
	[ "$rc" -eq 0 ] || status=1
	if [ "${CONSISTENCY_KEEP:-0}" = 1 ]; then info "logs kept in $logs"; fi
done

step "summary"
for line in "${results[@]}"; do info "$line"; done
info "elapsed $(($(date +%s) - start))s"
if [ -n "$self_check" ]; then
	if grep -q 'Invalid read.*' "$WORK/report-plain.txt" &&
		grep -q 'consistency_token_max (token.c:' "$WORK/report-plain.txt"; then
		info "self-check passed: the planted heap overrun in token_max was reported"
		exit 0
	fi
	info "self-check FAILED: the planted heap overrun in token_max was not reported"
	exit 1
fi
exit "$status"
