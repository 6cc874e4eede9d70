# Demo chapter: optimistic version-checked updates.  Two clerks edit the same product: without
# versioning the second silently overwrites the first; with it, the second gets a clear,
# retryable conflict.  Then eight concurrent clients increment one counter (lost updates
# without versioning, none with it), strict mode stops an ORM-style bulk UPDATE, the
# function mode (update_versioned) needs no trigger, and an HTTP API gets YC101 for If-Match.

chapter "Optimistic versioning: lost updates become a clear, retryable conflict"

# ver_error SQL [psql args]: run SQL on the primary, which must fail; print its SQLSTATE,
# message and detail.
ver_error() {
	local out
	if out=$(cluster_psql "$PRIMARY" "$PRIMARY_PORT" -d shop -At -v VERBOSITY=verbose -c "$1" "${@:2}" 2>&1); then
		die "expected an error from: $1"
	fi
	printf '%s\n' "$out" | sed -nE -e 's/^(psql:[^ ]* )?ERROR: +([0-9A-Z]{5}): (.*)$/      ERROR \2: \3/p' \
		-e 's/^DETAIL: +(.*)$/        detail: \1/p'
}

primary_sql "CREATE TABLE articles (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL,
                                    stock int NOT NULL)"
primary_sql "INSERT INTO articles VALUES (1, 'espresso machine', 199.00, 12), (2, 'grinder', 89.00, 40)"
primary_sql "CREATE TABLE articles_unversioned AS SELECT * FROM articles"

say "without versioning: Alice and Bob both open product 1 (price 199.00, stock 12)"
say "  Alice sets the price to 179.00; Bob, from his stale screen, corrects the stock to 11"
primary_sql "UPDATE articles_unversioned SET price = 179.00, stock = 12 WHERE id = 1"
primary_sql "UPDATE articles_unversioned SET price = 199.00, stock = 11 WHERE id = 1"
say "  both succeed, and Alice's price cut is silently gone:"
show primary_table "SELECT id, name, price, stock FROM articles_unversioned WHERE id = 1"

say "with versioning: one call adds the column (bigint NOT NULL DEFAULT 1, no table rewrite)"
say "and installs the trigger"
primary_sql "SELECT consistency.enable_versioning('articles')" >/dev/null
show primary_table "SELECT id, name, price, stock, version FROM articles ORDER BY id"
say "Alice and Bob both read version 1; Alice saves first, sending the version she read:"
show primary_table "UPDATE articles SET price = 179.00, stock = 12, version = 1 WHERE id = 1 RETURNING id, price, stock, version"
say "Bob saves his stale copy, also sending version 1:"
ver_error "UPDATE articles SET price = 199.00, stock = 11, version = 1 WHERE id = 1"
say "  40001 is what retry loops already catch: Bob's client re-reads (version 2) and retries"
show primary_table "UPDATE articles SET stock = 11, version = 2 WHERE id = 1 RETURNING id, price, stock, version"

say "eight concurrent clients each add 1 to the stock of product 2, 25 times (read, then write"
say "back stock + 1); pgbench retries 40001 like any application retry loop:"
cat <<'SQL' | as_user tee "$DEMO_DIR/increment-plain.sql" >/dev/null
BEGIN;
SELECT stock FROM articles_unversioned WHERE id = 2 \gset
UPDATE articles_unversioned SET stock = :stock + 1 WHERE id = 2;
COMMIT;
SQL
cat <<'SQL' | as_user tee "$DEMO_DIR/increment-versioned.sql" >/dev/null
BEGIN;
SELECT stock, version FROM articles WHERE id = 2 \gset
SELECT consistency.update_versioned('articles', '{"id": 2}', :version, jsonb_build_object('stock', :stock + 1));
COMMIT;
SQL
ver_run() {	# script
	as_user "$PG_BINDIR/pgbench" -h "$PRIMARY" -p "$PRIMARY_PORT" -n -c 8 -j 2 -t 25 --max-tries=1000 \
		-f "$DEMO_DIR/$1" shop 2>&1
}
primary_sql "UPDATE articles_unversioned SET stock = 40 WHERE id = 2"
ver_out=$(ver_run increment-plain.sql)
ver_stock=$(primary_sql "SELECT stock FROM articles_unversioned WHERE id = 2")
say "  without versioning: stock 40 -> $ver_stock after 200 committed increments: $((240 - ver_stock)) lost updates"
ver_out=$(ver_run increment-versioned.sql)
say "  with update_versioned: stock 40 -> $(primary_sql "SELECT stock FROM articles WHERE id = 2"), version $(primary_sql "SELECT version FROM articles WHERE id = 2");" \
	"$(printf '%s\n' "$ver_out" | sed -nE 's/^total number of retries: ([0-9]+).*/\1/p') conflicts were retried"

say "strict mode: an UPDATE that does not state the version it read is refused, which closes"
say "the 'bulk UPDATE bypasses the check' hole:"
primary_sql "SELECT consistency.enable_versioning('articles', strict => true)" >/dev/null
ver_error "UPDATE articles SET price = price * 0.9"

say "function mode needs no trigger: key and changes as JSON, values coerced to column types"
primary_sql "CREATE TABLE profiles (id int PRIMARY KEY, email text NOT NULL, credit numeric(10,2),
                                     version bigint NOT NULL DEFAULT 1)"
primary_sql "INSERT INTO profiles (id, email, credit) VALUES (7, 'ann@example.com', 0)"
show primary_table "SELECT consistency.update_versioned('profiles', '{\"id\": 7}', 1,
                      '{\"email\": \"ann@example.org\", \"credit\": \"25.50\"}') AS new_version"
say "  the same call again (a stale version), then a missing row, then try_update_versioned:"
ver_error "SELECT consistency.update_versioned('profiles', '{\"id\": 7}', 1, '{\"credit\": 0}')"
ver_error "SELECT consistency.update_versioned('profiles', '{\"id\": 8}', 1, '{\"credit\": 0}')"
show primary_table "SELECT consistency.try_update_versioned('profiles', '{\"id\": 7}', 1, '{\"credit\": 0}') AS null_on_conflict"

say "an HTTP API passing the client's If-Match version wants a conflict it can answer with 412,"
say "not one its retry loop would swallow: consistency.version_conflict_sqlstate = 'YC101'"
primary_sql "CREATE ROLE api_if_match LOGIN"
primary_sql "GRANT consistency_user TO api_if_match"
primary_sql "GRANT SELECT, UPDATE ON profiles TO api_if_match"
primary_sql "ALTER ROLE api_if_match SET consistency.version_conflict_sqlstate = 'YC101'"
say "  the API's login gets YC101 for the same stale update:"
ver_error "SELECT consistency.update_versioned('profiles', '{\"id\": 7}', 1, '{\"credit\": 0}')" -U api_if_match
show primary_table "SELECT id, email, credit, version FROM profiles"
