#!/usr/bin/python3
"""An HTTP API with the Idempotency-Key header, on consistency's idempotency keys (Flask, psycopg 3).

Implements the IETF HTTPAPI draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header) for two endpoints that require the header:

  POST /orders     {"customer": "...", "item": "...", "qty": N}
      One database transaction: consistency.idem_begin claims the key, the order is
      inserted, and idem_complete stores the response (status, Location, body) with it.
  POST /payments   {"order_id": N, "amount_cents": N}
      Charges an external payment provider, which cannot sit inside a transaction, under a
      lease: idem_lease (committed at once), the provider call, idem_checkpoint with the
      provider's charge id, then the payment row and idem_complete in one transaction.  A
      handler that dies after the charge is resumed by the retry once the lease runs out,
      from the checkpoint: the provider is not called twice.

Answers, as the draft says:
  first request           runs; 201 Created with Location and a JSON body
  retry (same key, body)  the stored status, Location and body, byte for byte, plus
                          "Idempotent-Replayed: true"
  same key, other body    422 (consistency's YC001)
  concurrent duplicate    409 with Retry-After (--on-concurrent conflict, the default); with
                          --on-concurrent wait a duplicate of POST /orders waits for the first
                          request and gets its response (up to --wait-timeout, then 409)
  missing or malformed    400: the header is a Structured Field string, Idempotency-Key: "k"
  bad body                400 (not JSON, members missing or extra, an integer outside 1..2^31-1,
                          a string empty or with NUL), 413 over 64 kB; the key stays unused
Errors are problem details (RFC 9457, application/problem+json).  Keys are scoped per
endpoint ("POST /orders"); the request fingerprint is SHA-256 of the body as canonical JSON
(sorted keys, no whitespace), so reformatting a body is not a different request.

    app.py --dsn CONNINFO [--host 127.0.0.1] [--port 0] [--port-file FILE]
           [--on-concurrent conflict|wait] [--wait-timeout 10s] [--lease 30s] [--ttl '24 hours']

Serves with Flask's (Werkzeug's) threaded server, one thread and one database connection
per request (application_name http_idempotency:PORT); --port 0 takes a free port, written
with the process id to --port-file ("PORT PID") once the server listens.
The role in CONNINFO is granted consistency_user and owns the tables of schema.sql.
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
from datetime import datetime, timezone

import psycopg
from psycopg.types.json import Jsonb
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

ap = argparse.ArgumentParser()
ap.add_argument("--dsn", required=True)
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--port-file")
ap.add_argument("--on-concurrent", choices=("conflict", "wait"), default="conflict")
ap.add_argument("--wait-timeout", default="10s")
ap.add_argument("--lease", default="30s")
ap.add_argument("--ttl", default="24 hours")
args = ap.parse_args()

app = Flask(__name__)
MAX_BODY = 64 * 1024                               # a larger body: 413
INT_MAX = 2**31 - 1                                # the integer columns are int4 (ids: int8)


APPLICATION_NAME = "http_idempotency"     # the server's port is added once it listens


def connect(autocommit=False):
    conn = psycopg.connect(args.dsn, autocommit=autocommit, application_name=APPLICATION_NAME)
    # Like pg_dump: nothing a database user created may stand in for what we call.
    conn.execute("SELECT pg_catalog.set_config('search_path', '', false)")
    if not autocommit:
        conn.commit()
    return conn


# ---- HTTP: problem details, the header, the fingerprint --------------------------------------
def problem(status, kind, title, detail, headers=None):
    body = json.dumps({"type": "/problems/" + kind, "title": title, "status": status,
                       "detail": detail})
    return Response(body, status=status, headers=headers or {},
                    content_type="application/problem+json")


class BadRequest(Exception):
    def __init__(self, response):
        self.response = response


# An sf-string (RFC 8941 section 3.3.3): printable ASCII in double quotes, \" and \\ escaped.
SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')


def idempotency_key():
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        raise BadRequest(problem(400, "idempotency-key-missing", "Idempotency-Key header missing",
                                 f"{request.method} {request.path} requires an Idempotency-Key header."))
    m = SF_STRING.fullmatch(raw.strip(" \t"))
    key = re.sub(r'\\(["\\])', r"\1", m.group(1)) if m else ""
    if not m or not 1 <= len(key) <= 255:
        raise BadRequest(problem(400, "idempotency-key-malformed", "Idempotency-Key header malformed",
                                 'The key is a quoted string of 1 to 255 printable ASCII characters, '
                                 'e.g. Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324".'))
    return key


def json_body(fields):
    """The request's JSON object, checked against fields {name: type}, and its fingerprint."""
    if (request.content_length or 0) > MAX_BODY:
        # Read (and drop) a body of up to 1 MB first: closing the socket with unread data
        # resets the connection, and the client might not see the 413.
        if request.content_length <= 1024 * 1024:
            request.get_data()
        raise BadRequest(problem(413, "body-too-large", "Request body too large",
                                 f"The body is at most {MAX_BODY} bytes."))
    try:
        body = json.loads(request.get_data(as_text=True))
    except ValueError:
        body = None
    if not isinstance(body, dict) or set(body) != set(fields) or any(
            type(body[f]) is not t or (t is int and not 0 < body[f] <= INT_MAX)
            or (t is str and (body[f] == "" or "\0" in body[f]))
            for f, t in fields.items()):
        raise BadRequest(problem(400, "invalid-body", "Invalid request body",
                                 "The body is a JSON object with exactly these members: "
                                 + ", ".join(f"{f} ({f'integer from 1 to {INT_MAX}' if t is int else 'non-empty string without NUL'})"
                                             for f, t in fields.items()) + "."))
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return body, "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def stored(status, body, location=None):
    """The response as idem_complete stores it: the body as a JSON string, so it is replayed
    byte for byte (a jsonb object would be re-serialised)."""
    return {"status": status, "body": body, "location": location}


