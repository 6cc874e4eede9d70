#!/usr/bin/python3
"""Two-phase commit across PostgreSQL clusters with psycopg 3's own two-phase API.

A coordinator database with the consistency extension names each participant's prepared
transaction with consistency.tpc_gid() and logs the decision with tpc_log_decision() in its
own transaction; the participants are driven through psycopg's DB-API two-phase methods:

    coordinator (one transaction):  gid = SELECT consistency.tpc_gid('stock')
    each participant:               conn.tpc_begin(gid); ...work...; conn.tpc_prepare()
    coordinator:                    SELECT consistency.tpc_log_decision(gid) for each; COMMIT
    each participant (phase 2):     conn.tpc_commit()

The gid is passed to tpc_begin() as a string, which psycopg uses verbatim for PREPARE
TRANSACTION; an Xid made by conn.xid(format_id, gtrid, bqual) would be sent in psycopg's
(JDBC's) encoding, "<format_id>_<base64 gtrid>_<base64 bqual>", which names no coordinator
transaction, so the resolver could not find its decision.  If the coordinator dies between
PREPARE and phase 2, `pg_consistency resolve --decisions-from COORDINATOR PARTICIPANT` finishes
every participant as the decision log says (no logged commit: roll back).

    transfer.py --coordinator CONNINFO --participant NAME=CONNINFO [--participant ...]
                [--first N] [--count N] [--abort-every K] [--crash-at prepared|decided|phase2-half]
    transfer.py --coordinator CONNINFO --participant NAME=CONNINFO ... --in-doubt

Runs --count transactions numbered from --first (default 1); every K-th is decided abort (the
participants roll back after the decision is logged).  Each writes a row (txn, gid, amount)
into public.tpc_ledger on every participant, with the gid that participant prepared under.
--crash-at kills this process (SIGKILL) during the last transaction: with
every participant prepared and the decision not logged (prepared), with the decision
committed and no phase 2 (decided), or after phase 2 on the first participant only
(phase2-half).  --in-doubt lists, through conn.tpc_recover(), the participants' prepared
transactions whose gid names this coordinator's cluster, with the coordinator's decision.
"""
import argparse
import os
import signal
import sys

import psycopg

ap = argparse.ArgumentParser()
ap.add_argument("--coordinator", required=True)
ap.add_argument("--participant", action="append", required=True, metavar="NAME=CONNINFO")
ap.add_argument("--first", type=int, default=1)
ap.add_argument("--count", type=int, default=10)
ap.add_argument("--abort-every", type=int, default=0)
ap.add_argument("--crash-at", choices=("prepared", "decided", "phase2-half"))
ap.add_argument("--in-doubt", action="store_true")
args = ap.parse_args()
if args.count < 1 or args.abort_every < 0:
    ap.error("--count must be at least 1, --abort-every at least 0")
if any(not spec.partition("=")[0] or not spec.partition("=")[1] for spec in args.participant):
    ap.error("--participant takes NAME=CONNINFO")
if len({spec.partition("=")[0] for spec in args.participant}) != len(args.participant):
    ap.error("each --participant needs a name of its own")


def connect(conninfo, autocommit=False):
    conn = psycopg.connect(conninfo, autocommit=autocommit)
    # Like pg_dump: nothing a database user created may stand in for what we call.
    conn.execute("SELECT pg_catalog.set_config('search_path', '', false)")
    if not autocommit:
        conn.commit()
    return conn


def crash(stage, txn):
    if args.crash_at == stage and txn == args.first + args.count - 1:
        print(f"crash: the coordinator dies at '{stage}' of transaction {txn}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


coordinator = connect(args.coordinator)
participants = {}
for spec in args.participant:
    name, _, conninfo = spec.partition("=")
    participants[name] = connect(conninfo)


# ---- the application pattern ---------------------------------------------------------------
def distributed(txn, decision):
    """One distributed transaction: returns the decision that was logged."""
    gids = {name: coordinator.execute("SELECT consistency.tpc_gid(%s)", (name,)).fetchone()[0]
            for name in participants}
    begun = []
    try:
        for i, (name, conn) in enumerate(participants.items()):
            conn.tpc_begin(gids[name])          # psycopg: BEGIN, and remembers the gid
            begun.append(conn)
            conn.execute("INSERT INTO public.tpc_ledger (txn, gid, amount) VALUES (%s, %s, %s)",
                         (txn, gids[name], -txn if i == 0 else txn))
            conn.tpc_prepare()                  # PREPARE TRANSACTION '<gid>'
    except psycopg.Error:
        coordinator.rollback()                  # nothing logged: presumed abort
        for conn in begun:
            conn.tpc_rollback()                 # ROLLBACK, or ROLLBACK PREPARED once prepared
        raise
    crash("prepared", txn)
    for name in participants:                   # the decision, durable when this commits
        coordinator.execute("SELECT consistency.tpc_log_decision(%s, %s)", (gids[name], decision))
    coordinator.commit()
    crash("decided", txn)
    for i, conn in enumerate(participants.values()):    # phase 2
        if decision == "commit":
            conn.tpc_commit()                   # COMMIT PREPARED '<gid>'
        else:
            conn.tpc_rollback()
        if i == 0:
            crash("phase2-half", txn)
    return decision
# -----------------------------------------------------------------------------------------------


if args.in_doubt:
    sysid = coordinator.execute(
        "SELECT system_identifier::pg_catalog.text FROM pg_catalog.pg_control_system()").fetchone()[0]
    coordinator.rollback()
    for name, conn in participants.items():
        for xid in conn.tpc_recover():          # psycopg: pg_prepared_xacts as Xid objects
            if not xid.gtrid.startswith(f"cy2:{sysid}:"):
                continue
            row = coordinator.execute(
                "SELECT decision FROM consistency.tpc_decisions WHERE gid OPERATOR(pg_catalog.=) %s",
                (xid.gtrid,)).fetchone()
            coordinator.rollback()
            print(f"in doubt: {name} {xid.gtrid} prepared {xid.prepared:%Y-%m-%d %H:%M:%S} "
                  f"decision {row[0] if row else 'none (presumed abort)'}", flush=True)
    sys.exit(0)

committed = aborted = 0
for txn in range(args.first, args.first + args.count):
    decision = "abort" if args.abort_every and txn % args.abort_every == 0 else "commit"
    distributed(txn, decision)
    committed += decision == "commit"
    aborted += decision == "abort"
print(f"done: {committed} committed, {aborted} aborted", flush=True)
