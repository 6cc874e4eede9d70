# Demo chapter: idempotency keys.  A client creates an order, the response is lost and the
# client retries (sequentially, then with eight concurrent duplicates); one order is created
# and every retry gets the same response.  Then a payment with an external side effect uses a
# lease, its worker "crashes", and the next worker resumes from the recovery point.

chapter "Idempotency keys: a retried request never runs twice"
primary_sql "CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, item text NOT NULL,
                                  qty int NOT NULL, created_at timestamptz DEFAULT now())"
# The application's "create order" handler, as one transaction per request.
create_order_sql() {	# key fingerprint
	cat <<SQL
BEGIN;
SELECT status AS idem_status, response AS idem_response
  FROM consistency.idem_begin('$1', '$2') \gset
SELECT :'idem_status' = 'new' AS is_new \gset
\if :is_new
  INSERT INTO orders (customer, item, qty) VALUES ('alice', 'espresso machine', 1)
  RETURNING jsonb_build_object('order_id', id, 'status', 'created') AS resp \gset
  SELECT consistency.idem_complete('$1', :'resp') \\g /dev/null
  \echo 'ran the order, response' :resp
\else
  \echo 'answered from the stored response' :idem_response
\endif
COMMIT;
SQL
}
say "request 1 (key req-7f3a): the handler runs and stores its response with the order"
create_order_sql req-7f3a sha256:ab12 | cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -At | sed 's/^/      /'
say "request 1 again (the client never saw the answer and retries)"
create_order_sql req-7f3a sha256:ab12 | cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -At | sed 's/^/      /'

say "request 2 (key req-9c41): eight duplicates arrive at once"
pids=()
for i in $(seq 1 8); do
	create_order_sql req-9c41 sha256:cd34 | cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -At \
		>"$DEMO_DIR/dup.$i.out" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}"
say "  ran: $(grep -l 'ran the order' "$DEMO_DIR"/dup.*.out | wc -l), answered from the stored response: $(grep -l 'stored response' "$DEMO_DIR"/dup.*.out | wc -l)"
say "orders in the table (one per request):"
show primary_table "SELECT id, customer, item, qty FROM orders ORDER BY id"

say "a client reusing key req-7f3a for a different request is refused:"
expect_error "SELECT * FROM consistency.idem_begin('req-7f3a', 'sha256:ffff')"

say "a payment with an external side effect takes a lease instead (committed right away):"
show primary_table "SELECT status, attempt FROM consistency.idem_lease('pay-55', 'sha256:77', lease => '2 seconds')"
primary_sql "SELECT consistency.idem_checkpoint('pay-55', 'card authorised: auth-code 8812')" >/dev/null
say "the worker records 'card authorised' as its recovery point ... and crashes"
say "a duplicate while the lease is live is told to wait:"
show primary_table "SELECT status, recovery_point, attempt FROM consistency.idem_lease('pay-55', 'sha256:77')"
sleep 2.2
say "after the lease expired, the next worker takes over and resumes from the recovery point:"
show primary_table "SELECT status, recovery_point, attempt FROM consistency.idem_lease('pay-55', 'sha256:77', lease => '1 minute')"
say "the old worker comes back and is fenced out by its attempt number:"
expect_error "SELECT consistency.idem_checkpoint('pay-55', 'card authorised again', attempt => 1)"
primary_sql "SELECT consistency.idem_complete('pay-55', '{\"payment\": \"captured\"}', attempt => 2)" >/dev/null
say "the new worker captures the payment and stores the response:"
show primary_table "SELECT key, state, response, attempt FROM consistency.idempotency_keys ORDER BY key"
