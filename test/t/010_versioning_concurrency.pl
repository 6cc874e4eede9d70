# Optimistic versioning on a real server, under real concurrency:
# - eight pgbench clients do read-modify-write increments of one counter (read n and its
#   version, write n + 1 with that version), retrying on 40001: with the version_guard
#   trigger, with update_versioned, and with both on one table, no increment is lost;
#   without versioning, the same workload loses updates (reported, not asserted);
# - a backend's cached update_versioned statements follow ALTER TABLE done by another
#   backend (relcache invalidation), including a renamed and a retyped column;
# - consistency.version_conflict_sqlstate set per role turns conflicts into YC101, which a
#   retry loop such as pgbench's does not retry.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('versioning');
$node->init;
$node->append_conf('postgresql.conf', 'max_connections = 50');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE TABLE counter_plain (id int PRIMARY KEY, n int NOT NULL, version bigint NOT NULL DEFAULT 1);
	CREATE TABLE counter_trigger (LIKE counter_plain INCLUDING ALL);
	CREATE TABLE counter_fn (LIKE counter_plain INCLUDING ALL);
	CREATE TABLE counter_both (LIKE counter_plain INCLUDING ALL);
	INSERT INTO counter_plain VALUES (1, 0);
	INSERT INTO counter_trigger VALUES (1, 0);
	INSERT INTO counter_fn VALUES (1, 0);
	INSERT INTO counter_both VALUES (1, 0);
	SELECT consistency.enable_versioning('counter_trigger');
	SELECT consistency.enable_versioning('counter_both', strict => true);
});

my $clients = 8;
my $per_client = 40;
my $total = $clients * $per_client;

# Read n and its version, then write n + 1 back; each script is one transaction.
my %scripts = (
	plain => q{
		BEGIN;
		SELECT n, version FROM counter_plain WHERE id = 1 \gset
		UPDATE counter_plain SET n = :n + 1 WHERE id = 1;
		COMMIT;
	},
	trigger => q{
		BEGIN;
		SELECT n, version FROM counter_trigger WHERE id = 1 \gset
		UPDATE counter_trigger SET n = :n + 1, version = :version WHERE id = 1;
		COMMIT;
	},
	fn => q{
		BEGIN;
		SELECT n, version FROM counter_fn WHERE id = 1 \gset
		SELECT consistency.update_versioned('counter_fn', '{"id": 1}', :version, jsonb_build_object('n', :n + 1));
		COMMIT;
	},
	both => q{
		BEGIN;
		SELECT n, version FROM counter_both WHERE id = 1 \gset
		\set kind random(0, 1)
		\if :kind
		UPDATE counter_both SET n = :n + 1, version = :version WHERE id = 1;
		\else
		SELECT consistency.update_versioned('counter_both', '{"id": 1}', :version, jsonb_build_object('n', :n + 1));
		\endif
		COMMIT;
	},
);

for my $mode (qw(trigger fn both plain))
{
	$node->pgbench(
		"--no-vacuum --client=$clients --jobs=2 --transactions=$per_client --max-tries=100000",
		0,
		[qr{number of transactions actually processed: $total/$total}],
		[qr{^$}],
		"$mode: $clients clients x $per_client read-modify-write increments",
		{ "010_versioning_$mode.sql" => $scripts{$mode} });
	my ($n, $version) = split /\|/,
	  $node->safe_psql('postgres', "SELECT n, version FROM counter_$mode WHERE id = 1");
	if ($mode eq 'plain')
	{
		cmp_ok($n, '<=', $total, 'without versioning: never more increments than transactions');
		note("without versioning, $clients clients kept $n of $total increments: "
			  . ($total - $n) . " lost updates");
	}
	else
	{
		is($n, $total, "$mode: every one of the $total increments is there (no lost update)");
		is($version, $total + 1, "$mode: the version went up by exactly one per update");
	}
}

# Cached statements follow ALTER TABLE made by another backend.
$node->safe_psql('postgres', q{
	CREATE TABLE docs (id int PRIMARY KEY, title text, pages int, version bigint NOT NULL DEFAULT 1);
	INSERT INTO docs VALUES (1, 'draft', 1);
});
my $app = $node->background_psql('postgres', on_error_stop => 0);
is( $app->query_safe(q{SELECT consistency.update_versioned('docs', '{"id": 1}', 1, '{"title": "v2", "pages": 2}')}),
	'2', 'app backend caches the statement for (title, pages)');
$node->safe_psql('postgres', q{
	ALTER TABLE docs RENAME COLUMN title TO heading;
	ALTER TABLE docs ALTER COLUMN pages TYPE text;
});
is( $app->query_safe(q{SELECT consistency.update_versioned('docs', '{"id": 1}', 2, '{"heading": "v3", "pages": "two"}')}),
	'3', 'after another backend renamed and retyped columns, the app backend uses the new ones');
my $out = $app->query(q{SELECT consistency.update_versioned('docs', '{"id": 1}', 3, '{"title": "v4", "pages": "x"}')});
like($app->{stderr}, qr/column "title" of table "docs" does not exist/,
	'the old column name is refused, not served from a stale cache');
$app->{stderr} = '';
$node->safe_psql('postgres', q{
	ALTER TABLE docs DROP CONSTRAINT docs_pkey;
	ALTER TABLE docs ADD PRIMARY KEY (id, heading);
});
$out = $app->query(q{SELECT consistency.update_versioned('docs', '{"id": 1}', 3, '{"pages": "three"}')});
like($app->{stderr}, qr/key must name exactly the primary key columns/,
	'a new primary key is seen by the app backend');
$app->{stderr} = '';
is( $app->query_safe(q{SELECT consistency.update_versioned('docs', '{"id": 1, "heading": "v3"}', 3, '{"pages": "three"}')}),
	'4', 'and the composite key works there');
$app->quit;
is($node->safe_psql('postgres', 'SELECT heading, pages, version FROM docs'),
	'v3|three|4', 'the row has exactly the accepted updates');

# YC101 per role: for applications that pass a client-supplied version (HTTP If-Match).
$node->safe_psql('postgres', q{
	CREATE ROLE http_api LOGIN;
	GRANT consistency_user TO http_api;
	GRANT SELECT, UPDATE ON docs, counter_trigger TO http_api;
	ALTER ROLE http_api SET consistency.version_conflict_sqlstate = 'YC101';
});
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT consistency.update_versioned('docs', '{"id": 1, "heading": "v3"}', 1, '{"pages": "if-match"}')},
	extra_params => [ '-U', 'http_api', '-v', 'VERBOSITY=verbose' ]);
like($stderr, qr/YC101: version conflict on table "docs".*expected version 1, found 4/s,
	'a role configured for client-supplied versions gets YC101');
$node->pgbench(
	"--no-vacuum --client=4 --jobs=2 --transactions=20 --max-tries=100 -U http_api",
	2,
	[qr{number of failed transactions: 0}],
	[qr{aborted in command 2 query 0: ERROR:  version conflict}],
	'a retry loop does not retry YC101: the clients stop at their first conflict',
	{ '010_versioning_http.sql' => $scripts{trigger} });
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{UPDATE counter_trigger SET n = 0, version = 1 WHERE id = 1},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($stderr, qr/40001: version conflict/, 'other roles still get 40001');

$node->stop;
done_testing();
