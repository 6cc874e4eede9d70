# Upgrading from 1.0, the shipped version, to the current one:
# - a database created at 1.0 (CREATE EXTENSION consistency VERSION '1.0') and filled through
#   the 1.0 functions only: completed keys, live, lapsed and released leases, a versioned table,
#   stock and reservations in every state, 2PC decisions, resolution log rows and an in-doubt
#   prepared transaction, tokens;
# - every function of 1.0 is called on the new library BEFORE the update (the 1.0 SQL still
#   points at the 1.0 C entry points), checked through pg_stat_user_functions;
# - ALTER EXTENSION consistency UPDATE; the extension's catalog is a fresh install's, the data
#   is unchanged and still works through the functions (a stored key replays, a lease resumes,
#   a reservation is confirmed, the in-doubt transaction is resolved from its logged decision);
# - then the whole pg_regress suite (sql/*.sql) runs on that upgraded database;
# - the same from a pg_dump -Fc of the filled 1.0 database, restored into a fresh database
#   (pg_dump writes CREATE EXTENSION without a version: this gives the default version, with
#   the 1.0 rows loaded into it), and restored into a database already at 1.0, then updated.
# The regress files expect a database named contrib_regression, and some read whole tables or
# every prepared transaction of the cluster: before the suite runs, the fill rows are deleted
# (as the regress files' own epilogues do), so it sees the upgraded catalog as a fresh install.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
# The regress suite's server settings, and per-function call counts for the coverage check.
$node->append_conf('postgresql.conf', slurp_file('test/temp-instance.conf'));
$node->append_conf('postgresql.conf', "track_functions = 'all'\n");
$node->start;

my $db = 'contrib_regression';

# sql_as(DB, ROLE, SQL): run SQL as ROLE (a login role), stop at the first error.
sub sql_as
{
	my ($dbname, $role, $sql) = @_;
	return $node->safe_psql($dbname, $sql, extra_params => [ '-U', $role ]);
}

# sqlstate_as(DB, ROLE, SQL): the SQLSTATE of the error SQL raises ('' if none).
sub sqlstate_as
{
	my ($dbname, $role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($dbname, $sql,
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ]);
	return $err =~ /ERROR:  ([0-9A-Z]{5}):/ ? $1 : '';
}

$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, q{
	CREATE EXTENSION consistency VERSION '1.0';
	CREATE ROLE upgrade_app LOGIN IN ROLE consistency_user;
	CREATE ROLE upgrade_admin LOGIN IN ROLE consistency_admin;
	CREATE SCHEMA upgrade_fill;
	GRANT USAGE ON SCHEMA upgrade_fill TO upgrade_app, upgrade_admin;
	CREATE TABLE upgrade_fill.products (id int PRIMARY KEY, price numeric NOT NULL);
	CREATE TABLE upgrade_fill.strict_products (id int PRIMARY KEY, price numeric NOT NULL);
	CREATE TABLE upgrade_fill.notes (id int PRIMARY KEY, body text NOT NULL);
	ALTER TABLE upgrade_fill.products OWNER TO upgrade_app;
	ALTER TABLE upgrade_fill.strict_products OWNER TO upgrade_app;
	ALTER TABLE upgrade_fill.notes OWNER TO upgrade_app;
	CREATE TABLE upgrade_fill.ledger (gid text PRIMARY KEY, amount int NOT NULL);
	GRANT SELECT, INSERT ON upgrade_fill.ledger TO upgrade_admin;
	-- an application object that depends on stock_set (a SQL-standard body records it): the
	-- update must keep the function, not drop and re-create it
	CREATE FUNCTION upgrade_fill.restock(sku text) RETURNS bigint LANGUAGE sql
	BEGIN ATOMIC SELECT consistency.stock_set(sku, 100, 1); END;
});
is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'consistency'"),
	'1.0', 'installed at 1.0');

# ---- Fill every table through the 1.0 functions, on the new library -------------------------

