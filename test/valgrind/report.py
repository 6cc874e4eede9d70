#!/usr/bin/python3
"""test/valgrind/report.py: what memcheck found in one server's per-process logs.

Owns: reading the %p.log files written by test/valgrind/run.sh, splitting them into error
reports (between the VALGRINDERROR-BEGIN and -END markers), and sorting each report into
"in the extension" (its stack passes through consistency.so, by object name or by one of the
extension's source files) or "elsewhere" (PostgreSQL, libc: the noise of a server not built
with USE_VALGRIND).  Prints every error in the extension in full, a count of the others by kind
and top frame, and the totals of valgrind's own ERROR SUMMARY lines (shown and suppressed).
Exits 1 if any error is in the extension, 2 if there are no logs to read.

Usage: report.py [--source-dir SRC] LOGDIR
"""

import argparse
import collections
import os
import re
import sys

PREFIX = re.compile(r"^==\d+==\s?")
SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) errors? from \d+ contexts? \(suppressed: (\d+) from \d+\)")
FRAME = re.compile(r"(?:at|by) 0x[0-9A-Fa-f]+: (.*)$")


def read_errors(path):
    """Yield (lines) of each error report in one log file; also return summary totals."""
    errors = []
    shown = suppressed = 0
    summaries = 0
    current = None
    with open(path, errors="replace") as f:
        for raw in f:
            line = PREFIX.sub("", raw.rstrip("\n"))
            if "VALGRINDERROR-BEGIN" in line:
                current = []
                continue
            if "VALGRINDERROR-END" in line:
                if current is not None:
                    errors.append(current)
                current = None
                continue
            if current is not None:
                current.append(line)
                continue
            m = SUMMARY.search(line)
            if m:
                summaries += 1
                shown += int(m.group(1))
                suppressed += int(m.group(2))
    if current:  # the process died inside a report
        errors.append(current)
    return errors, shown, suppressed, summaries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", default=os.path.join(os.path.dirname(__file__), "../../src"))
    ap.add_argument("logdir")
    args = ap.parse_args()

    ours = sorted(
        name for name in os.listdir(args.source_dir)
        if name.endswith((".c", ".h"))
    )
    mine = re.compile(r"consistency\.so|\((?:%s):\d+\)" % "|".join(re.escape(n) for n in ours))

    logs = sorted(
        os.path.join(args.logdir, n) for n in os.listdir(args.logdir) if n.endswith(".log")
    )
    if not logs:
        print("no valgrind logs in %s" % args.logdir)
        return 2

    in_ext = []
    elsewhere = collections.Counter()
    total_shown = total_suppressed = with_summary = 0
    for path in logs:
        errors, shown, suppressed, summaries = read_errors(path)
        total_shown += shown
        total_suppressed += suppressed
        with_summary += summaries
        for err in errors:
            text = "\n".join(err)
            if mine.search(text):
                in_ext.append((os.path.basename(path), text))
            else:
                kind = next((l.strip() for l in err if l.strip()), "?")
                top = next((FRAME.search(l).group(1) for l in err if FRAME.search(l)), "?")
                elsewhere["%s | %s" % (kind, top)] += 1

    print("processes traced:              %d (%d reached valgrind's exit summary)" % (len(logs), with_summary))
    print("errors reported (all code):    %d" % (len(in_ext) + sum(elsewhere.values())))
    print("errors suppressed:             %d (valgrind.supp, stripped-server.supp)" % total_suppressed)
    print("errors elsewhere (not ours):   %d" % sum(elsewhere.values()))
    for what, n in elsewhere.most_common(15):
        print("    %4d  %s" % (n, what))
    print("errors in the extension:       %d" % len(in_ext))
    for name, text in in_ext:
        print("\n---- %s ----\n%s" % (name, text))
    return 1 if in_ext else 0


if __name__ == "__main__":
    sys.exit(main())
