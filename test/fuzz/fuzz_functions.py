#!/usr/bin/python3
"""test/fuzz/fuzz_functions.py: call every function of the extension with hostile arguments.

Owns: the focused fuzzer.  It lists the functions of schema "consistency" from the catalog (so
a new function is covered without touching this file), and calls them with hostile values
chosen per argument type -- NULL, empty and over-long text, malformed tokens and gids,
multibyte and control characters, quoted identifiers, integer and interval extremes, odd
jsonb, regclasses of odd relations, arrays with NULLs or several dimensions -- in random
transaction shapes: autocommit, READ COMMITTED / REPEATABLE READ / SERIALIZABLE blocks,
savepoints with ROLLBACK TO and RELEASE, COMMIT, ROLLBACK, PREPARE TRANSACTION (finished
later, or left to the resolver), and transactions left open while another session works.
Settings of the extension get hostile values too.  Trigger functions are installed on
scratch tables with random timings, levels and arguments, and fired.

Pass: no backend crash (a connection lost with the postmaster restarted, or a crash in the
server log) and no error with SQLSTATE XX000.  Other errors are expected; they are counted
per SQLSTATE and reported.  Seeded and bounded by time and by number of calls.

Usage: fuzz_functions.py --dsn CONNINFO [--user-dsn CONNINFO] --super-dsn CONNINFO
                         [--seconds 60] [--max-calls N] [--seed 1] [--server-log PATH]

test/fuzz/functions.sh starts a server and runs it (the README's fuzz suite).
"""

import argparse
import collections
import random
import sys
import time

import psycopg
from psycopg import sql as psql
from psycopg.types.string import TextLoader

# -- values ---------------------------------------------------------------------------------


def lit(s):
    """A SQL string literal (standard_conforming_strings is on)."""
    return "'" + s.replace("'", "''") + "'"


