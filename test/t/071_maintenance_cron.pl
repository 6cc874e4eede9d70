# consistency.maintenance() scheduled by a real pg_cron while a workload runs:
# - an expired idempotency key is purged, a lapsed reservation expired and its stock back
#   on sale, and a stale prepared transaction (coordinator committed without a decision:
#   presumed abort) rolled back, all by the scheduled job, with no manual call;
# - the workload (idempotency keys and reservations with short lifetimes, 2 clients)
#   finishes without an error while the job runs, and the job's runs succeed.
# pg_cron 1.4 (Debian bookworm's postgresql-15-cron) schedules by the minute: the first run
# comes within a minute of scheduling.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_cron,consistency'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 32
max_prepared_transactions = 10
consistency.tpc_auto_resolve = on
consistency.tpc_auto_resolve_after = '1s'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE EXTENSION pg_cron;
	CREATE TABLE acc (id int PRIMARY KEY);
	SELECT consistency.stock_set('lamp', 1000000, 4);
	SELECT consistency.stock_set('mug', 5);
});

# What the job must clean up, made before it is scheduled.
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT consistency.idem_begin('old-key', ttl => '1 second');
	SELECT consistency.idem_complete('old-key', '{}');
	COMMIT;
	SELECT consistency.reserve('mug', 5, 'old-hold', ttl => '1 second');
});
is($node->safe_psql('postgres', q{SELECT consistency.available('mug')}), '0', 'mug: all 5 held');
my $gid = $node->safe_psql('postgres', q{
	BEGIN;
	SELECT consistency.tpc_gid('p');
	COMMIT;});		# committed without a decision: presumed abort
$node->safe_psql('postgres', qq{
	BEGIN;
	INSERT INTO acc VALUES (1);
	PREPARE TRANSACTION '$gid';});
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '1', 'one prepared transaction in doubt');

# The workload: 2 clients, rate-limited, every key and hold lapsing after a second.
my $script = $node->basedir . '/workload.sql';
open my $fh, '>', $script or die "$script: $!";
print $fh q{
\set k random(1, 1000000000)
BEGIN;
SELECT status FROM consistency.idem_begin('w-' || :k, ttl => '1 second');
SELECT consistency.idem_complete('w-' || :k, '{"ok": true}');
COMMIT;
SELECT consistency.reserve('lamp', 1, 'w-' || :k, ttl => '1 second');
};
close $fh;
my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-j', '1', '-R', '40', '-T', '80', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

$node->safe_psql('postgres', q{
	SELECT cron.schedule('consistency-maintenance', '* * * * *', 'CALL consistency.maintenance()')});

# Wait for the job's first run (pg_cron ticks every minute), then for the workload to end.
$node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')})
  or die 'the maintenance job never ran';
$bench->finish;
is($?, 0, 'the workload exited cleanly');
like($out, qr/number of failed transactions: 0 /, 'no workload transaction failed');
unlike($err, qr/ERROR|FATAL/, 'the workload saw no error') or diag $err;
like($out, qr/number of transactions actually processed: [1-9]/, 'the workload did work');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM cron.job_run_details WHERE status <> 'succeeded'}), '0',
	'every run of the job succeeded');
ok($node->safe_psql('postgres', q{
	SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded'}) >= 1,
	'the job ran');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM consistency.idempotency_keys WHERE key = 'old-key'}), '0',
	'the expired key was purged by the job');
is($node->safe_psql('postgres', q{
	SELECT status FROM consistency.reservations WHERE reservation_id = 'old-hold'}), 'expired',
	'the lapsed reservation was expired by the job');
is($node->safe_psql('postgres', q{SELECT consistency.available('mug')}), '5',
	'and its stock is back on sale');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0',
	'the stale prepared transaction was resolved by the job');
is($node->safe_psql('postgres', qq{
	SELECT action || '/' || outcome FROM consistency.tpc_resolution_log WHERE gid = '$gid'}),
	'rollback/rolled_back', 'by its verdict: presumed abort, rolled back');
is($node->safe_psql('postgres', 'SELECT count(*) FROM acc'), '0', 'its write is gone');

# The workload's own lapsed keys and holds are purged on schedule too.
ok($node->safe_psql('postgres', q{
	SELECT value FROM consistency.stats
	 WHERE datname = 'postgres' AND capability = 'idempotency' AND counter = 'purged'}) >= 1,
	'stats: keys purged');
ok($node->safe_psql('postgres', q{
	SELECT value FROM consistency.stats
	 WHERE datname = 'postgres' AND capability = 'inventory' AND counter = 'expired'}) >= 1,
	'stats: reservations expired');
like(slurp_file($node->logfile), qr/consistency\.maintenance: purged \d+ expired idempotency keys/,
	'the job logged what it did');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM consistency.check_inventory()}), '0', 'the inventory is consistent');

$node->stop;
done_testing();
