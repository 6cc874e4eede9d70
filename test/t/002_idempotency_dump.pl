# pg_dump keeps idempotency keys: the table is registered with pg_extension_config_dump, so a
# dump and restore into a fresh database carries every key, fingerprint and response, and a
# retry against the restored database replays instead of running the request twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE DATABASE shop;
});
$node->safe_psql('shop', q{
	CREATE EXTENSION consistency;
	BEGIN;
	SELECT * FROM consistency.idem_begin('order-1', 'fp-1');
	SELECT consistency.idem_complete('order-1', '{"order_id": 1}');
	SELECT * FROM consistency.idem_begin('order-2', 'fp-2', scope => 'tenant-b');
	SELECT consistency.idem_complete('order-2', '{"order_id": 2}', scope => 'tenant-b');
	COMMIT;
	SELECT status FROM consistency.idem_lease('pay-1', 'fp-p', lease => '1 hour');
	SELECT consistency.idem_checkpoint('pay-1', 'authorised');
});

my $dump = $node->basedir . '/shop.dump';
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('shop') ],
	'pg_dump of a database using the extension');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore into a fresh database');

my $rows = q{SELECT scope || '|' || key || '|' || coalesce(fingerprint, '') || '|' || state
	|| '|' || coalesce(response::text, '') || '|' || coalesce(recovery_point, '') || '|' || attempt
	FROM consistency.idempotency_keys ORDER BY scope, key};
is($node->safe_psql('restored', $rows), $node->safe_psql('shop', $rows),
	'every key, fingerprint, response and lease survived the dump, exactly once');
is( $node->safe_psql('restored', q{
		BEGIN;
		SELECT status || ' ' || response::text FROM consistency.idem_begin('order-1', 'fp-1');
		ROLLBACK;}),
	'replay {"order_id": 1}', 'a retry against the restored database replays');

$node->stop;
done_testing();
