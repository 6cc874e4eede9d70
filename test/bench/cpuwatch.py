#!/usr/bin/python3
"""test/bench/cpuwatch.py: how much of the machine's CPU a benchmark section had to itself.

Owns: sampling, while one section runs, the machine's busy CPU time (/proc/stat) and the CPU
time of the benchmark's own processes, i.e. every process whose working directory is under
--root (the run's work directory: its servers' data directories, pgbench's log directory,
the Redis directory, run.sh itself).  The rest is what other processes took, the noise the
section's ratios suffered.  On SIGTERM it writes one line to --out:

    elapsed_s busy_cores ours_cores others_cores

A process's CPU time is counted as it grows (utime + stime, plus cutime + cstime: the
children it has reaped); when a process disappears, its parent's cutime grows by the
child's final total, so what was already counted for the child is subtracted there instead
of being counted twice (a parent that is gone as well passed it on to its own parent).
Started and stopped by test/bench/run.sh around each section.
"""
import argparse
import os
import signal
import time

HZ = os.sysconf('SC_CLK_TCK')


def busy_jiffies():
    with open('/proc/stat') as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return sum(fields[:8]) - fields[3] - fields[4]


def our_processes(root):
    """pid -> (ppid, total jiffies) for processes whose cwd is under root."""
    procs = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            cwd = os.readlink('/proc/%s/cwd' % name)
            if cwd != root and not cwd.startswith(root + '/'):
                continue
            with open('/proc/%s/stat' % name) as f:
                rest = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        procs[int(name)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return procs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--interval', type=float, default=0.5)
    args = ap.parse_args()
    root = os.path.realpath(args.root)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    t0 = time.monotonic()
    busy0 = busy_jiffies()
    last = our_processes(root)
    ours = 0
    while not stop:
        time.sleep(args.interval)
        now = our_processes(root)
        for pid, (ppid, total) in now.items():
            before = last.get(pid)
            # a new process: everything it used is this section's (it started after us)
            ours += total - (before[1] if before else 0)
        for pid, (ppid, total) in last.items():
            if pid in now:
                continue
            # Gone.  If a process of ours reaped it, its final total went into that
            # parent's cutime (and on up through parents that are gone too, into the first
            # one still here), which counts it again: take back what was counted for it.
            while ppid in last and ppid not in now:
                ppid = last[ppid][0]
            if ppid in now:
                ours -= total
        last = now
    elapsed = time.monotonic() - t0
    busy = busy_jiffies() - busy0
    busy_cores = busy / HZ / elapsed
    ours_cores = max(0, ours) / HZ / elapsed
    with open(args.out, 'w') as f:
        f.write('%.1f %.2f %.2f %.2f\n' % (elapsed, busy_cores, ours_cores,
                                          max(0.0, busy_cores - ours_cores)))


if __name__ == '__main__':
    main()