# Idempotency keys: completed (two scopes), a live lease with a recovery point, a lapsed lease,
# a released lease, an expired key for idem_purge.
is(sql_as($db, 'upgrade_app', q{
	BEGIN;
	SELECT status FROM consistency.idem_begin('up-done-1', 'fp-1');
	SELECT consistency.idem_complete('up-done-1', '{"order": 1}');
	COMMIT;
	BEGIN;
	SELECT status FROM consistency.idem_begin('up-done-2', 'fp-2', scope => 'tenant-b');
	SELECT consistency.idem_complete('up-done-2', '{"order": 2}', scope => 'tenant-b');
	COMMIT;
	BEGIN;
	SELECT status FROM consistency.idem_begin('up-expired', ttl => '1 millisecond');
	SELECT consistency.idem_complete('up-expired', '{"order": 0}');
	COMMIT;
	SELECT status || ' ' || response FROM consistency.idem_begin('up-done-1', 'fp-1');
	SELECT status FROM consistency.idem_lease('up-lease-live', 'fp-l', lease => '1 hour');
	SELECT consistency.idem_checkpoint('up-lease-live', 'step 1', attempt => 1) > now();
	SELECT status FROM consistency.idem_lease('up-lease-lapsed', 'fp-x', lease => '1 millisecond');
	SELECT consistency.idem_checkpoint('up-lease-lapsed', 'charged', attempt => 1) IS NOT NULL;
	SELECT status FROM consistency.idem_lease('up-lease-released', lease => '1 hour');
	SELECT consistency.idem_release('up-lease-released', attempt => 1);
	SELECT pg_sleep(0.01);	-- the 1 ms ttl and lease above are now past
}), "new\n\nnew\n\nnew\n\nreplay {\"order\": 1}\nnew\nt\nnew\nt\nnew\nt\n",
	'1.0 idempotency functions: claims, completions, a replay, leases, a release');
is(sql_as($db, 'upgrade_admin', 'SELECT consistency.idem_purge()'), '1',
	'1.0 idem_purge deletes the expired key');

# Versioning: a trigger-mode table, a strict one, one enabled then disabled.
is(sql_as($db, 'upgrade_app', q{
	SELECT consistency.enable_versioning('upgrade_fill.products');
	SELECT consistency.enable_versioning('upgrade_fill.strict_products', strict => true);
	SELECT consistency.enable_versioning('upgrade_fill.notes');
	SELECT consistency.disable_versioning('upgrade_fill.notes');
	INSERT INTO upgrade_fill.products VALUES (1, 10), (2, 20);
	INSERT INTO upgrade_fill.strict_products VALUES (1, 10);
	INSERT INTO upgrade_fill.notes VALUES (1, 'unversioned');
	UPDATE upgrade_fill.products SET price = 11, version = 1 WHERE id = 1;
	UPDATE upgrade_fill.strict_products SET price = 12, version = 1 WHERE id = 1;
	SELECT consistency.update_versioned('upgrade_fill.products', '{"id": 2}', 1, '{"price": 21}');
	SELECT consistency.try_update_versioned('upgrade_fill.products', '{"id": 2}', 1, '{"price": 0}') IS NULL;
	SELECT string_agg(id || ':' || price || ':v' || version, ' ' ORDER BY id) FROM upgrade_fill.products;
}), "\n\n\n\n2\nt\n1:11:v2 2:21:v2", '1.0 versioning functions');
is(sqlstate_as($db, 'upgrade_app', 'UPDATE upgrade_fill.products SET price = 0, version = 1 WHERE id = 1'),
	'40001', '1.0 version_guard: a stale update is a conflict');

# Inventory: stock (one and several slots), reservations active, confirmed, released, expired,
# a basket over two SKUs.  The active ones live a day: they are confirmed and released after
# the update and after each restore.
is(sql_as($db, 'upgrade_admin', q{
	SELECT consistency.stock_set('up-mug', 10);
	SELECT consistency.stock_set('up-lamp', 20, slots => 4);
	SELECT consistency.stock_set('up-bulb', 50);
	SELECT consistency.stock_add('up-bulb', 5);
}), "10\n20\n50\n55", '1.0 stock_set, stock_add');
is(sql_as($db, 'upgrade_app', q{
	SELECT consistency.reserve('up-mug', 1, 'up-res-active', ttl => '1 day');
	SELECT consistency.reserve('up-lamp', 2, 'up-res-active-2', ttl => '1 day');
	SELECT consistency.reserve_all('up-basket', ARRAY['up-lamp', 'up-bulb'], ARRAY[1, 4], ttl => '1 day');
	SELECT consistency.reserve('up-mug', 2, 'up-res-confirmed');
	SELECT consistency.confirm('up-res-confirmed');
	SELECT consistency.reserve('up-mug', 3, 'up-res-released');
	SELECT consistency.release('up-res-released');
	SELECT consistency.reserve('up-lamp', 1, 'up-res-expired', ttl => '1 millisecond');
	SELECT consistency.reserve('up-mug', 100, 'up-res-insufficient');
	SELECT pg_sleep(0.01);	-- the 1 ms ttl is past
	SELECT consistency.available('up-mug');
}), "reserved\nreserved\nreserved\nreserved\n2\nreserved\n3\nreserved\ninsufficient\n\n7",
	'1.0 reserve, reserve_all, confirm, release, available');
