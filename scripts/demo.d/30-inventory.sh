# Demo chapter: inventory reservation.  A flash sale: 500 pairs of sneakers on one SKU spread
# over 16 slots, 32 buyers at once asking for about 2.4 times that, every order sent more than
# once (lost responses, impatient clients); it sells out at exactly 500 and every invariant is
# checked.  Then holds are released and expire, latecomers get the returned pairs, and the
# standby reads the stock.

chapter "Inventory reservation: a flash sale with retries never oversells"
primary_sql "SELECT consistency.stock_set('sneaker-drop', 500, slots => 16)" >/dev/null
say "500 pairs of 'sneaker-drop', spread over 16 slot rows so that 16 buyers can hold a lock at once:"
show primary_table "SELECT sku, count(*) AS slots, sum(on_hand) AS on_hand, sum(reserved) AS reserved
                      FROM consistency.inventory GROUP BY sku"

# The shop's checkout handler: one reservation per order id, recording what the buyer was
# told and the stock available right after, in the same transaction (an 'insufficient' answer
# keeps every slot locked until commit, so that number is exactly what the answer was based
# on).  A retry that arrives after its hold lapsed is told so.
primary_sql "CREATE TABLE sale_answers (order_id text, qty int, answer text, available bigint)"
primary_sql "CREATE FUNCTION checkout(n int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
	answer text;
BEGIN
	BEGIN
		answer := consistency.reserve('sneaker-drop', 1 + n % 2, 'order-' || n,
			ttl => CASE WHEN n % 10 = 0 THEN interval '2 seconds' ELSE interval '15 minutes' END);
	EXCEPTION WHEN SQLSTATE 'YC203' THEN
		answer := 'hold expired';
	END;
	INSERT INTO sale_answers VALUES ('order-' || n, 1 + n % 2, answer, consistency.available('sneaker-drop'));
END \$\$"
as_user tee "$DEMO_DIR/buyer.sql" >/dev/null <<'SQL'
\set n random(1, 800)
SELECT checkout(:n);
SQL
say "32 buyers at once send 1,280 requests for 800 orders of 1 or 2 pairs (~1,200 pairs wanted);"
say "an order id drawn again is a retry of the same order (every tenth order holds for 2 s only)"
started_sale=$SECONDS
as_user "$PG_BINDIR/pgbench" -h "$PRIMARY" -p "$PRIMARY_PORT" -n -c 32 -j 2 -t 40 \
	-f "$DEMO_DIR/buyer.sql" shop >"$DEMO_DIR/sale.out" 2>&1 || { cat "$DEMO_DIR/sale.out"; die "the sale failed"; }
say "  the crowd was served in $((SECONDS - started_sale)) s; $(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$DEMO_DIR/sale.out") requests failed"
show primary_table "SELECT answer, count(*) AS requests, count(DISTINCT order_id) AS orders
                      FROM sale_answers GROUP BY answer ORDER BY answer"
show primary_table "SELECT (SELECT count(*) FROM (SELECT order_id FROM sale_answers WHERE answer = 'reserved'
                                                  GROUP BY order_id HAVING count(*) > 1) r) AS orders_retried,
                           (SELECT count(*) FROM consistency.reservations) AS reservations_stored,
                           (SELECT sum(qty) FROM consistency.reservations) AS pairs_held,
                           (SELECT sum(reserved) FROM consistency.inventory) AS reserved,
                           (SELECT count(*) FROM sale_answers WHERE answer = 'insufficient'
                               AND available >= qty) AS turned_away_with_stock_left"
say "sold out at exactly 500: no order was reserved twice, nobody was turned away while pairs were left"

say "two buyers cancel, and the 2-second holds lapse; expire_reservations() returns their pairs:"
primary_sql "SELECT consistency.release(reservation_id) FROM (SELECT reservation_id FROM consistency.reservations
               WHERE expires_at > now() + interval '1 minute' ORDER BY reservation_id LIMIT 2) r" >/dev/null
sleep 2.1
show primary_table "SELECT consistency.expire_reservations() AS holds_expired"
show primary_table "SELECT consistency.available('sneaker-drop') AS pairs_back_on_sale"
say "latecomers take them (a late retry of an expired order is refused: it must reserve anew):"
expect_error "SELECT consistency.reserve('sneaker-drop', 1, (SELECT reservation_id FROM consistency.reservations
                WHERE status = 'expired' AND qty = 1 LIMIT 1))"
primary_sql "SELECT consistency.reserve('sneaker-drop', 1, 'late-' || g) FROM generate_series(1, 100) g" >"$DEMO_DIR/late.out"
say "  $(grep -c '^reserved' "$DEMO_DIR/late.out") latecomers reserved one pair, $(grep -c '^insufficient' "$DEMO_DIR/late.out") were told 'insufficient'"
say "everybody pays: confirm() turns every hold into a sale"
primary_sql "SELECT count(consistency.confirm(reservation_id)) FROM (SELECT DISTINCT reservation_id
               FROM consistency.reservations WHERE status = 'active') a" >/dev/null
show primary_table "SELECT status, count(*) AS reservations, sum(qty) AS pairs
                      FROM consistency.reservations GROUP BY status ORDER BY status"
say "invariants: check_inventory() lists every violation (none), and the server log has no deadlock:"
show primary_table "SELECT count(*) AS problems FROM consistency.check_inventory()"
say "  'deadlock detected' in the server log: $(grep -c 'deadlock detected' "$PRIMARY/server.log" || true) times"
say "the same order id for another quantity is refused; a sold order cannot be released:"
expect_error "SELECT consistency.reserve('sneaker-drop', 3, 'late-1')"
expect_error "SELECT consistency.release('late-1')"
say "the standby answers stock questions (a plain read):"
primary_sql "SELECT 1" >/dev/null
for i in $(seq 1 50); do
	[ "$(standby_sql "SELECT consistency.available('sneaker-drop')")" = 0 ] && break
	sleep 0.1
done
show cluster_psql "$STANDBY" "$STANDBY_PORT" -d shop -P footer=off \
	-c "SELECT consistency.available('sneaker-drop') AS available_on_standby"
