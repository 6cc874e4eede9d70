# Demo chapter: in-doubt two-phase commit.  A coordinator (a cluster of its own) runs
# distributed transactions over two participant databases on the primary (shop, which has the
# extension, and billing, which does not).  It crashes twice at the worst moments: once after
# logging a commit decision but before COMMIT PREPARED, once after the participants prepared
# but before it decided.  The DBA sees the prepared transactions, their locks and whom they
# block, and what the resolver would do and why; pg_consistency resolves them from the
# coordinator's decision log; the data ends up consistent.

chapter "In-doubt two-phase commit: a coordinator crashes between PREPARE and COMMIT PREPARED"
COORD=$DEMO_DIR/coordinator COORD_PORT=5443
cluster_create "$COORD" "$COORD_PORT"
cluster_start "$COORD"
coord_sql() { cluster_psql "$COORD" "$COORD_PORT" -d postgres -At -c "$1"; }
coord_sql 'CREATE EXTENSION consistency'
cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d postgres -c 'CREATE DATABASE billing'
billing_sql() { cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d billing -At -c "$1"; }
primary_sql "CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0))"
primary_sql "INSERT INTO stock VALUES ('lamp', 10), ('desk', 5), ('chair', 8)"
billing_sql "CREATE TABLE invoices (id int PRIMARY KEY, sku text NOT NULL, amount numeric NOT NULL)"
COORD_CONN="host=$COORD port=$COORD_PORT dbname=postgres"
SHOP_CONN="host=$PRIMARY port=$PRIMARY_PORT dbname=shop"

# The coordinator keeps its transaction open in a psql fed through a FIFO (as an application
# would), so it can crash with the transaction still open.
coord_open() {
	rm -f "$DEMO_DIR/coord.fifo" "$DEMO_DIR/coord.out"
	as_user mkfifo "$DEMO_DIR/coord.fifo"
	as_user sh -c "'$PG_BINDIR/psql' -X -q -At -h '$COORD' -p $COORD_PORT -d postgres \
		<'$DEMO_DIR/coord.fifo' >'$DEMO_DIR/coord.out' 2>&1" &
	COORD_PSQL=$!
	exec 7>"$DEMO_DIR/coord.fifo"
}
coord_send() { printf '%s\n' "$1" >&7; }
coord_read() {	# wait for line N of the coordinator's output
	local i
	for i in $(seq 1 100); do
		[ "$(wc -l <"$DEMO_DIR/coord.out")" -ge "$1" ] && { sed -n "${1}p" "$DEMO_DIR/coord.out"; return; }
		sleep 0.05
	done
	die "the coordinator did not answer"
}
coord_close() { exec 7>&-; wait "$COORD_PSQL" 2>/dev/null || true; }

# One distributed sale: stock in shop, an invoice in billing.  Stops after step $2:
# prepared | decided | done.
sale() {	# id sku stop
	coord_open
	coord_send "BEGIN; SELECT consistency.tpc_gid('shop'); SELECT consistency.tpc_gid('billing');"
	local gshop gbill
	gshop=$(coord_read 1) gbill=$(coord_read 2)
	primary_sql "BEGIN; UPDATE stock SET qty = qty - 1 WHERE sku = '$2'; PREPARE TRANSACTION '$gshop'" >/dev/null
	billing_sql "BEGIN; INSERT INTO invoices VALUES ($1, '$2', 99.00); PREPARE TRANSACTION '$gbill'" >/dev/null
	say "  sale $1 ($2): both participants prepared"
	[ "$3" = prepared ] && return
	coord_send "SELECT consistency.tpc_log_decision('$gshop'); SELECT consistency.tpc_log_decision('$gbill'); COMMIT;"
	coord_send "\\echo decided"
	coord_read 5 >/dev/null
	say "  sale $1: decision 'commit' logged and committed on the coordinator"
	coord_close
	[ "$3" = decided ] && return
	primary_sql "COMMIT PREPARED '$gshop'" >/dev/null
	billing_sql "COMMIT PREPARED '$gbill'" >/dev/null
	say "  sale $1: phase 2 done (COMMIT PREPARED on both)"
}