is(sql_as($db, 'upgrade_admin', q{
	SELECT consistency.expire_reservations();
	SELECT count(*) FROM consistency.check_inventory();
}), "1\n0", '1.0 expire_reservations, check_inventory');

# Two-phase commit: a commit decision resolved by resolve_prepared, an abort decision resolved
# by resolve_stale (both logged), and a commit decision whose participant stays in doubt.
my $tpc = sql_as($db, 'upgrade_admin', q{
	BEGIN;
	SELECT consistency.tpc_gid('a') AS gid_a \gset
	SELECT consistency.tpc_log_decision(:'gid_a');
	COMMIT;
	BEGIN;
	INSERT INTO upgrade_fill.ledger VALUES (:'gid_a', 1);
	PREPARE TRANSACTION :'gid_a';
	SELECT outcome FROM consistency.resolve_prepared(:'gid_a', dry_run => false);
	BEGIN;
	SELECT consistency.tpc_gid('b') AS gid_b \gset
	SELECT consistency.tpc_log_decision(:'gid_b', 'abort');
	COMMIT;
	BEGIN;
	INSERT INTO upgrade_fill.ledger VALUES (:'gid_b', 2);
	PREPARE TRANSACTION :'gid_b';
	SELECT outcome FROM consistency.resolve_stale('0', dry_run => false);
	BEGIN;
	SELECT consistency.tpc_gid('c') AS gid_c \gset
	SELECT consistency.tpc_log_decision(:'gid_c');
	COMMIT;
	BEGIN;
	INSERT INTO upgrade_fill.ledger VALUES (:'gid_c', 3);
	PREPARE TRANSACTION :'gid_c';
	SELECT verdict FROM consistency.prepared_xacts() WHERE gid = :'gid_c';
	SELECT planned || ' ' || executed FROM consistency.resolve_prepared(:'gid_c');
	SELECT :'gid_c';
});
my @tpc = split /\n/, $tpc;
my $gid_c = pop @tpc;
is(join(' ', grep { $_ ne '' } @tpc), 'committed rolled_back commit commit false',
	'1.0 2PC functions: decisions logged, resolved from them, one left in doubt');
is(sqlstate_as($db, 'upgrade_app', qq{
	INSERT INTO consistency.tpc_decisions VALUES ('$gid_c:forged', 'commit', 1, '1', now())}),
	'YC402', '1.0 tpc_decisions_guard refuses a forged decision');

# Tokens (nothing stored; the library computes them).
is(sql_as($db, 'upgrade_app', q{
	INSERT INTO upgrade_fill.products VALUES (3, 30);
	SELECT consistency.write_token() AS t \gset
	SELECT :'t' LIKE 'v1:%', consistency.token_max(:'t', :'t') = :'t', consistency.token_status(:'t'),
		   consistency.wait_for_token(:'t', '1s'), (SELECT count(*) FROM consistency.standby_status());
}), 't|t|primary|t|0', '1.0 token functions');

# Every function of 1.0 was called (C trigger functions included; the resolution log's guard
# runs in the resolver's worker, whose counts arrive when it exits).
my $uncalled = q{
	SELECT coalesce(string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid::regprocedure::text), '')
	  FROM pg_depend d
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'consistency'
	  JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	 WHERE coalesce(pg_stat_get_function_calls(p.oid), 0) = 0};
