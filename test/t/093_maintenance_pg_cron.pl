# consistency.maintenance() scheduled by a real pg_cron, with README's cron.schedule line, by a
# role granted consistency_admin, while a workload runs:
# - an expired idempotency key is purged, a lapsed reservation expired and its stock back
#   on sale, and a stale prepared transaction (coordinator committed without a decision:
#   presumed abort) rolled back, all by the scheduled job, with no manual call;
# - the workload (idempotency keys and reservations with short lifetimes, 2 clients) runs
#   until the job has run, without an error, and every run of the job succeeds.
# pg_cron comes from Debian's postgresql-15-cron on 15; on other versions from Debian's pg-cron
# source package, built by scripts/lib/build-pg.sh.  When that build could not be done, the
# file build-pg.sh left in the installation says why, and this test skips with that reason;
# without pg_cron and without that file, it fails.
# pg_cron 1.4 (Debian bookworm's) schedules by the minute: the first run comes within a minute
# of scheduling.  Runs in both configurations (pg_cron is always preloaded; consistency only in
# the preload configuration).
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MaintenanceWorkload;

# Is pg_cron installed where this server looks for extensions?
my ($sharedir, $bindir) = split /\n/, `pg_config --sharedir --bindir`;
die "pg_config failed" if $? != 0;
unless (-f "$sharedir/extension/pg_cron.control")
{
	my $record = dirname($bindir) . '/.pg-cron-unavailable';
	if (open my $fh, '<', $record)
	{
		my $reason = <$fh>;
		close $fh;
		chomp $reason;
		plan skip_all => $reason;
	}
	BAIL_OUT("pg_cron is not installed in $sharedir/extension, and $record does not say why");
}

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
# pg_cron must be preloaded; consistency too when the configuration preloads it (TEMP_CONFIG).
my $preload = 'pg_cron';
if ($ENV{TEMP_CONFIG} && slurp_file($ENV{TEMP_CONFIG}) =~ /^\s*shared_preload_libraries\s*=\s*'[^']*consistency/m)
{
	$preload = 'pg_cron,consistency';
}
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$preload'
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
	CREATE ROLE maint LOGIN IN ROLE consistency_admin;
	CREATE ROLE app LOGIN IN ROLE consistency_user;
	GRANT USAGE ON SCHEMA cron TO maint;
	CREATE TABLE acc (id int PRIMARY KEY);
	GRANT INSERT, SELECT ON acc TO maint;
	SELECT consistency.stock_set('lamp', 1000000, 4);
	SELECT consistency.stock_set('mug', 5);
});
my $cron_version = $node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'});
note "pg_cron $cron_version";

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
	SET ROLE maint;
	BEGIN;
	SELECT consistency.tpc_gid('p');
	COMMIT;});		# committed without a decision: presumed abort
$node->safe_psql('postgres', qq{
	SET ROLE maint;
	BEGIN;
	INSERT INTO acc VALUES (1);
	PREPARE TRANSACTION '$gid';});
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '1', 'one prepared transaction in doubt');

# The workload (MaintenanceWorkload.pm): two clients, every key and hold lapsing after a
# second, until the job has run.
my $dir = $node->basedir;
my $workload = workload_start($node, $dir);

# So that the job's first run has all three to do: the key and the hold have lapsed and the
# prepared transaction is older than tpc_auto_resolve_after.
$node->poll_query_until('postgres', q{
	SELECT (SELECT bool_and(expires_at < now()) FROM consistency.idempotency_keys WHERE key = 'old-key')
	   AND (SELECT bool_and(expires_at < now()) FROM consistency.reservations WHERE reservation_id = 'old-hold')
	   AND (SELECT bool_and(now() - prepared > interval '1 second') FROM pg_prepared_xacts)})
  or die 'the key, the hold or the prepared transaction did not lapse';

# README's line, run by the maintenance role.
$node->safe_psql('postgres', q{
	SET ROLE maint;
	SELECT cron.schedule('consistency-maintenance', '* * * * *', 'CALL consistency.maintenance()');
});
is($node->safe_psql('postgres', q{SELECT username FROM cron.job WHERE jobname = 'consistency-maintenance'}),
	'maint', 'the job runs as the maintenance role');

# Wait for a run of the job that has seen the key and the hold lapse and the prepared
# transaction pass tpc_auto_resolve_after (pg_cron ticks every minute), then stop the workload.
$node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')})
  or die 'the maintenance job never ran';
workload_stop($dir, $workload, 1);
ok($node->safe_psql('postgres', q{
	SELECT bool_and(d.start_time > w.t AND d.end_time < now())
	  FROM cron.job_run_details d,
		   (SELECT min(created_at) AS t FROM consistency.reservations WHERE reservation_id LIKE 'w-%') w
	 WHERE d.status = 'succeeded'}) eq 't',
	'the job ran while the workload was running');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM cron.job_run_details WHERE status <> 'succeeded'}), '0',
	'every run of the job succeeded');
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
like(slurp_file($node->logfile), qr/consistency\.maintenance: purged \d+ expired idempotency keys.*resolved 1 in-doubt transactions older than 1s/,
	'the job logged what it did');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM consistency.check_inventory()}), '0', 'the inventory is consistent');
if ($preload =~ /consistency/)
{
	ok($node->safe_psql('postgres', q{
		SELECT value FROM consistency.stats
		 WHERE datname = 'postgres' AND capability = 'idempotency' AND counter = 'purged'}) >= 1,
		'stats: keys purged');
	ok($node->safe_psql('postgres', q{
		SELECT value FROM consistency.stats
		 WHERE datname = 'postgres' AND capability = 'inventory' AND counter = 'expired'}) >= 1,
		'stats: reservations expired');
}

is($node->safe_psql('postgres', q{
	SET ROLE maint;
	SELECT cron.unschedule('consistency-maintenance');}), 't', 'the role that scheduled the job unschedules it');
$node->stop;
done_testing();
