#!/usr/bin/python3
"""Optimistic versioning through SQLAlchemy's ORM (Debian python3-sqlalchemy 1.4, psycopg2).

Run by test/t/070_orm_sqlalchemy.pl against a throwaway server; alone:
    python3 test/orm/sqlalchemy_versioning.py 'host=/tmp port=5432 dbname=postgres user=app'
The database needs the tables the .pl file creates (doc_inc: enable_versioning(...,
strict => true, mode => 'increment'); doc_read: enable_versioning(...), mode 'read';
doc_plain: enable_versioning(...) too, for the mode mismatch).  Prints one line per check,
"ok <name>" or "not ok <name>: <why>", then a "figures" line; exits 1 if any check failed.
"""
import sys
import threading

import psycopg2
import psycopg2.errorcodes
from sqlalchemy import BigInteger, Column, Integer, Text, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.orm.exc import StaleDataError

DSN = sys.argv[1]
engine = create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(DSN),
                       pool_size=8, future=True)
Base = declarative_base()
failed = []


def check(name, cond, why=""):
    if cond:
        print(f"ok {name}", flush=True)
    else:
        print(f"not ok {name}: {why}", flush=True)
        failed.append(name)


class DocInc(Base):
    """Client-side counter (the ORM default): SET version = read + 1 WHERE version = read."""
    __tablename__ = "doc_inc"
    id = Column(Integer, primary_key=True)
    body = Column(Text, nullable=False)
    n = Column(Integer, nullable=False, default=0)
    version = Column(BigInteger, nullable=False)
    __mapper_args__ = {"version_id_col": version}


class DocRead(Base):
    """Server-side counter: the UPDATE leaves the version to the trigger, RETURNING reads it."""
    __tablename__ = "doc_read"
    id = Column(Integer, primary_key=True)
    body = Column(Text, nullable=False)
    n = Column(Integer, nullable=False, default=0)
    version = Column(BigInteger, nullable=False, server_default=text("1"))
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class DocPlain(Base):
    """The client-side counter on a table in mode 'read': the issue's report."""
    __tablename__ = "doc_plain"
    id = Column(Integer, primary_key=True)
    body = Column(Text, nullable=False)
    version = Column(BigInteger, nullable=False)
    __mapper_args__ = {"version_id_col": version}


def sqlstate(exc):
    return getattr(getattr(exc, "orig", None), "pgcode", None)


def stored(cls, key):
    with Session(engine) as s:
        row = s.execute(select(cls.body, cls.version).where(cls.id == key)).one()
        return tuple(row)


# 1. Client-side counter on an 'increment' table: inserts, then updates, pass.
with Session(engine) as s:
    s.add_all([DocInc(id=1, body="a"), DocInc(id=2, body="b")])
    s.commit()
    d = s.get(DocInc, 1)
    check("increment: the ORM inserts version 1", d.version == 1, f"version {d.version}")
    d.body = "a2"
    s.commit()
    d.body = "a3"
    s.commit()
    check("increment: ORM updates pass and count 1, 2, 3", d.version == 3, f"version {d.version}")
check("increment: the database agrees", stored(DocInc, 1) == ("a3", 3), str(stored(DocInc, 1)))

# 2. Server-side counter on a 'read' table.
with Session(engine) as s:
    s.add_all([DocRead(id=1, body="a"), DocRead(id=2, body="b")])
    s.commit()
    d = s.get(DocRead, 1)
    d.body = "a2"
    s.commit()
    d.body = "a3"
    s.commit()
    check("read: server-side counter updates pass and count 1, 2, 3", d.version == 3,
          f"version {d.version}")
check("read: the database agrees", stored(DocRead, 1) == ("a3", 3), str(stored(DocRead, 1)))