ok($node->poll_query_until($db, $uncalled, ''),
	'every function of 1.0 was called on the new library before the update')
  or diag('never called: ' . $node->safe_psql($db, $uncalled));
# (and not vacuously: the query sees the 32 functions of 1.0)
is($node->safe_psql($db, q{
	SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'consistency'
	 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'}),
	'32', 'the 32 functions of 1.0');

# ---- The data, as 1.0 left it -----------------------------------------------------------------

# The extension's tables and their 1.0 columns (the update may add columns: these are compared),
# plus the test's own tables.
my @tables = split /\n/, $node->safe_psql($db, q{
	SELECT c.oid::regclass || ' ' || string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
	  FROM pg_depend d
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'consistency'
	  JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE c.relkind = 'r'
	 GROUP BY c.oid ORDER BY 1});
is(scalar(@tables), 5, 'the five tables of 1.0');
push @tables, 'upgrade_fill.products *', 'upgrade_fill.strict_products *', 'upgrade_fill.notes *',
  'upgrade_fill.ledger *';

sub contents
{
	my ($dbname) = @_;
	my $all = '';
	for my $t (@tables)
	{
		my ($rel, $cols) = split / /, $t, 2;
		$all .= "-- $rel\n" . $node->safe_psql($dbname, qq{
			SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '(empty)')
			  FROM (SELECT $cols FROM $rel) r}) . "\n";
	}
	return $all;
}
my $filled = contents($db);
like($filled, qr/up-lease-live.*up-res-expired.*expired/s, 'the fill data is there');

my $dump = $node->basedir . '/filled_1_0.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr($db) ],
	'pg_dump -Fc of the filled 1.0 database');

# ---- Update, check, run the regress suite -----------------------------------------------------

# What a database's copy of the extension is: its member objects, function definitions, table
# columns, constraints, indexes, triggers, enum labels and every privilege on them.  The
# updated database must match a fresh CREATE EXTENSION of the default version.
my $catalog = q{
	WITH m AS (
		SELECT d.classid, d.objid, d.objsubid
		  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'consistency'
		 WHERE d.deptype = 'e')
	SELECT string_agg(x, E'\n' ORDER BY x) FROM (
		SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM m
		UNION ALL
		SELECT pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, '-')
		  FROM m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
		UNION ALL
		SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' acl ' || coalesce(c.relacl::text, '-')
			   || ' options ' || coalesce(array_to_string(c.reloptions, ','), '-')
		  FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
		UNION ALL
		SELECT 'column ' || a.attrelid::regclass || ' ' || a.attnum || ' ' || a.attname || ' '
			   || format_type(a.atttypid, a.atttypmod) || ' not null ' || a.attnotnull
			   || ' identity ' || a.attidentity::text || ' default ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
			   || ' acl ' || coalesce(a.attacl::text, '-')
		  FROM m JOIN pg_attribute a ON m.classid = 'pg_class'::regclass AND a.attrelid = m.objid
			   AND a.attnum > 0 AND NOT a.attisdropped
		  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
		UNION ALL
		SELECT 'constraint ' || coalesce(con.conrelid::regclass::text, con.contypid::regtype::text) || ' '
			   || con.conname || ' ' || pg_get_constraintdef(con.oid)
		  FROM m JOIN pg_constraint con ON (m.classid = 'pg_class'::regclass AND con.conrelid = m.objid)
			   OR (m.classid = 'pg_type'::regclass AND con.contypid = m.objid)
		UNION ALL
		SELECT pg_get_indexdef(i.indexrelid)
		  FROM m JOIN pg_index i ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
		UNION ALL
		SELECT pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
		  FROM m JOIN pg_trigger t ON m.classid = 'pg_class'::regclass AND t.tgrelid = m.objid
		 WHERE NOT t.tgisinternal
		UNION ALL
		SELECT 'type ' || t.oid::regtype || ' acl ' || coalesce(t.typacl::text, '-') || ' labels '
			   || coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
							  FROM pg_enum WHERE enumtypid = t.oid), '-')
		  FROM m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
		UNION ALL
		SELECT 'dumped ' || x::regclass || ' ' || coalesce(c.condition, '')
		  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS c(x, condition)
		 WHERE e.extname = 'consistency'
		UNION ALL
		SELECT 'schema ' || nspname || ' acl ' || coalesce(nspacl::text, '-')
		  FROM pg_namespace WHERE nspname = 'consistency'
	) s(x)};