def respond(resp, replayed=False):
    headers = {"Location": resp["location"]} if resp["location"] else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(resp["body"], status=resp["status"], headers=headers,
                    content_type="application/json")


def key_reused():
    return problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                   "This key was used for a request with another body; a new request needs a new key.")


def in_progress(retry_after):
    return problem(409, "request-in-progress", "A request with this key is in progress",
                   "Retry after the number of seconds in Retry-After to get its response.",
                   {"Retry-After": str(retry_after)})


@app.errorhandler(BadRequest)
def bad_request(e):
    return e.response


@app.errorhandler(HTTPException)
def http_error(e):
    return problem(e.code, "http-" + str(e.code), e.name, e.description)


@app.errorhandler(psycopg.Error)
def database_error(e):
    return problem(503 if isinstance(e, psycopg.OperationalError) else 500, "database-error",
                   "Database error", (f"SQLSTATE {e.sqlstate}" if e.sqlstate else "No connection")
                   + ": the request was not completed; retry it with the same Idempotency-Key.")


# ---- POST /orders: the key, the order and the response in one transaction -------------------
@app.post("/orders")
def create_order():
    key = idempotency_key()
    order, fingerprint = json_body({"customer": str, "item": str, "qty": int})
    scope = "POST /orders"
    wait = args.on_concurrent == "wait"
    with connect() as conn:
        try:
            with conn.transaction():
                if wait:
                    conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)",
                                 (args.wait_timeout,))
                status, response = conn.execute(
                    "SELECT status, response FROM consistency.idem_begin(%s, %s, %s::pg_catalog.interval,"
                    " %s, wait => %s)", (key, fingerprint, args.ttl, scope, wait)).fetchone()
                if status == "replay":
                    return respond(response, replayed=True)
                if status == "in_progress":
                    return in_progress(1)
                (order_id,) = conn.execute(
                    "INSERT INTO shop.orders (idempotency_key, customer, item, qty)"
                    " VALUES (%s, %s, %s, %s) RETURNING id",
                    (key, order["customer"], order["item"], order["qty"])).fetchone()
                response = stored(201, json.dumps({"id": order_id, **order, "status": "created"}),
                                  f"/orders/{order_id}")
                conn.execute("SELECT consistency.idem_complete(%s, %s, %s)",
                             (key, Jsonb(response), scope))
            return respond(response)        # committed: the order and its response together
        except psycopg.Error as e:
            if e.sqlstate == "YC001":
                return key_reused()
            if e.sqlstate == "55P03":       # waited --wait-timeout for the first request
                return in_progress(1)
            raise