# 3. A stale object raises the ORM's own StaleDataError, and writes nothing.
for cls, label in ((DocInc, "increment"), (DocRead, "read")):
    with Session(engine) as alice, Session(engine) as bob:
        a = alice.get(cls, 2)
        b = bob.get(cls, 2)
        a.body = "alice"
        alice.commit()
        b.body = "bob"
        try:
            bob.commit()
            check(f"{label}: a stale object raises StaleDataError", False, "bob's commit passed")
        except StaleDataError:
            check(f"{label}: a stale object raises StaleDataError", True)
        except Exception as e:  # noqa: BLE001
            check(f"{label}: a stale object raises StaleDataError", False, repr(e))
    check(f"{label}: the stale write changed nothing", stored(cls, 2) == ("alice", 2),
          str(stored(cls, 2)))

# 4. Strict: a raw-SQL bulk UPDATE that omits the version is refused (YC102), and so is the
#    ORM's own bulk update (it does not maintain the version); the ORM's unit of work passes.
with Session(engine) as s:
    try:
        s.execute(text("UPDATE doc_inc SET body = 'bulk'"))
        check("strict: a raw bulk UPDATE without the version is refused", False, "it passed")
    except DBAPIError as e:
        check("strict: a raw bulk UPDATE without the version is refused", sqlstate(e) == "YC102",
              f"SQLSTATE {sqlstate(e)}")
    s.rollback()
    try:
        s.query(DocInc).filter(DocInc.id == 1).update({"body": "bulk"}, synchronize_session=False)
        check("strict: the ORM's bulk update without the version is refused", False, "it passed")
    except DBAPIError as e:
        check("strict: the ORM's bulk update without the version is refused",
              sqlstate(e) == "YC102", f"SQLSTATE {sqlstate(e)}")
    s.rollback()
    d = s.get(DocInc, 1)
    d.body = "a4"
    s.commit()
    check("strict: the ORM's update still passes", stored(DocInc, 1) == ("a4", 4),
          str(stored(DocInc, 1)))

# 5. The mode must match the ORM: its client-side counter on a 'read' table is refused
#    (the version conflict of the issue), and nothing is written.
with Session(engine) as s:
    s.add(DocPlain(id=1, body="a"))
    s.commit()
    d = s.get(DocPlain, 1)
    d.body = "a2"
    try:
        s.commit()
        check("read: the client-side counter is refused", False, "it passed")
    except DBAPIError as e:
        check("read: the client-side counter is refused",
              sqlstate(e) == psycopg2.errorcodes.SERIALIZATION_FAILURE, f"SQLSTATE {sqlstate(e)}")
    s.rollback()
check("read: the refused update changed nothing", stored(DocPlain, 1) == ("a", 1),
      str(stored(DocPlain, 1)))

# 6. Concurrent ORM sessions lose no update: each thread adds one to n, PER_THREAD times,
#    retrying on StaleDataError with a fresh read.
THREADS, PER_THREAD = 6, 25
figures = {}


def worker(cls, retries, errors):
    for _ in range(PER_THREAD):
        while True:
            with Session(engine) as s:
                try:
                    d = s.get(cls, 1)
                    d.n += 1
                    s.commit()
                    break
                except StaleDataError:
                    retries.append(1)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                    return


for cls, label in ((DocInc, "increment"), (DocRead, "read")):
    with Session(engine) as s:
        start_n, start_v = s.execute(select(cls.n, cls.version).where(cls.id == 1)).one()
    retries, errors = [], []
    threads = [threading.Thread(target=worker, args=(cls, retries, errors)) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(engine) as s:
        n, v = s.execute(select(cls.n, cls.version).where(cls.id == 1)).one()
    total = THREADS * PER_THREAD
    check(f"{label}: concurrent sessions raised nothing but StaleDataError", not errors,
          "; ".join(errors[:3]))
    check(f"{label}: concurrent sessions lost no update", n - start_n == total,
          f"{n - start_n} of {total}")
    check(f"{label}: one version per update", v - start_v == total, f"{v - start_v} of {total}")
    figures[label] = len(retries)

print("figures: " + ", ".join(f"{k} {v} stale retries for {THREADS * PER_THREAD} updates"
                              for k, v in figures.items()), flush=True)
sys.exit(1 if failed else 0)