$node->safe_psql('postgres', 'CREATE DATABASE fresh_install');
$node->safe_psql('fresh_install', 'CREATE EXTENSION consistency');
my $fresh_catalog = $node->safe_psql('fresh_install', $catalog);
like($fresh_catalog, qr/^member function consistency\.idem_begin/m, 'a fresh install, described');

# check_updated(DB, LABEL, IN_DOUBT): update; the data survived and still works through the
# functions.  IN_DOUBT: the 1.0 participant left prepared is there to resolve.
sub check_updated
{
	my ($dbname, $label, $in_doubt) = @_;

	my ($ret, $out, $err) = $node->psql($dbname, 'ALTER EXTENSION consistency UPDATE');
	is($ret, 0, "$label: ALTER EXTENSION consistency UPDATE") or die "cannot go on: $err";
	is($node->safe_psql($dbname, "SELECT extversion FROM pg_extension WHERE extname = 'consistency'"),
		'1.1', "$label: extension at 1.1");
	is($node->safe_psql($dbname, $catalog), $fresh_catalog,
		"$label: the extension's objects, definitions and privileges are a fresh install's");
	is(contents($dbname), $filled, "$label: every row of every table unchanged");
	# Decisions logged at 1.0 on the new library have format-2 gids but had no nonce column:
	# the update (in place) or the guard (a restore) fills it from the gid.
	is($node->safe_psql($dbname, q{
		SELECT count(*) FILTER (WHERE gid LIKE 'cy2:%') > 0,
			   count(*) FILTER (WHERE gid LIKE 'cy2:%'
								  AND coordinator_nonce IS DISTINCT FROM split_part(gid, ':', 5))
		  FROM consistency.tpc_decisions}),
		't|0', "$label: every format-2 decision has its gid's nonce");
	# SKUs made by 1.0 stay pinned at the slots they had (1.0's stock_set always pinned); a
	# SKU made by the updated stock_set without slots is adaptive.
	is($node->safe_psql($dbname, q{
		SELECT string_agg(sku || ':' || n || ':' || a, ' ' ORDER BY sku)
		  FROM (SELECT sku, count(*) AS n, bool_or(adaptive) AS a FROM consistency.inventory
				 GROUP BY sku) s}),
		'up-bulb:1:false up-lamp:4:false up-mug:1:false', "$label: the SKUs of 1.0 stay pinned");
	is($node->safe_psql($dbname, q{
		BEGIN;
		SELECT consistency.stock_set('up-new', 5);
		SELECT bool_and(adaptive) FROM consistency.inventory WHERE sku = 'up-new';
		ROLLBACK;}),
		"5\nt", "$label: a new SKU without slots is adaptive");
	is($node->safe_psql($dbname, q{
		BEGIN;
		SELECT upgrade_fill.restock('up-dep');
		SELECT count(*) || ':' || bool_or(adaptive) FROM consistency.inventory WHERE sku = 'up-dep';
		ROLLBACK;}),
		"100\n1:false", "$label: a function depending on stock_set survived the update and pins");

	is(sql_as($dbname, 'upgrade_app', q{
		BEGIN;
		SELECT status || ' ' || response FROM consistency.idem_begin('up-done-1', 'fp-1');
		SELECT status || ' ' || response FROM consistency.idem_begin('up-done-2', 'fp-2', scope => 'tenant-b');
		ROLLBACK;
		SELECT status FROM consistency.idem_lease('up-lease-live', 'fp-l', wait => false);
		SELECT consistency.idem_complete('up-lease-live', '{"paid": true}', attempt => 1);
		SELECT status || ' ' || response FROM consistency.idem_lease('up-lease-live', 'fp-l');
		SELECT status || ' ' || recovery_point || ' ' || attempt
		  FROM consistency.idem_lease('up-lease-lapsed', 'fp-x');
	}), "replay {\"order\": 1}\nreplay {\"order\": 2}\nin_progress\n\nreplay {\"paid\": true}\nresume charged 2",
		"$label: stored keys replay, a live lease is in progress and completes, a lapsed one resumes");
	is(sqlstate_as($dbname, 'upgrade_app', q{
		BEGIN; SELECT * FROM consistency.idem_begin('up-done-1', 'fp-other'); ROLLBACK;}),
		'YC001', "$label: a stored fingerprint still guards its key");

	is(sql_as($dbname, 'upgrade_app', q{
		SELECT consistency.confirm('up-res-active');
		SELECT consistency.release('up-res-active-2');
		SELECT consistency.confirm('up-basket');
		SELECT consistency.reserve('up-mug', 1, 'up-res-active');
		SELECT consistency.available('up-mug') || ' ' || consistency.available('up-lamp')
			   || ' ' || consistency.available('up-bulb');
	}), "1\n2\n5\nreserved\n7 19 51",
		"$label: reservations confirmed and released, a retry answers from the stored one, stock adds up");
	is(sqlstate_as($dbname, 'upgrade_app', q{SELECT consistency.confirm('up-res-expired')}),
		'YC203', "$label: an expired reservation stays expired");
	is(sqlstate_as($dbname, 'upgrade_app', q{SELECT consistency.confirm('up-res-released')}),
		'YC204', "$label: a released reservation stays released");
	is(sqlstate_as($dbname, 'upgrade_app', q{SELECT consistency.release('up-res-confirmed')}),
		'YC205', "$label: a confirmed reservation stays confirmed");
	is(sql_as($dbname, 'upgrade_admin', q{SELECT count(*) FROM consistency.check_inventory()}),
		'0', "$label: every inventory invariant holds");

	is(sql_as($dbname, 'upgrade_app', q{
		SELECT consistency.update_versioned('upgrade_fill.products', '{"id": 2}', 2, '{"price": 22}');
		SELECT consistency.try_update_versioned('upgrade_fill.products', '{"id": 2}', 2, '{"price": 0}') IS NULL;
	}), "3\nt", "$label: update_versioned continues from the stored versions");
	is(sqlstate_as($dbname, 'upgrade_app',
			'UPDATE upgrade_fill.products SET price = 0, version = 1 WHERE id = 1'),
		'40001', "$label: the 1.0 trigger still refuses a stale update");
	is(sqlstate_as($dbname, 'upgrade_app', 'UPDATE upgrade_fill.strict_products SET price = 0 WHERE id = 1'),
		'YC102', "$label: the strict table is still strict");

	if ($in_doubt)
	{
		# The participant left in doubt before the update: resolved from its logged decision.
		is(sql_as($dbname, 'upgrade_admin', qq{
			SELECT verdict FROM consistency.prepared_xacts() WHERE gid = '$gid_c';
			SELECT outcome FROM consistency.resolve_prepared('$gid_c', dry_run => false);
			SELECT amount FROM upgrade_fill.ledger WHERE gid = '$gid_c';
		}), "commit\ncommitted\n3", "$label: the in-doubt transaction is resolved from its 1.0 decision");
	}
	else
	{
		# The dump has the decision log and the resolution log (and its sequence): a new
		# distributed transaction is decided, resolved and logged after the restored rows.
		is(sql_as($dbname, 'upgrade_admin', q{
			SELECT max(id) AS restored_max FROM consistency.tpc_resolution_log \gset
			BEGIN;
			SELECT consistency.tpc_gid('d') AS gid_d \gset
			SELECT consistency.tpc_log_decision(:'gid_d');
			COMMIT;
			BEGIN;
			INSERT INTO upgrade_fill.ledger VALUES (:'gid_d', 4);
			PREPARE TRANSACTION :'gid_d';
			SELECT outcome FROM consistency.resolve_prepared(:'gid_d', dry_run => false);
			SELECT id > :restored_max FROM consistency.tpc_resolution_log WHERE gid = :'gid_d';
		}), "\ncommitted\nt", "$label: a new decision is resolved and logged after the restored log");
	}
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0',
		"$label: nothing left in doubt");

	is(sql_as($dbname, 'upgrade_app', q{
		INSERT INTO upgrade_fill.products VALUES (4, 40);
		SELECT consistency.token_status(consistency.write_token());
	}), 'primary', "$label: tokens");
	return;
}