say "the protocol: coordinator BEGIN; gid := consistency.tpc_gid(participant); participants PREPARE"
say "TRANSACTION gid; coordinator tpc_log_decision(gid) and COMMIT; participants COMMIT PREPARED gid"
sale 1 lamp done
sale 2 desk decided
say "  ... the coordinator crashes before phase 2 of sale 2 (immediate stop), restarts"
cluster_stop "$COORD" immediate
cluster_start "$COORD"
sale 3 chair prepared
say "  ... the coordinator crashes again, with sale 3 prepared everywhere but not yet decided"
cluster_stop "$COORD" immediate
coord_close
cluster_start "$COORD"

say "a customer now tries to buy a desk and waits behind the in-doubt transaction:"
cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -At -c \
	"SET application_name = 'customer'; UPDATE stock SET qty = qty - 1 WHERE sku = 'desk'" >"$DEMO_DIR/customer.out" 2>&1 &
CUSTOMER=$!
for i in $(seq 1 100); do
	[ "$(primary_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'customer' AND wait_event_type = 'Lock'")" = 1 ] && break
	sleep 0.05
done
say "pg_prepared_xacts is all PostgreSQL gives the DBA:"
show primary_table "SELECT gid, database, owner FROM pg_prepared_xacts ORDER BY prepared"
say "consistency.prepared_xacts() adds what they hold and whom they block (a pg_monitor view):"
show primary_table "SELECT gid, database, lock_count AS locks, relations, blocked_pids, pins_xmin_horizon AS pins_xmin
                      FROM consistency.prepared_xacts() ORDER BY prepared_at"
say "and what the resolver would do here, and why (the coordinator is another cluster):"
show primary_table "SELECT gid, verdict, evidence FROM consistency.prepared_xacts() ORDER BY prepared_at LIMIT 1"
say "pg_consistency reads the verdicts from the coordinator's decision log; as a monitoring check"
say "it exits 2 (critical) here, since --critical is 0:"
set +e
as_user "$PG_BINDIR/pg_consistency" in-doubt --warning 0 --critical 0 --decisions-from "$COORD_CONN" "$SHOP_CONN" |
	cut -c1-150 | sed 's/^/    | /'
say "  exit code ${PIPESTATUS[0]}"
say "a dry run of the resolution (changes nothing):"
as_user "$PG_BINDIR/pg_consistency" resolve --older-than 0 --decisions-from "$COORD_CONN" "$SHOP_CONN" |
	cut -c1-150 | sed 's/^/    | /'
say "  exit code ${PIPESTATUS[0]}; still prepared: $(primary_sql 'SELECT count(*) FROM pg_prepared_xacts')"
say "the resolution, executed:"
as_user "$PG_BINDIR/pg_consistency" resolve --execute --older-than 0 --decisions-from "$COORD_CONN" "$SHOP_CONN" |
	cut -c1-150 | sed 's/^/    | /'
say "  exit code ${PIPESTATUS[0]}"
set -e
wait "$CUSTOMER"
say "the customer's update went through as soon as the lock was released$(cat "$DEMO_DIR/customer.out")"
say "sales 1 and 2 (commit decided) are committed in both databases, sale 3 in neither:"
show primary_table "SELECT sku, qty FROM stock ORDER BY sku"
show cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d billing -P footer=off -c "SELECT id, sku, amount FROM invoices ORDER BY id"
say "every action is in the participant's resolution log, with its evidence:"
show primary_table "SELECT database, action, outcome, substring(evidence from 'the caller''s evidence: (.*)') AS evidence
                      FROM consistency.tpc_resolution_log ORDER BY id"
say "prepared transactions left: $(primary_sql 'SELECT count(*) FROM pg_prepared_xacts')"
cluster_stop "$COORD" fast
