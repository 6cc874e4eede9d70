#!/usr/bin/python3
"""Read-your-writes with session LSN tokens, in Python (Debian's python3-psycopg).

The same pattern as the C router (src/client/): writes go to the primary and the token
arrives with the commit in the consistency.last_commit_token parameter; a read goes to a
standby that accepts the token (SET consistency.read_after succeeds only once the standby
has replayed it), otherwise to the primary.  SQLSTATE YC304 means "that standby is behind".

    router_example.py --primary CONNINFO --standby CONNINFO [--standby ...] [--cycles N]

Prints "cycles=N stale=S primary=P standby=R" and exits 1 if any read was stale.
"""
import argparse
import sys

import psycopg
from psycopg import sql


# ---- the application pattern (about 40 lines) -------------------------------------------
class Router:
    def __init__(self, primary, standbys, wait_ms=200):
        self.primary = psycopg.connect(primary, autocommit=True)
        self.standbys = [psycopg.connect(s, autocommit=True) for s in standbys]
        for s in self.standbys:  # load the extension's library in each standby session
            s.execute("SELECT consistency.token_status('v1:1:1:0/0')")
        self.wait_ms = wait_ms
        self.token = None

    def write(self, query, params=()):
        self.primary.execute(query, params)
        # reported by the server at commit, no extra round trip (library preloaded)
        self.token = self.primary.info.parameter_status("consistency.last_commit_token") \
            or self.primary.execute("SELECT consistency.write_token()").fetchone()[0]

    def _accepts(self, conn, timeout_ms):
        if self.token is None:
            return True
        try:
            conn.execute(sql.SQL("SET consistency.read_after_timeout = {}; "
                                 "SET consistency.read_after = {}").format(
                                     timeout_ms, sql.Literal(self.token)))
            return True
        except psycopg.Error:   # YC304 behind; YC302/YC303 never here: try elsewhere
            return False

    def read(self, query, params=()):
        for timeout_ms in (0, self.wait_ms):     # first without waiting, then briefly
            for i, conn in enumerate(self.standbys):
                if self._accepts(conn, timeout_ms):
                    return conn.execute(query, params).fetchall(), f"standby{i}"
        return self.primary.execute(query, params).fetchall(), "primary"
# -------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--primary", required=True)
    ap.add_argument("--standby", action="append", default=[])
    ap.add_argument("--cycles", type=int, default=100)
    args = ap.parse_args()

    router = Router(args.primary, args.standby)
    stale = 0
    served = {}
    for i in range(1, args.cycles + 1):
        router.write("UPDATE rw_counter SET v = %s WHERE id = 1", (i,))
        rows, where = router.read("SELECT v FROM rw_counter WHERE id = 1")
        served[where] = served.get(where, 0) + 1
        if rows[0][0] != i:
            print(f"cycle {i}: STALE read from {where}: {rows[0][0]}", file=sys.stderr)
            stale += 1
    standby = sum(n for w, n in served.items() if w != "primary")
    print(f"cycles={args.cycles} stale={stale} primary={served.get('primary', 0)} standby={standby}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