# run_regress(LABEL): the whole pg_regress suite on contrib_regression, after deleting the fill
# rows: the regress files read whole tables, and the cluster's prepared transactions.
sub run_regress
{
	my ($label) = @_;
	my @rels = map { (split / /, $_)[0] } grep { !/^upgrade_fill\./ } @tables;
	$node->safe_psql($db, join('', map { "DELETE FROM $_;\n" } @rels)
		  . 'DROP SCHEMA upgrade_fill CASCADE;');

	my @tests = map { m{^sql/(.+)\.sql$} ? $1 : () } sort glob('sql/*.sql');
	my $outdir = "$PostgreSQL::Test::Utils::tmp_check/regress_$label";
	my ($stdout, $stderr) = ('', '');
	my $ok = IPC::Run::run(
		[
			$ENV{PG_REGRESS}, '--use-existing', "--dbname=$db",
			'--host=' . $node->host, '--port=' . $node->port,
			'--bindir=', '--inputdir=.', "--outputdir=$outdir", @tests
		],
		'>', \$stdout, '2>', \$stderr);
	# "name ... ok" (15) or "ok N - name" (16 and later)
	my $passed = () = $stdout =~ /\.\.\. ok\b|^ok \d+ /mg;
	ok($ok && $passed == scalar(@tests),
		"$label: the regress suite passes on it ($passed of " . scalar(@tests) . ' files)')
	  or diag($stdout . $stderr
		  . (-f "$outdir/regression.diffs" ? slurp_file("$outdir/regression.diffs") : ''));
	return;
}

