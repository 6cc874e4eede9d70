#!/usr/bin/python3
"""A web shop's checkout on top of consistency's inventory reservation (psycopg 3).

A cart is held with reserve_all (all SKUs or none), the payment runs outside the database,
then the hold is confirmed (sold) or released (back on sale).  The order id is the
reservation id, so a checkout retried after a lost response or a crash holds stock once.

    checkout.py 'host=... dbname=... user=...'   (a role granted consistency_admin)

Prints what happens, one line per step, then checks the invariants; exits 1 if one fails.
"""
import sys
import threading
import time

import psycopg

DSN = sys.argv[1]
failed = []


def check(name, cond, why=""):
    print(("ok " if cond else "not ok ") + name + ("" if cond else f": {why}"), flush=True)
    if not cond:
        failed.append(name)


def connect():
    conn = psycopg.connect(DSN, autocommit=True)
    conn.execute("SELECT pg_catalog.set_config('search_path', '', false)")
    return conn


# ---- the application pattern ------------------------------------------------------------
class Declined(Exception):
    pass


def checkout(conn, order_id, cart, pay):
    """Hold the cart, charge, then sell it; or give the stock back if the payment fails.
    Safe to call again with the same order_id: the hold is taken once."""
    skus, qtys = zip(*sorted(cart.items()))
    answer = conn.execute(
        "SELECT consistency.reserve_all(%s, %s::text[], %s::bigint[], '5 minutes')",
        (order_id, list(skus), list(qtys))).fetchone()[0]
    if answer != "reserved":
        return "sold out"              # 'insufficient': nothing held, nothing stored
    try:
        pay(order_id)
    except Declined:
        conn.execute("SELECT consistency.release(%s)", (order_id,))
        return "declined"
    conn.execute("SELECT consistency.confirm(%s)", (order_id,))
    return "sold"
# -------------------------------------------------------------------------------------------


def paid(order_id):
    pass


def declined(order_id):
    raise Declined(order_id)


def available(conn, sku):
    return conn.execute("SELECT consistency.available(%s)", (sku,)).fetchone()[0]


conn = connect()
conn.execute("SELECT consistency.stock_set('mug', 10)")
conn.execute("SELECT consistency.stock_set('tee', 5, slots => 4)")    # a hot SKU: 4 slot rows
print("stock: mug 10, tee 5")

# 1. A paid cart is sold: both SKUs leave the stock.
r = checkout(conn, "order-1", {"mug": 2, "tee": 1}, paid)
check("a paid cart is sold", r == "sold", r)
check("its units left the stock", (available(conn, "mug"), available(conn, "tee")) == (8, 4),
      str((available(conn, "mug"), available(conn, "tee"))))

# 2. A declined payment gives the hold back.
r = checkout(conn, "order-2", {"mug": 3}, declined)
check("a declined cart is released", r == "declined", r)
check("its units are back on sale", available(conn, "mug") == 8, str(available(conn, "mug")))

# 3. A cart that does not fit holds nothing, not even the SKUs that would fit.
r = checkout(conn, "order-3", {"mug": 1, "tee": 9}, paid)
check("a cart that does not fit is sold out", r == "sold out", r)
check("and holds nothing", (available(conn, "mug"), available(conn, "tee")) == (8, 4),
      str((available(conn, "mug"), available(conn, "tee"))))

# 4. The client retries after a lost response: the same order id holds stock once, and the
#    retried confirm answers the same.
conn.execute("SELECT consistency.reserve_all('order-4', '{mug}', '{2}')")    # first attempt
r = checkout(conn, "order-4", {"mug": 2}, paid)                           # the retry
again = conn.execute("SELECT consistency.confirm('order-4')").fetchone()[0]
check("a retried checkout is sold once", r == "sold" and available(conn, "mug") == 6,
      f"{r}, mug {available(conn, 'mug')}")
check("a retried confirm answers the same units", again == 2, str(again))

# 5. An abandoned cart expires and its stock comes back; a late payment cannot sell it.
conn.execute("SELECT consistency.reserve_all('order-5', '{tee}', '{4}', '50 milliseconds')")
check("an abandoned cart holds its units", available(conn, "tee") == 0, str(available(conn, "tee")))
time.sleep(0.2)
expired = conn.execute("SELECT consistency.expire_reservations()").fetchone()[0]
check("expire_reservations expires it", expired == 1, str(expired))
check("its units are back on sale", available(conn, "tee") == 4, str(available(conn, "tee")))
try:
    conn.execute("SELECT consistency.confirm('order-5')")
    check("a late confirm is refused (YC203)", False, "it passed")
except psycopg.Error as e:
    check("a late confirm is refused (YC203)", e.sqlstate == "YC203", e.sqlstate)

# 6. A flash sale: 12 buyers want 2 tees each, 4 are left; some payments fail.
results = {}


def buyer(i):
    c = connect()
    results[i] = checkout(c, f"flash-{i}", {"tee": 2}, declined if i % 5 == 0 else paid)
    c.close()


threads = [threading.Thread(target=buyer, args=(i,)) for i in range(12)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sold = sum(1 for r in results.values() if r == "sold")
print(f"flash sale: {sold} sold, {sum(1 for r in results.values() if r == 'declined')} declined, "
      f"{sum(1 for r in results.values() if r == 'sold out')} sold out")
check("the flash sale never oversells", 2 * sold <= 4 and available(conn, "tee") == 4 - 2 * sold,
      f"sold {sold}, tee {available(conn, 'tee')}")
problems = conn.execute("SELECT * FROM consistency.check_inventory()").fetchall()
check("check_inventory() finds nothing", problems == [], str(problems))

sys.exit(1 if failed else 0)