class Values:
    """Hostile values per type, as SQL expressions; some are refreshed from the database."""

    def __init__(self, rng):
        self.rng = rng
        self.sysid = '0'
        self.dboid = '0'
        self.pool = collections.defaultdict(list)    # live keys, skus, gids, tokens...
        self.pick_table()

    def refresh(self, cur):
        cur.execute("SELECT system_identifier::text FROM pg_catalog.pg_control_system()")
        self.sysid = cur.fetchone()[0]
        cur.execute("SELECT oid::text FROM pg_catalog.pg_database WHERE datname = current_database()")
        self.dboid = cur.fetchone()[0]
        queries = {
            'key': "SELECT key FROM consistency.idempotency_keys ORDER BY random() LIMIT 5",
            'scope': "SELECT DISTINCT scope FROM consistency.idempotency_keys",
            'sku': "SELECT DISTINCT sku FROM consistency.inventory ORDER BY 1 LIMIT 30",
            'rid': "SELECT reservation_id FROM consistency.reservations ORDER BY random() LIMIT 8",
            'gid': "SELECT gid FROM pg_catalog.pg_prepared_xacts UNION SELECT gid FROM consistency.tpc_decisions",
            'token': "SELECT consistency.write_token()",
        }
        for name, q in queries.items():
            try:
                cur.execute(q)
                rows = [r[0] for r in cur.fetchall() if r[0] is not None]
                if rows:
                    self.pool[name] = rows
            except psycopg.Error:
                pass

    def pick(self, name, fallback):
        vals = self.pool.get(name) or [fallback]
        return self.rng.choice(vals)

    def text(self, argname):
        r = self.rng
        s, d = self.sysid, self.dboid
        common = [
            "NULL", "''", "' '", "'x'", "'k'",
            "pg_catalog.repeat('k', 255)", "pg_catalog.repeat('k', 256)",
            "pg_catalog.repeat('é', 127)", "pg_catalog.repeat('é', 128)",
            "pg_catalog.repeat('f', 1024)", "pg_catalog.repeat('f', 1025)",
            "pg_catalog.repeat('r', 8192)", "pg_catalog.repeat('r', 8193)",
            "pg_catalog.repeat('big', 400000)",
            "'ключ-🔑'", "E'\\x01\\x02\\t\\n\\r\\x1f\\x7f'", "E'tab\\there'",
            lit("a'b\"c"), lit('"; DROP TABLE public.products; --'), lit('%s%n%x'),
            lit('\\'), lit('public."Odd ""Table"""'),
        ]
        tokens = [
            lit(self.pick('token', 'v1:%s:1:0/0' % s)),
            lit('v1:%s:1:0/0' % s), lit('v1:%s:1:FFFFFFFF/FFFFFFFF' % s),
            lit('v1:%s:2:0/1' % s), lit('v1:%s:0:0/0' % s), lit('v1:%s:4294967295:0/0' % s),
            lit('v1:%s:4294967296:0/0' % s), lit('v1:%s:01:0/0' % s), lit('v1:%s:1:0/00' % s),
            lit('v1:%s:1:100000000/0' % s), lit('v1:%s:1:0/0:' % s), lit('v1:%s:1:-1/0' % s),
            lit('v1:1:1:0/0'), lit('v1:18446744073709551615:1:0/0'),
            lit('v1:18446744073709551616:1:0/0'), lit('v1:-1:1:0/0'), lit('v1:'), lit('v1'),
            lit('v2:%s:1:0/0' % s), lit('V1:%s:1:0/0' % s), lit(' v1:%s:1:0/0' % s),
            lit('v1:%s:1:0/0 ' % s), lit('v1:%s:1:0/0\n' % s), lit('v1::::'),
            "pg_catalog.repeat('v1:', 30)",
        ]
        gids = [
            lit(self.pick('gid', 'cy1:%s:%s:1000' % (s, d))),
            lit('cy1:%s:%s:1000' % (s, d)), lit('cy1:%s:%s:1000:p' % (s, d)),
            lit('cy1:%s:%s:0' % (s, d)), lit('cy1:%s:%s:18446744073709551615' % (s, d)),
            lit('cy1:%s:%s:18446744073709551616' % (s, d)), lit('cy1:%s:%s:-1' % (s, d)),
            lit('cy1:%s:4294967295:1000' % s), lit('cy1:%s:0:1000' % s),
            lit('cy1:1:%s:1000' % d), lit('cy1:%s:%s:1000:%s' % (s, d, 'p' * 65)),
            lit('cy1:%s:%s:1000:%s' % (s, d, 'p' * 64)), lit('cy1:%s:%s:01000' % (s, d)),
            lit('cy1:%s:%s' % (s, d)), lit('cy1:'), lit('cy1'), lit('cy2:%s:%s:1000' % (s, d)),
            lit('cy1:%s:%s:1000::' % (s, d)), lit('hand-made gid'),
            "pg_catalog.repeat('g', 199)", "pg_catalog.repeat('g', 200)",
            "pg_catalog.repeat('g', 201)",
        ]
        words = ["'commit'", "'abort'", "'rollback'", "'auto'", "'COMMIT'", "' commit'",
                 "'commit '", "'Auto'"]
        live = [lit(self.pick('key', 'order-1')), lit(self.pick('scope', '')),
                lit(self.pick('sku', 'sku-1')), lit(self.pick('rid', 'res-1')),
                lit('order-%d' % r.randint(1, 25)), lit('sku-%d' % r.randint(1, 22)),
                lit('res-%d' % r.randint(1, 45)), "'hot'", "'empty'", "'pay-live'",
                "'pay-expired'", "'pay-done'", "'tenant-b'", "'cart-1'"]
        # weight the argument's own domain higher
        n = argname or ''
        if 'token' in n or n in ('a', 'b'):
            groups = [tokens, tokens, common, live]
        elif 'gid' in n or 'participant' in n:
            groups = [gids, gids, common, words]
        elif n in ('decision', 'action'):
            groups = [words, words, common]
        else:
            groups = [live, live, common, common, tokens, gids]
        return r.choice(r.choice(groups))

    def int4(self):
        return self.rng.choice(["NULL", "0", "-1", "1", "2", "3", "63", "64", "65", "1000",
                                "1001", "2147483647", "(-2147483648)::pg_catalog.int4"])

    def int8(self):
        return self.rng.choice(["NULL", "0", "-1", "1", "2", "3", "5", "100", "1000",
                                "2147483648", "9223372036854775806", "9223372036854775807",
                                "(-9223372036854775808)::pg_catalog.int8"])

    def interval(self):
        return self.rng.choice([
            "NULL", "'0'", "'-1 second'", "'1 microsecond'", "'1 millisecond'", "'1 second'",
            "'15 minutes'", "'24 hours'", "'-24 hours'", "'100 years'", "'1 month -31 days'",
            "'-1 month 32 days'", "'2147483647 days'", "'-2147483648 days'",
            "'2147483647 months'", "'178000000 years'", "'-178000000 years'",
            "'9223372036854 seconds'", "'2147483647 milliseconds'",
            "'2147483648 milliseconds'", "'24 days 20:31:23.647'", "'1 day -86400 seconds'",
        ])

    def boolean(self):
        return self.rng.choice(["NULL", "true", "false"])

    def jsonb(self):
        r = self.rng
        return r.choice([
            "NULL", "'{}'", "'[]'", "'null'", "'1'", "'\"s\"'", "'true'",
            "'{\"id\": 1}'", "'{\"id\": null}'", "'{\"id\": \"x\"}'", "'{\"id\": 1.5}'",
            "'{\"id\": 1e400}'", "'{\"id\": -1e-400}'", "'{\"id\": true}'", "'{\"id\": [1]}'",
            "'{\"id\": {\"a\": 1}}'", "'{\"id\": 1, \"extra\": 2}'", "'{\"id\": 2147483648}'",
            "'{\"id\": %d}'" % r.randint(1, 55), "'{\"price\": 1}'", "'{\"price\": \"x\"}'",
            "'{\"price\": 99999999999}'", "'{\"name\": null, \"stock\": 1}'",
            "'{\"version\": 5}'", "'{\"rev\": 5}'", "'{\"ctid\": \"(0,1)\"}'", "'{\"xmin\": 1}'",
            "'{\"tableoid\": 1}'", "'{\"\": 1}'", "'{\"gen\": 1}'", "'{\"Key\": \"a\"}'",
            "'{\"Key\": \"\"}'", "'{\"select\": 5}'", "'{\"doc\": {\"deep\": [1, {\"x\": null}]}}'",
            "'{\"tags\": [\"a\", null]}'", "'{\"tags\": \"{a,b}\"}'", "'{\"tags\": \"not an array\"}'",
            "'{\"warehouse\": \"w1\", \"sku\": \"sku-1\"}'", "'{\"warehouse\": \"w1\"}'",
            "'{\"id\": 3, \"region\": \"eu\"}'", "'{\"id\": 3, \"region\": \"mars\"}'",
            "'{\"balance\": -1}'", "'{\"a\": 1}'",
            "(SELECT pg_catalog.jsonb_object_agg('k' || i, i) FROM pg_catalog.generate_series(1, 2000) AS i)",
            "pg_catalog.jsonb_build_object('id', 1, 'name', pg_catalog.repeat('n', 2000000))",
            "pg_catalog.to_jsonb(pg_catalog.repeat('x', 1100000))",
            "(SELECT pg_catalog.jsonb_agg(i) FROM pg_catalog.generate_series(1, 1000) AS i)",
            "pg_catalog.repeat('[', 5000)::pg_catalog.text || '1' || pg_catalog.repeat(']', 5000)",
        ])

    def regclass(self):
        return self.rng.choice([
            "NULL", "'public.products'", "'public.accounts'", "'public.stock_levels'",
            "'public.events'", "'public.events_eu'", "'public.\"Odd \"\"Table\"\"\"'",
            "'public.nokey'", "'public.products_view'", "'public.some_seq'",
            "'public.products_pkey'", "'public.ledger'", "'consistency.idempotency_keys'",
            "'consistency.inventory'", "'consistency.tpc_decisions'", "'pg_catalog.pg_class'",
            "'information_schema.tables'", "'pg_toast.pg_toast_1255'", "0", "1",
            "4294967295", "'pg_temp.fuzz_tmp'",
        ]) + "::pg_catalog.regclass"

    def name(self):
        return self.rng.choice([
            "NULL", "''", "'version'", "'rev'", "'id'", "'price'", "'name'", "'ctid'", "'xmin'",
            "'tableoid'", "'Key'", "'gen'", "'select'", "'balance'", "'nonexistent'", "'Version'",
            "'a\"b'", "pg_catalog.repeat('v', 64)", "'version '",
        ]) + "::pg_catalog.name"

    def text_array(self):
        r = self.rng
        sku = lit(self.pick('sku', 'sku-1'))
        return r.choice([
            "NULL", "'{}'", "'{NULL}'", "ARRAY[%s]" % sku, "ARRAY[%s, %s]" % (sku, sku),
            "ARRAY['sku-1', 'sku-5', 'hot']", "ARRAY['hot', 'sku-10', 'sku-15', 'sku-20', 'sku-5']",
            "ARRAY['sku-1', NULL]", "'{{sku-1},{sku-5}}'", "'[0:1]={sku-1,hot}'", "'{\"\"}'",
            "ARRAY[pg_catalog.repeat('s', 256)]", "ARRAY['nope']", "ARRAY['empty']",
            "(SELECT pg_catalog.array_agg('sku-' || i) FROM pg_catalog.generate_series(1, 1001) AS i)",
            "(SELECT pg_catalog.array_agg('sku-' || (i % 20 + 1)) FROM pg_catalog.generate_series(1, 1000) AS i)",
            "'{{{a}}}'",
        ]) + "::pg_catalog.text[]"

    def int8_array(self):
        return self.rng.choice([
            "NULL", "'{}'", "'{NULL}'", "'{1}'", "'{1,1}'", "'{1,2,3}'", "'{1,1,1,1,1}'",
            "'{0}'", "'{-1}'", "'{{1},{2}}'", "'[0:1]={1,1}'", "'{9223372036854775807,1}'",
            "'{9223372036854775807}'", "'{1,NULL}'",
            "(SELECT pg_catalog.array_agg(1::pg_catalog.int8) FROM pg_catalog.generate_series(1, 1001))",
            "(SELECT pg_catalog.array_agg(1::pg_catalog.int8) FROM pg_catalog.generate_series(1, 1000))",
        ]) + "::pg_catalog.int8[]"

    def pick_table(self):
        """The versioned table, row and changes the plausible values of one call agree on."""
        r = self.rng
        i, w, region = r.randint(1, 20), r.randint(0, 2), r.choice(['eu', 'us'])
        self.table = r.choice([
            ('public.products', '{"id": %d}' % i, 'id = %d' % i,
             r.choice(['{"price": %d}' % r.randint(1, 99), '{"name": "n", "stock": 2}',
                       '{"tags": ["a"], "doc": {"x": 1}}']), 'version'),
            ('public.accounts', '{"id": %d}' % i, 'id = %d' % i,
             '{"balance": %d}' % r.randint(-5, 5), 'version'),
            ('public.stock_levels', '{"warehouse": "w%d", "sku": "sku-%d"}' % (i % 3, i),
             "warehouse = 'w%d' AND sku = 'sku-%d'" % (i % 3, i), '{"qty": %d}' % w, 'rev'),
            ('public.events', '{"id": %d, "region": "%s"}' % (i, region),
             "id = %d AND region = '%s'" % (i, region), '{"payload": "p"}', 'version'),
        ])

    def good(self, fname, argname, typname):
        """A plausible value for the argument, so that calls get past the checks and the
        hostile value in another argument reaches deeper code; None if there is none."""
        r = self.rng
        n = argname
        table, key, where, changes, vcol = self.table
        if typname == 'regclass':
            return lit(table) + "::pg_catalog.regclass"
        if typname == 'jsonb' and n == 'key':
            return lit(key)
        if typname == 'jsonb' and n == 'changes':
            return lit(changes)
        if typname == 'name':
            return lit(vcol) + "::pg_catalog.name"
        if n == 'expected_version' and r.random() < 0.7:
            # the row's current version (a stale one otherwise)
            return '(SELECT %s FROM %s WHERE %s)' % (vcol, table, where)
        if typname == 'jsonb':
            return r.choice(["'{\"ok\": 1}'", "'null'", "'[1, 2]'"])
        if n == 'expected_version':
            return str(r.randint(1, 3))
        if n in ('key',):
            return lit(r.choice([self.pick('key', 'order-1'), 'k-%d' % r.randint(1, 50)]))
        if n == 'scope':
            return r.choice(["''", "'tenant-b'"])
        if n == 'sku':
            return lit(r.choice(['sku-%d' % r.randint(1, 20), 'hot', 'empty']))
        if n == 'skus':
            return "ARRAY['sku-%d', 'hot']" % r.randint(1, 20)
        if n == 'qtys':
            return "'{1,2}'::pg_catalog.int8[]"
        if n == 'reservation_id':
            return lit(r.choice([self.pick('rid', 'res-1'), 'r-%d' % r.randint(1, 200)]))
        if n in ('qty', 'on_hand', 'delta', 'slots', 'attempt', 'batch_size'):
            return str(r.randint(1, 4))
        if n in ('ttl', 'lease', 'timeout', 'min_age'):
            return r.choice(["'15 minutes'", "'1 millisecond'", "'0'", "'10 milliseconds'"]) + "::pg_catalog.interval"
        if n in ('token', 'a', 'b'):
            return lit(self.pick('token', 'v1:%s:1:0/0' % self.sysid))
        if n == 'gid' and fname == 'tpc_log_decision' and r.random() < 0.5:
            # the calling transaction's own gid: the only one a decision may be logged for
            return "consistency.tpc_gid(%s)" % r.choice(["''", "'p'", "'q'"])
        if n == 'gid':
            return lit(self.pick('gid', 'hand-made gid'))
        if n == 'decision':
            return r.choice(["'commit'", "'abort'"])
        if n == 'action':
            return r.choice(["'auto'", "'commit'", "'rollback'"])
        if n in ('fingerprint', 'recovery_point', 'participant'):
            return r.choice(["NULL", "'fp-1'", "'step'", "''"]) if n != 'participant' else "'p'"
        if typname == 'bool':
            return r.choice(['true', 'false'])
        return None

    def for_type(self, typname, argname):
        if typname == 'text':
            return self.text(argname) + "::pg_catalog.text"
        if typname == 'int4':
            return "(" + self.int4() + ")::pg_catalog.int4"
        if typname == 'int8':
            return "(" + self.int8() + ")::pg_catalog.int8"
        if typname == 'interval':
            return self.interval() + "::pg_catalog.interval"
        if typname == 'bool':
            return self.boolean() + "::pg_catalog.bool"
        if typname == 'jsonb':
            return "(" + self.jsonb() + ")::pg_catalog.jsonb"
        if typname == 'regclass':
            return self.regclass()
        if typname == 'name':
            return self.name()
        if typname == '_text':
            return self.text_array()
        if typname == '_int8':
            return self.int8_array()
        # a type this file does not know yet: NULL, and the type's own odd literals
        return self.rng.choice(["NULL", "''", "'0'", "'-1'"]) + "::" + typname