check_updated($db, 'updated', 1);
run_regress('updated');

# ---- The same from the dump of the filled 1.0 database ---------------------------------------

# fresh_database(): rename the tested database away (kept for inspection; the regress suite
# needs the name) and make a new empty one.  Resolver workers and the suite's sessions may
# still be leaving the old one.
my $generation = 0;
sub fresh_database
{
	$generation++;
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = '$db'"),
		"database $generation is idle");
	$node->safe_psql('postgres', "ALTER DATABASE $db RENAME TO tested_$generation; CREATE DATABASE $db");
	return;
}

# restored(LABEL): pg_restore of the dump into the (fresh) database; its rows, and a replay.
sub restored
{
	my ($label, @options) = @_;
	$node->command_ok([ 'pg_restore', '--exit-on-error', @options, '-d', $node->connstr($db), $dump ],
		"$label: pg_restore of the 1.0 dump");
	is(contents($db), $filled, "$label: every row of every table, exactly once");
	is(sql_as($db, 'upgrade_app', q{
		BEGIN;
		SELECT status || ' ' || response FROM consistency.idem_begin('up-done-1', 'fp-1');
		ROLLBACK;}), 'replay {"order": 1}', "$label: a stored key replays");
	return;
}

# pg_dump writes CREATE EXTENSION without a version, so restoring the 1.0 dump where the new
# version is installed creates the extension at the default version (the 1.0 script and then
# the update scripts) and loads the 1.0 rows into it, by column name: the common case.
fresh_database();
restored('restored');
is($node->safe_psql($db, q{
	SELECT e.extversion = a.default_version
	  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
	 WHERE e.extname = 'consistency'}),
	't', 'restored: the dump created the extension at the default version');
check_updated($db, 'restored', 0);
run_regress('restored');

# A restore into a database that already has the extension at 1.0 keeps 1.0 (the dump's
# CREATE EXTENSION IF NOT EXISTS does nothing; its CREATE SCHEMA consistency, which the
# extension made, is left out of the restore list): restored at 1.0, then updated.
fresh_database();
$node->safe_psql($db, "CREATE EXTENSION consistency VERSION '1.0'");
my ($toc) = run_command([ 'pg_restore', '-l', $dump ]);
my $list = $node->basedir . '/restore.list';
my @entries = split /\n/, $toc;
my @kept = grep { !/ SCHEMA - consistency / } @entries;
is(scalar(@entries) - scalar(@kept), 1, 'the restore list leaves out the schema, and only it');
append_to_file($list, join("\n", @kept) . "\n");
restored('restored at 1.0', '-L', $list);
is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'consistency'"),
	'1.0', 'restored at 1.0: still 1.0 before the update');
check_updated($db, 'restored at 1.0, updated', 0);
run_regress('restored_at_1_0');

$node->stop;
done_testing();
