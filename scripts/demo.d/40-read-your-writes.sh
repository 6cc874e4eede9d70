# Demo chapter: session LSN tokens (read-your-writes).  A write on the primary and its token;
# reads on the streaming standby that see it (SET consistency.read_after); a paused standby
# that refuses to answer stale and says why, and a waiter that returns when replay resumes;
# a token from another cluster; then the C router library's example program and the Python
# example routing 200 write -> read cycles.

chapter "Session LSN tokens: read your writes on a streaming standby, or a clear \"go to the primary\""

standby_psql() { cluster_psql "$STANDBY" "$STANDBY_PORT" -d shop -At "$@"; }
# primary_write SQL: run SQL (its own transaction), then print the session's token.
primary_write() { cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -At -c "$1" -c "SELECT consistency.write_token()"; }
# standby_expect_error SQL: run SQL on the standby, which must fail; print the error lines.
standby_expect_error() {
	local out
	if out=$(standby_psql -v VERBOSITY=verbose -c "$1" 2>&1); then
		die "expected an error from the standby: $1"
	fi
	printf '%s\n' "$out" | sed -nE -e 's/^(psql:[^ ]* )?ERROR: +([0-9A-Z]{5}): (.*)$/      ERROR \2: \3/p' \
		-e 's/^DETAIL: +(.*)$/      DETAIL: \1/p' -e 's/^HINT: +(.*)$/      HINT: \1/p'
}

say "load the library in every session (session_preload_libraries, a reload; no restart):"
for node in primary standby; do
	if [ $node = primary ]; then run=primary_sql; else run=standby_sql; fi
	$run "ALTER SYSTEM SET session_preload_libraries = 'consistency'" >/dev/null
	$run "SELECT pg_reload_conf()" >/dev/null
done
primary_sql "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL)"
primary_sql "INSERT INTO accounts VALUES (7, 'alice', 100)"

say "a write on the primary, and its token (cluster : timeline : end of the commit record):"
token=$(primary_write "UPDATE accounts SET balance = balance - 40 WHERE id = 7")
say "  UPDATE accounts SET balance = balance - 40 WHERE id = 7  ->  token $token"
say "the same token arrives with the commit in the consistency.last_commit_token parameter"
say "(ParameterStatus, no extra round trip), e.g. PQparameterStatus() in libpq."

say "on the standby: SET consistency.read_after waits (without a snapshot) until it has replayed the write:"
show standby_psql -c "SET consistency.read_after = '$token'" \
	-c "SELECT 'balance seen on the standby: ' || balance FROM accounts WHERE id = 7" \
	-c "SELECT 'token_status: ' || consistency.token_status('$token')"

say "the standby's replay is paused (pg_wal_replay_pause()), and alice spends again:"
standby_sql "SELECT pg_wal_replay_pause()" >/dev/null
for i in $(seq 1 50); do
	[ "$(standby_sql "SELECT pg_get_wal_replay_pause_state()")" = paused ] && break
	sleep 0.1
done
token2=$(primary_write "UPDATE accounts SET balance = balance - 25 WHERE id = 7")
say "  new token $token2; on the standby token_status says: $(standby_sql "SELECT consistency.token_status('$token2')")"
say "a read that insists on it fails fast instead of answering stale (read_after_timeout = 300ms):"
standby_expect_error "SET consistency.read_after_timeout = '300ms'; SET consistency.read_after = '$token2'; SELECT balance FROM accounts WHERE id = 7"

say "a reader that may wait (read_after_timeout = 10s) is woken as soon as replay resumes:"
started_wait=$(date +%s%N)
standby_psql -c "SET consistency.read_after_timeout = '10s'" -c "SET consistency.read_after = '$token2'" \
	-c "SELECT balance FROM accounts WHERE id = 7" >"$DEMO_DIR/waiter.out" 2>&1 &
waiter=$!
sleep 1
standby_sql "SELECT pg_wal_replay_resume()" >/dev/null
resumed=$(date +%s%N)
wait "$waiter"
done_wait=$(date +%s%N)
say "  the waiter waited $(( (done_wait - started_wait) / 1000000 )) ms, returned $(( (done_wait - resumed) / 1000000 )) ms after the resume, and read balance $(cat "$DEMO_DIR/waiter.out")"

sysid=$(primary_sql "SELECT system_identifier FROM pg_control_system()")
foreign="v1:$((sysid / 2)):1:0/3000148"
say "a token from another cluster is refused at once, without waiting:"
say "  token_status('$foreign') = $(standby_sql "SELECT consistency.token_status('$foreign')")"

say "the C router library (src/client/) routes 200 write -> read cycles (test/router_example):"
conn_p="host=$PRIMARY port=$PRIMARY_PORT dbname=shop"
conn_s="host=$STANDBY port=$STANDBY_PORT dbname=shop"
primary_sql "CREATE TABLE rw_counter (id int PRIMARY KEY, v bigint NOT NULL); INSERT INTO rw_counter VALUES (1, 0)"
as_user "$WORK/test/router_example" --primary "$conn_p" --standby "$conn_s" --cycles 200 --budget-ms 1000 \
	2>/dev/null | tr ' ' '\n' | sed 's/^/      /'
say "and the same pattern in Python (test/router_example.py, psycopg):"
as_user /usr/bin/python3 "$WORK/test/router_example.py" --primary "$conn_p" --standby "$conn_s" --cycles 200 |
	sed 's/^/      /'

for node in primary standby; do
	if [ $node = primary ]; then run=primary_sql; else run=standby_sql; fi
	$run "ALTER SYSTEM RESET session_preload_libraries" >/dev/null
	$run "SELECT pg_reload_conf()" >/dev/null
done
