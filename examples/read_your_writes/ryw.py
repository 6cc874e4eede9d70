#!/usr/bin/python3
"""Read-your-writes routing with psycopg 3 and consistency's session LSN tokens.

Writes go to the primary; the commit's token arrives in the ParameterStatus message
consistency.last_commit_token (no extra round trip; the primary preloads the library).  A
read goes to the standby if it accepts the token (SET consistency.read_after succeeds once
it has replayed the write; YC304 means it is behind), otherwise to the primary.

    ryw.py --primary CONNINFO --standby CONNINFO [--standby-admin CONNINFO]

With --standby-admin (a superuser on the standby) it also pauses the standby's replay to
show the fallback to the primary, then resumes it.  Prints one line per check; exits 1 if
one fails.
"""
import argparse
import sys

import psycopg
from psycopg import sql

failed = []


def check(name, cond, why=""):
    print(("ok " if cond else "not ok ") + name + ("" if cond else f": {why}"), flush=True)
    if not cond:
        failed.append(name)


# ---- the application pattern ------------------------------------------------------------
class Router:
    def __init__(self, primary, standby):
        self.primary = psycopg.connect(primary, autocommit=True)
        self.standby = psycopg.connect(standby, autocommit=True)
        # Load the library in the standby session (when the standby does not preload it), so
        # that SET consistency.read_after is checked, not taken as a placeholder.
        self.standby.execute("SELECT consistency.token_status('v1:1:1:0/0')")
        self.token = None

    def write(self, query, params=()):
        rows = self.primary.execute(query, params).fetchall()
        self.token = self.primary.info.parameter_status("consistency.last_commit_token")
        return rows

    def read(self, query, params=(), waits_ms=(0, 200)):
        """Rows of query, and where they came from: 'standby' or 'primary'."""
        for wait_ms in waits_ms:           # first without waiting, then briefly
            try:
                self.standby.execute(sql.SQL(
                    "SET consistency.read_after_timeout = {}; SET consistency.read_after = {}"
                ).format(wait_ms, sql.Literal(self.token)))
                return self.standby.execute(query, params).fetchall(), "standby"
            except psycopg.Error as e:
                if e.sqlstate != "YC304":   # behind: try again, then the primary
                    raise
        return self.primary.execute(query, params).fetchall(), "primary"
# -------------------------------------------------------------------------------------------


ap = argparse.ArgumentParser()
ap.add_argument("--primary", required=True)
ap.add_argument("--standby", required=True)
ap.add_argument("--standby-admin")
args = ap.parse_args()

r = Router(args.primary, args.standby)
r.primary.execute("CREATE TABLE IF NOT EXISTS ryw_notes (id bigserial PRIMARY KEY, body text NOT NULL)")

# 1. Write, then read it back: never stale, and from the standby whenever it has caught up.
served = {"standby": 0, "primary": 0}
stale = 0
for i in range(50):
    (nid,), = r.write("INSERT INTO ryw_notes (body) VALUES (%s) RETURNING id", (f"note {i}",))
    if i == 0:
        check("the commit's token arrives as a ParameterStatus",
              r.token is not None and r.token.startswith("v1:"), repr(r.token))
    rows, where = r.read("SELECT body FROM ryw_notes WHERE id = %s", (nid,), waits_ms=(0, 2000))
    served[where] += 1
    stale += rows != [(f"note {i}",)]
print(f"served: {served['standby']} reads by the standby, {served['primary']} by the primary")
check("no read is stale", stale == 0, f"{stale} stale reads")
check("the standby serves reads", served["standby"] > 0, str(served))

# 2. The standby falls behind (replay paused): reads go to the primary, still fresh.
if args.standby_admin:
    admin = psycopg.connect(args.standby_admin, autocommit=True)
    admin.execute("SELECT pg_catalog.pg_wal_replay_pause()")
    (nid,), = r.write("INSERT INTO ryw_notes (body) VALUES ('while paused') RETURNING id")
    rows, where = r.read("SELECT body FROM ryw_notes WHERE id = %s", (nid,))
    check("a standby behind the token sends the read to the primary", where == "primary", where)
    check("the primary's answer has the write", rows == [("while paused",)], str(rows))
    r.standby.execute("RESET consistency.read_after")
    plain = r.standby.execute("SELECT body FROM ryw_notes WHERE id = %s", (nid,)).fetchall()
    check("a read on the standby without the token would have been stale", plain == [], str(plain))
    admin.execute("SELECT pg_catalog.pg_wal_replay_resume()")
    rows, where = r.read("SELECT body FROM ryw_notes WHERE id = %s", (nid,), waits_ms=(60000,))
    check("once replay resumes the standby serves the read again", where == "standby"
          and rows == [("while paused",)], f"{where} {rows}")

sys.exit(1 if failed else 0)