# -- settings of the extension -------------------------------------------------------------

def setting_value(values, name):
    r = values.rng
    if name == 'consistency.read_after':
        return values.text('token')
    return r.choice(["''", "'0'", "'-1'", "'1'", "'100'", "'2147483647'", "'2147483648'",
                     "'40001'", "'YC101'", "'XX000'", "'1ms'", "'1 h'", "'-1s'", "'1kB'",
                     "'1GB'", "'abc'", "'on'", "pg_catalog.repeat('e', 10000)",
                     values.text('token')])


# -- the fuzzer -----------------------------------------------------------------------------

class Crash(Exception):
    pass


class Session:
    def __init__(self, dsn, label):
        self.dsn = dsn
        self.label = label
        self.conn = None
        self.open_txn = []          # statements of a transaction left open

    def connect(self):
        self.conn = psycopg.connect(self.dsn, autocommit=True)
        # Results are fetched, never looked at: keep json as text, so a value nested deeper
        # than Python's recursion limit (the fuzzer builds such jsonb) is not decoded.
        for typname in ('json', 'jsonb'):
            self.conn.adapters.register_loader(typname, TextLoader)
        self.cur = self.conn.cursor()
        self.pid = self.conn.info.backend_pid
        self.open_txn = []
        self.last_history = []
        self.cur.execute("SET statement_timeout = '3s'; SET lock_timeout = '20ms';"
                         " SET client_min_messages = error")


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.values = Values(self.rng)
        self.errors = collections.Counter()
        self.calls = collections.Counter()
        self.failures = []      # (kind, sqlstate/message, statements)
        self.n_calls = 0
        self.n_statements = 0
        self.n_txns = 0
        self.shapes = collections.Counter()
        self.prepared = 0
        self.in_doubt = []      # gids this run prepared and left in doubt, oldest first
        self.super = Session(args.super_dsn, 'superuser')
        self.sessions = [Session(args.dsn, 'fuzz_admin'), Session(args.dsn, 'fuzz_admin'),
                         Session(args.user_dsn or args.dsn, 'fuzz_user'), self.super]
        for s in self.sessions:
            s.connect()
        self.start_time = self.postmaster_start()
        self.log_offset = 0
        self.new_log_lines()
        self.functions = self.load_functions()
        self.settings = self.load_settings()

    def postmaster_start(self):
        for _ in range(600):
            try:
                with psycopg.connect(self.args.super_dsn, autocommit=True) as c:
                    return c.execute("SELECT pg_catalog.pg_postmaster_start_time()").fetchone()[0]
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("the server did not come back")

    def load_functions(self):
        cur = self.super.cur
        cur.execute("""
            SELECT p.proname, p.prorettype::pg_catalog.regtype::pg_catalog.text,
                   p.pronargs, p.pronargdefaults,
                   pg_catalog.array_to_string(p.proargnames[1:p.pronargs], ','),
                   (SELECT pg_catalog.string_agg(t.typname, ',' ORDER BY a.n)
                      FROM pg_catalog.unnest(p.proargtypes) WITH ORDINALITY AS a(t, n)
                      JOIN pg_catalog.pg_type AS t ON t.oid = a.t)
              FROM pg_catalog.pg_proc AS p
             WHERE p.pronamespace = 'consistency'::pg_catalog.regnamespace
             ORDER BY 1, 3""")
        funcs = []
        for name, rettype, nargs, ndefaults, argnames, argtypes in cur.fetchall():
            funcs.append({
                'name': name, 'rettype': rettype, 'nargs': nargs, 'ndefaults': ndefaults,
                'argnames': (argnames or '').split(',') if nargs else [],
                'argtypes': (argtypes or '').split(',') if nargs else [],
            })
        return funcs

    def load_settings(self):
        cur = self.super.cur
        cur.execute("SELECT name FROM pg_catalog.pg_settings WHERE name LIKE 'consistency.%' ORDER BY 1")
        return [r[0] for r in cur.fetchall()]

    # one statement, with crash and XX000 detection
    def run(self, sess, stmt, history):
        history.append(stmt)
        sess.last_history = history
        self.n_statements += 1
        try:
            sess.cur.execute(stmt)
            if sess.cur.description is not None:
                sess.cur.fetchall()
            return True
        except psycopg.OperationalError as e:
            if sess.conn.closed or sess.conn.broken:
                self.connection_lost(sess, e, history)
                raise Crash()
            self.count_error(e, history)
            return False
        except psycopg.Error as e:
            self.count_error(e, history)
            return False

    def count_error(self, e, history):
        code = e.sqlstate or 'none'
        self.errors[code] += 1
        if code == 'XX000' or code.startswith('XX') and code != 'XX001':
            self.failures.append(('error %s: %s' % (code, e.diag.message_primary), list(history)))

    def connection_lost(self, sess, e, history):
        """A session's connection is gone: a backend crash (the postmaster then ends every
        session with 57P02 and restarts the others; it keeps its start time, so the server
        log tells), or a FATAL for this session only (idle_in_transaction_session_timeout)."""
        crashed = self.postmaster_start() != self.start_time or e.sqlstate == '57P02'
        lines = self.new_log_lines()
        crash_lines = [l for l in lines if 'terminated by signal' in l or 'was terminated by' in l
                       or 'Failed process was running' in l]
        if crashed or crash_lines:
            # the history of the session whose backend died, if it is one of ours
            dead = dict((s.pid, s) for s in self.sessions)
            victim = None
            for l in crash_lines:
                for pid, s in dead.items():
                    if '(PID %d)' % pid in l:
                        victim = s
            hist = victim.last_history if victim is not None and victim is not sess else history
            self.failures.append(('backend crash: %s' % ' | '.join(crash_lines or [str(e).strip()]),
                                  list(hist)))
            self.start_time = self.postmaster_start()
            for s in self.sessions:
                try:
                    s.conn.close()
                except Exception:
                    pass
                s.connect()
        else:
            self.errors['connection lost'] += 1
            sess.connect()

    def new_log_lines(self):
        """Server log lines written since the last call (when --server-log is given)."""
        if not self.args.server_log:
            return []
        time.sleep(0.2)     # let the postmaster log the crash
        with open(self.args.server_log, errors='replace') as f:
            f.seek(self.log_offset)
            text = f.read()
            self.log_offset = f.tell()
        return text.splitlines()

    def call_sql(self, f):
        """SELECT of one function with hostile arguments: positional, named, or defaults."""
        r = self.rng
        nargs = f['nargs']
        if f['rettype'] == 'trigger':
            return None
        nused = nargs - r.randint(0, f['ndefaults']) if f['ndefaults'] else nargs
        parts = []
        named = r.random() < 0.3 and all(f['argnames'])
        hostile = r.random()      # the share of arguments that get a hostile value
        self.values.pick_table()
        for i in range(nused):
            argname = f['argnames'][i] if f['argnames'] else ''
            v = None
            if r.random() > hostile:
                v = self.values.good(f['name'], argname, f['argtypes'][i])
            if v is None:
                v = self.values.for_type(f['argtypes'][i], argname)
            parts.append('%s => %s' % (f['argnames'][i], v) if named else v)
        if named and nused < nargs and r.random() < 0.5:
            # skip a middle argument: name a later one only
            j = r.randint(nused, nargs - 1)
            parts.append('%s => %s' % (f['argnames'][j], self.values.for_type(f['argtypes'][j], f['argnames'][j])))
        call = 'consistency.%s(%s)' % (f['name'], ', '.join(parts))
        self.calls[f['name']] += 1
        self.n_calls += 1
        form = r.random()
        if form < 0.6:
            return 'SELECT * FROM %s' % call
        if form < 0.8:
            return 'SELECT %s' % call
        if form < 0.9:
            # called for several rows in one statement
            return 'SELECT %s FROM pg_catalog.generate_series(1, 3)' % call
        return 'SELECT count(*) FROM (SELECT %s) AS s' % call

    def trigger_sql(self, f, history):
        """Install a trigger function on a scratch table with random shape, and fire it."""
        r = self.rng
        timing = r.choice(['BEFORE', 'AFTER'])
        level = r.choice(['ROW', 'STATEMENT'])
        events = r.choice(['UPDATE', 'INSERT', 'INSERT OR UPDATE', 'DELETE', 'UPDATE OR DELETE'])
        targs = r.choice(['', "'version'", "'version', 'strict'", "'nonexistent'", "'note'",
                          "'version', 'lax'", "'version', 'strict', 'x'", "''", "'id'", "'note'"])
        tbl = r.choice(['public.fuzz_scratch', 'consistency.tpc_decisions',
                        'consistency.tpc_resolution_log', 'public.products'])
        self.calls[f['name']] += 1
        self.n_calls += 1
        return [
            'CREATE TABLE IF NOT EXISTS public.fuzz_scratch (id int PRIMARY KEY, note text, version bigint)',
            'INSERT INTO public.fuzz_scratch VALUES (1, NULL, 1), (2, NULL, NULL) ON CONFLICT DO NOTHING',
            'CREATE TRIGGER fuzz_trg %s %s ON %s FOR EACH %s EXECUTE FUNCTION consistency.%s(%s)'
            % (timing, events, tbl, level, f['name'], targs),
            r.choice(["UPDATE %s SET version = version WHERE true" % tbl if tbl.startswith('public') else
                      "UPDATE %s SET gid = gid" % tbl,
                      "INSERT INTO public.fuzz_scratch VALUES (3, 'x', 1)",
                      "DELETE FROM public.fuzz_scratch WHERE id = 2",
                      "INSERT INTO consistency.tpc_decisions VALUES ('x', 'commit', 1, '1', now())",
                      "UPDATE public.fuzz_scratch SET note = 'n'"]),
        ]

    def setting_sql(self):
        name = self.rng.choice(self.settings)
        kind = self.rng.choice(['SET', 'SET LOCAL', 'set_config', 'RESET'])
        val = setting_value(self.values, name)
        if kind == 'RESET':
            return 'RESET %s' % name
        if kind == 'set_config':
            return "SELECT pg_catalog.set_config('%s', %s, %s)" % (name, val, self.rng.choice(['true', 'false']))
        if val.startswith("'"):
            return '%s %s = %s' % (kind, name, val)
        return "SELECT pg_catalog.set_config('%s', %s, %s)" % (name, val, 'true' if kind == 'SET LOCAL' else 'false')

    def some_statement(self, history):
        r = self.rng
        x = r.random()
        if x < 0.08 and self.settings:
            return [self.setting_sql()]
        f = r.choice([f for f in self.functions if f['rettype'] != 'trigger'])
        return [self.call_sql(f)]

    def trigger_episode(self, history):
        """A trigger function installed in a random shape and fired, in a transaction that is
        rolled back (so no shape outlives it).  As the superuser: consistency_user and
        consistency_admin may not create triggers with the guard functions."""
        triggers = [f for f in self.functions if f['rettype'] == 'trigger']
        if not triggers:
            return
        f = self.rng.choice(triggers)
        self.shapes['trigger'] += 1
        self.run(self.super, 'BEGIN', history)
        for stmt in self.trigger_sql(f, history):
            if not self.run(self.super, stmt, history):
                break
        self.run(self.super, 'ROLLBACK', history)

    def finish_open(self, sess, history):
        """End a transaction an earlier episode left open in sess."""
        end = self.rng.choice(['COMMIT', 'ROLLBACK', 'PREPARE'])
        if end == 'PREPARE':
            self.prepare(sess, history)
        else:
            self.run(sess, end, history)
        sess.open_txn = []

    def prepare(self, sess, history):
        gid = self.rng.choice(['fuzz-%d' % self.prepared,
                               self.values.pick('gid', 'cy1:%s:%s:1' % (self.values.sysid, self.values.dboid)),
                               'cy1:%s:%s:%d' % (self.values.sysid, self.values.dboid, self.rng.randint(1, 2000))])
        self.prepared += 1
        ok = self.run(sess, 'PREPARE TRANSACTION %s' % lit(gid), history)
        if ok and self.rng.random() < 0.7:
            # finish it now (else the resolver functions find it later)
            self.run(self.super, '%s PREPARED %s' % (self.rng.choice(['COMMIT', 'ROLLBACK']), lit(gid)), history)
        elif ok:
            # keep a few in doubt for the resolver; finish the oldest beyond that, so that
            # max_prepared_transactions and their locks do not choke the run
            self.in_doubt.append(gid)
            while len(self.in_doubt) > 8:
                old = self.in_doubt.pop(0)
                self.run(self.super, '%s PREPARED %s' % (self.rng.choice(['COMMIT', 'ROLLBACK']), lit(old)),
                         history)

    def episode(self):
        r = self.rng
        sess = r.choice(self.sessions)
        history = ['-- session %s' % sess.label] + list(sess.open_txn)
        if sess.open_txn:
            self.shapes['resumed open transaction'] += 1
            self.finish_open(sess, history)
            return
        if r.random() < 0.05:
            self.values.refresh(self.super.cur)
        if r.random() < 0.04:
            self.trigger_episode(['-- session superuser'])
            return
        shape = r.choice(['autocommit', 'autocommit', 'block', 'block', 'block'])
        if shape == 'autocommit':
            self.shapes['autocommit'] += 1
            for stmt in self.some_statement(history):
                self.run(sess, stmt, history)
            return
        iso = r.choice(['', ' ISOLATION LEVEL READ COMMITTED', ' ISOLATION LEVEL REPEATABLE READ',
                        ' ISOLATION LEVEL SERIALIZABLE', ' ISOLATION LEVEL REPEATABLE READ READ ONLY'])
        self.shapes['BEGIN%s' % iso] += 1
        self.n_txns += 1
        self.run(sess, 'BEGIN' + iso, history)
        savepoints = []
        aborted = False
        for _ in range(r.randint(1, 8)):
            y = r.random()
            if y < 0.2:
                sp = 's%d' % len(savepoints)
                if self.run(sess, 'SAVEPOINT ' + sp, history):
                    savepoints.append(sp)
                continue
            if y < 0.3 and savepoints:
                sp = r.choice(savepoints)
                del savepoints[savepoints.index(sp) + 1:]
                if r.random() < 0.7:
                    if self.run(sess, 'ROLLBACK TO SAVEPOINT ' + sp, history):
                        aborted = False
                else:
                    if self.run(sess, 'RELEASE SAVEPOINT ' + sp, history):
                        savepoints.remove(sp)
                continue
            for stmt in self.some_statement(history):
                if not self.run(sess, stmt, history):
                    aborted = True
                    # an error: roll back to a savepoint if there is one, or give up
                    if savepoints and r.random() < 0.8:
                        if self.run(sess, 'ROLLBACK TO SAVEPOINT ' + savepoints[-1], history):
                            aborted = False
                    break
            if aborted:
                break
        if aborted:
            self.run(sess, 'ROLLBACK', history)
            return
        z = r.random()
        if z < 0.1 and sess is not self.super:
            # leave it open: other sessions run into its locks and claims
            sess.open_txn = history[1:]
            self.shapes['left open'] += 1
        elif z < 0.25:
            self.shapes['PREPARE TRANSACTION'] += 1
            self.prepare(sess, history)
        elif z < 0.6:
            self.run(sess, 'ROLLBACK', history)
        else:
            self.run(sess, 'COMMIT', history)

    def cleanup(self):
        """Finish what is left, so the next run (and the log check) start clean."""
        for s in self.sessions:
            try:
                s.cur.execute('ROLLBACK')
            except psycopg.Error:
                pass
        cur = self.super.cur
        cur.execute("SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE gid LIKE 'fuzz-%' OR "
                    "owner <> current_user")
        for (gid,) in cur.fetchall():
            try:
                cur.execute('ROLLBACK PREPARED %s' % lit(gid))
            except psycopg.Error:
                pass

    def main(self):
        deadline = time.monotonic() + self.args.seconds
        self.values.refresh(self.super.cur)
        while time.monotonic() < deadline and self.n_calls < self.args.max_calls:
            try:
                self.episode()
            except Crash:
                pass
        self.cleanup()
        self.report()
        return 1 if self.failures else 0

    def report(self):
        print('fuzz_functions: seed %d, %d functions, %d settings' % (
            self.args.seed, len(self.functions), len(self.settings)))
        print('  calls made: %d (statements %d, transaction blocks %d, prepared %d)' % (
            self.n_calls, self.n_statements, self.n_txns, self.prepared))
        print('  shapes: ' + ', '.join('%s %d' % kv for kv in sorted(self.shapes.items())))
        print('  calls per function: ' + ', '.join('%s %d' % kv for kv in sorted(self.calls.items())))
        print('  errors by SQLSTATE: ' + ', '.join('%s %d' % kv for kv in self.errors.most_common()))
        crashes = sum(1 for k, _ in self.failures if k.startswith('backend crash'))
        xx = len(self.failures) - crashes
        print('  backend crashes: %d, XX errors: %d' % (crashes, xx))
        for kind, history in self.failures[:20]:
            print('FAILURE: %s' % kind)
            for stmt in history[-12:]:
                print('    %s' % (stmt if len(stmt) < 2000 else stmt[:2000] + '...'))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dsn', required=True, help='connection as a role granted consistency_admin')
    ap.add_argument('--user-dsn', help='connection as a role granted consistency_user')
    ap.add_argument('--super-dsn', required=True, help='superuser connection (catalog, cleanup)')
    ap.add_argument('--server-log', help="the server's log file, to tell a crash from a FATAL")
    ap.add_argument('--seconds', type=float, default=60)
    ap.add_argument('--max-calls', type=int, default=10 ** 9)
    ap.add_argument('--seed', type=int, default=1)
    args = ap.parse_args()
    sys.exit(Fuzzer(args).main())


if __name__ == '__main__':
    main()