@app.get("/orders/<int:order_id>")
def get_order(order_id):
    with connect(autocommit=True) as conn:
        row = conn.execute("SELECT id, customer, item, qty FROM shop.orders"
                           " WHERE id OPERATOR(pg_catalog.=) %s", (order_id,)).fetchone()
    if row is None:
        return problem(404, "not-found", "No such order", f"There is no order {order_id}.")
    return Response(json.dumps(dict(zip(("id", "customer", "item", "qty"), row))),
                    content_type="application/json")


# ---- POST /payments: an external call under a lease ------------------------------------------
def provider_charge(merchant_key, amount_cents):
    """The payment provider's API: its own connection, committed at once."""
    with connect(autocommit=True) as conn:
        return conn.execute(
            "INSERT INTO provider.charges (charge_id, merchant_key, amount_cents)"
            " VALUES ('ch_' OPERATOR(pg_catalog.||) pg_catalog.md5(pg_catalog.gen_random_uuid()::pg_catalog.text),"
            "         %s, %s)"
            " ON CONFLICT (merchant_key) DO UPDATE SET calls = provider.charges.calls OPERATOR(pg_catalog.+) 1"
            " RETURNING charge_id", (merchant_key, amount_cents)).fetchone()[0]


@app.post("/payments")
def create_payment():
    key = idempotency_key()
    payment, fingerprint = json_body({"order_id": int, "amount_cents": int})
    scope = "POST /payments"
    with connect(autocommit=True) as conn:
        try:
            status, response, recovery_point, attempt = conn.execute(
                "SELECT status, response, recovery_point, attempt FROM consistency.idem_lease("
                "%s, %s, %s::pg_catalog.interval, %s, %s::pg_catalog.interval, wait => false)",
                (key, fingerprint, args.lease, scope, args.ttl)).fetchone()
        except psycopg.Error as e:
            if e.sqlstate == "YC001":
                return key_reused()
            raise
        if status == "replay":
            return respond(response, replayed=True)
        if status == "in_progress":     # another handler holds the lease: when does it run out?
            row = conn.execute(
                "SELECT lease_expires_at FROM consistency.idempotency_keys"
                " WHERE scope OPERATOR(pg_catalog.=) %s AND key OPERATOR(pg_catalog.=) %s",
                (scope, key)).fetchone()
            left = (row[0] - datetime.now(timezone.utc)).total_seconds() if row and row[0] else 1
            return in_progress(max(1, math.ceil(left)))
        # new (attempt 1) or resume (the lease of a handler that died ran out: attempt n+1)
        try:
            found = conn.execute("SELECT 1 FROM shop.orders WHERE id OPERATOR(pg_catalog.=) %s",
                                 (payment["order_id"],)).fetchone()
            if found is None:
                conn.execute("SELECT consistency.idem_release(%s, %s, %s)", (key, scope, attempt))
                return problem(404, "not-found", "No such order",
                               f"There is no order {payment['order_id']}.")
            if recovery_point and recovery_point.startswith("charged:"):
                charge_id = recovery_point[len("charged:"):]     # charged before the crash
            else:
                charge_id = provider_charge(key, payment["amount_cents"])
                conn.execute("SELECT consistency.idem_checkpoint(%s, %s, %s, %s)",
                             (key, "charged:" + charge_id, scope, attempt))
            with conn.transaction():
                (payment_id,) = conn.execute(
                    "INSERT INTO shop.payments (idempotency_key, order_id, amount_cents, charge_id, attempt)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (key, payment["order_id"], payment["amount_cents"], charge_id, attempt)).fetchone()
                response = stored(201, json.dumps({"id": payment_id, **payment, "charge_id": charge_id,
                                                   "status": "paid"}), f"/payments/{payment_id}")
                conn.execute("SELECT consistency.idem_complete(%s, %s, %s, %s)",
                             (key, Jsonb(response), scope, attempt))
            return respond(response)
        except psycopg.Error as e:
            if e.sqlstate == "YC003":   # our lease ran out and another handler took over
                return in_progress(1)
            raise


if __name__ == "__main__":
    server = make_server(args.host, args.port, app, threaded=True)
    APPLICATION_NAME = f"http_idempotency:{server.server_port}"
    if args.port_file:     # "PORT PID", complete once it exists
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{server.server_port} {os.getpid()}\n")
        os.rename(args.port_file + ".tmp", args.port_file)
    print(f"listening on http://{args.host}:{server.server_port}", file=sys.stderr, flush=True)
    server.serve_forever()
