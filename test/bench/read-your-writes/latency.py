#!/usr/bin/python3
"""Benchmark driver: from "the write committed on the primary" to "a read on the standby may
proceed", per method, and the CPU a standby spends while 100 sessions wait.

    latency.py --primary CONNINFO --watched CONNINFO --polling CONNINFO --samples N
               --standby-pids-watched PID --standby-pids-polling PID

Methods, interleaved on every sample (each sample is one fresh write):
  busy      client re-reads pg_last_wal_replay_lsn() in a tight loop: ~ the replication
            lag itself (the baseline the others are compared with)
  poll10ms  client re-reads pg_last_wal_replay_lsn() every 10 ms (a common hand-made wait)
  watched   SET consistency.read_after on a standby with the library preloaded (replay watcher)
  polling   SET consistency.read_after on a standby with session_preload_libraries (1 ms polling)
Prints one line per method: "method p50_ms p99_ms", then "cpu <standby> <waiters> <percent>".
"""
import argparse
import os
import threading
import time

import psycopg
from psycopg import sql


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s))) - 1))]


def cpu_ticks(postmaster_pid):
    """utime + stime of a postmaster's children (clock ticks)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster_pid:
            total += int(fields[11]) + int(fields[12])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--primary", required=True)
    ap.add_argument("--watched", required=True)
    ap.add_argument("--polling", required=True)
    ap.add_argument("--watched-pid", type=int, required=True)
    ap.add_argument("--polling-pid", type=int, required=True)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--waiters", type=int, default=100)
    ap.add_argument("--cpu-seconds", type=float, default=5.0)
    args = ap.parse_args()

    primary = psycopg.connect(args.primary, autocommit=True)
    watched = psycopg.connect(args.watched, autocommit=True)
    polling = psycopg.connect(args.polling, autocommit=True)
    probe = psycopg.connect(args.watched, autocommit=True)
    for c in (watched, polling):
        c.execute("SET consistency.read_after_timeout = '30s'")

    def write():
        primary.execute("UPDATE rw_counter SET v = v + 1 WHERE id = 1")
        t0 = time.perf_counter()
        token = primary.info.parameter_status("consistency.last_commit_token")
        return t0, token, token.rsplit(":", 1)[1]

    def client_poll(lsn, sleep_s):
        while not probe.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
            if sleep_s:
                time.sleep(sleep_s)

    methods = {
        "busy": lambda tok, lsn: client_poll(lsn, 0),
        "poll10ms": lambda tok, lsn: client_poll(lsn, 0.010),
        "watched": lambda tok, lsn: watched.execute(
            sql.SQL("SET consistency.read_after = {}").format(sql.Literal(tok))),
        "polling": lambda tok, lsn: polling.execute(
            sql.SQL("SET consistency.read_after = {}").format(sql.Literal(tok))),
    }
    samples = {m: [] for m in methods}
    for _ in range(args.samples):
        for name, wait in methods.items():
            t0, token, lsn = write()
            wait(token, lsn)
            samples[name].append((time.perf_counter() - t0) * 1000.0)
    for name, values in samples.items():
        print(f"{name} {pct(values, 50):.3f} {pct(values, 99):.3f}")

    # CPU while N sessions wait on a paused standby (and with nobody waiting).
    hz = os.sysconf("SC_CLK_TCK")
    for label, conninfo, pmpid in (("watched", args.watched, args.watched_pid),
                                   ("polling", args.polling, args.polling_pid)):
        admin = psycopg.connect(conninfo, autocommit=True)
        admin.execute("SELECT pg_wal_replay_pause()")
        while admin.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] != "paused":
            time.sleep(0.01)
        before = cpu_ticks(pmpid)
        time.sleep(args.cpu_seconds)
        idle = (cpu_ticks(pmpid) - before) / hz / args.cpu_seconds * 100.0
        print(f"cpu {label} 0 {idle:.1f}")

        _, token, _ = write()
        conns = [psycopg.connect(conninfo, autocommit=True) for _ in range(args.waiters)]
        errors = []

        def waiter(c):
            try:
                c.execute("SET consistency.read_after_timeout = '60s'")
                c.execute(sql.SQL("SET consistency.read_after = {}").format(sql.Literal(token)))
            except psycopg.Error as e:
                errors.append(e)

        threads = [threading.Thread(target=waiter, args=(c,)) for c in conns]
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'Extension'"
                            ).fetchone()[0] < args.waiters and time.time() < deadline:
            time.sleep(0.05)
        before = cpu_ticks(pmpid)
        time.sleep(args.cpu_seconds)
        busy = (cpu_ticks(pmpid) - before) / hz / args.cpu_seconds * 100.0
        print(f"cpu {label} {args.waiters} {busy:.1f}")
        admin.execute("SELECT pg_wal_replay_resume()")
        for t in threads:
            t.join()
        if errors:
            raise SystemExit(f"{len(errors)} waiters failed: {errors[0]}")
        for c in conns:
            c.close()
        admin.close()


if __name__ == "__main__":
    main()
