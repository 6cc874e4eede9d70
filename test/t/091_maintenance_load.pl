# consistency.maintenance() called on a schedule by a separate session, as any scheduler would
# call it (here a shell loop: a new connection per run, as a role granted consistency_admin
# only, like a cron job), while a workload of two clients runs:
# - an expired idempotency key is purged and a lapsed reservation's stock is back on sale;
# - two stale prepared transactions are left alone while consistency.tpc_auto_resolve is off,
#   and while it is on but they are younger than consistency.tpc_auto_resolve_after; once they
#   are older, each is resolved by its decision log's verdict (commit / presumed abort);
# - after the workload stops and its keys and holds lapse, the scheduled runs purge every
#   expired key and return all the stock;
# - no workload transaction and no scheduled run fails, and no backend waits for a lock longer
#   than deadlock_timeout: log_lock_waits logs every such wait, and the server log has none
#   (a deliberate wait first shows that such a wait is logged).
# Runs in both configurations; the counters are checked when the library is preloaded.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use MaintenanceWorkload;

my $node = PostgreSQL::Test::Cluster->new('maint');
$node->init;
$node->append_conf('postgresql.conf', q{
max_prepared_transactions = 10
log_lock_waits = on
deadlock_timeout = '1s'
});
$node->start;
my $preloaded = $node->safe_psql('postgres', q{
	SELECT 'consistency' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))});
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE ROLE maint LOGIN IN ROLE consistency_admin;
	CREATE ROLE app LOGIN IN ROLE consistency_user;
	CREATE TABLE acc (id int PRIMARY KEY);
	GRANT INSERT, SELECT ON acc TO maint;
	CREATE TABLE probe (id int);
	GRANT SELECT ON probe TO app;
	SELECT consistency.stock_set('lamp', 1000000, 4);
	SELECT consistency.stock_set('mug', 5);
});

# --- lock-wait evidence is live: a wait longer than deadlock_timeout is logged ------------
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE probe IN ACCESS EXCLUSIVE MODE');
my $log_offset = -s $node->logfile;
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
my $waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, q{
	\echo waiting
	SELECT count(*) FROM probe;
});
$log_offset = $node->wait_for_log(qr/process $waiter_pid still waiting for AccessShareLock/, $log_offset);
ok(1, 'a lock wait longer than deadlock_timeout is logged');
$holder->query_safe('COMMIT');
$holder->quit;
$waiter->quit;
# Everything from here on must wait less than that.

# --- what the scheduled runs must clean up -------------------------------------------------
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT consistency.idem_begin('old-key', ttl => '1 second');
	SELECT consistency.idem_complete('old-key', '{}');
	COMMIT;
	SELECT consistency.reserve('mug', 5, 'old-hold', ttl => '1 second');
});
is($node->safe_psql('postgres', q{SELECT consistency.available('mug')}), '0', 'mug: all 5 held');

# Two in-doubt transactions of the maintenance role: one whose coordinator logged commit, one
# whose coordinator committed without a decision (presumed abort).
my $gid_commit = $node->safe_psql('postgres', q{
	SET ROLE maint;
	BEGIN;
	SELECT consistency.tpc_gid('p') \gset
	SELECT consistency.tpc_log_decision(:'tpc_gid') \g /dev/null
	COMMIT;
	SELECT :'tpc_gid';});
my $gid_abort = $node->safe_psql('postgres', q{
	SET ROLE maint;
	BEGIN;
	SELECT consistency.tpc_gid('p');
	COMMIT;});
for my $p ([ $gid_commit, 1 ], [ $gid_abort, 2 ])
{
	$node->safe_psql('postgres', qq{
		SET ROLE maint;
		BEGIN;
		INSERT INTO acc VALUES ($p->[1]);
		PREPARE TRANSACTION '$p->[0]';});
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '2',
	'two prepared transactions in doubt');

# --- the scheduler and the workload --------------------------------------------------------
my $dir = $node->basedir;
my ($host, $port) = ($node->host, $node->port);
unlink map { "$dir/$_" } qw(stop runs scheduler.err);

# A run per connection, every 0.2 s, in batches of 5 (so runs commit between batches).  Both
# loops end when the file stop appears, or when this test exits.
my $scheduler = IPC::Run::start(
	[ 'bash', '-c', qq{
		while [ ! -e '$dir/stop' ] && kill -0 $$ 2>/dev/null; do
			if psql -X -q -v ON_ERROR_STOP=1 -h '$host' -p $port -U maint -d postgres \\
				-c 'CALL consistency.maintenance(batch_size => 5)' >>'$dir/scheduler.err' 2>&1; then
				echo ok >>'$dir/runs'
			else
				echo failed >>'$dir/runs'
			fi
			sleep 0.2
		done} ],
	'<', \undef, '>', \my $sched_loop_out, '2>', \my $sched_loop_err);

# The workload (MaintenanceWorkload.pm): two clients, every key and hold lapsing after a second.
my $workload = workload_start($node, $dir);

sub runs
{
	open my $f, '<', "$dir/runs" or return ();
	my @r = <$f>;
	close $f;
	chomp @r;
	return @r;
}

# Wait until at least two more scheduled runs have finished: the second began after now.
sub two_more_runs
{
	my $target = scalar(runs()) + 2;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (scalar(runs()) < $target)
	{
		die 'the scheduler stopped running maintenance()' if time > $deadline;
		usleep(100_000);
	}
}


sub prepared { return $node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'); }

# --- auto-resolve off (the default) --------------------------------------------------------
$node->poll_query_until('postgres', q{
	SELECT NOT EXISTS (SELECT FROM consistency.idempotency_keys WHERE key = 'old-key')})
  or die 'the expired key was never purged';
pass('the expired key was purged by a scheduled run');
$node->poll_query_until('postgres', q{SELECT consistency.available('mug') = 5})
  or die 'the lapsed hold was never expired';
is($node->safe_psql('postgres', q{
	SELECT status FROM consistency.reservations WHERE reservation_id = 'old-hold'}), 'expired',
	'the lapsed reservation was expired by a scheduled run, its 5 units back on sale');
two_more_runs();
is(prepared(), '2', 'tpc_auto_resolve off: the stale prepared transactions are left alone');
like(slurp_file($node->logfile),
	qr/consistency\.maintenance: purged \d+ expired idempotency keys.*, in-doubt transactions not resolved \(consistency\.tpc_auto_resolve is off\)/,
	'a run logs what it did, and that it resolved nothing');

# --- on, but the transactions are younger than tpc_auto_resolve_after ----------------------
$node->safe_psql('postgres', q{
	ALTER ROLE maint SET consistency.tpc_auto_resolve = on;
	ALTER ROLE maint SET consistency.tpc_auto_resolve_after = '1h';
});
two_more_runs();
is(prepared(), '2', 'tpc_auto_resolve on, after 1h: transactions younger than that are left alone');
like(slurp_file($node->logfile), qr/resolved 0 in-doubt transactions older than 1h \(0 committed, 0 rolled back, 0 left\)/,
	'the run says it resolved none older than 1h');

# --- on, and they are older than tpc_auto_resolve_after -------------------------------------
# The workload is to run across the resolutions: one of its 3 s runs finishes before they can
# happen, two more after them (below).  On a fast machine everything up to here takes less
# than one run, so wait for it rather than count on the time the steps above take.
{
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (workload_runs($dir) < 1)
	{
		die 'the workload never finished a run' if time > $deadline;
		usleep(100_000);
	}
}
my $lowered = $node->safe_psql('postgres', q{
	ALTER ROLE maint SET consistency.tpc_auto_resolve_after = '2s';
	SELECT clock_timestamp();});
$node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts')
  or die 'the stale prepared transactions were never resolved';
pass('older than tpc_auto_resolve_after: both resolved by scheduled runs');
is($node->safe_psql('postgres', qq{
	SELECT string_agg(action || '/' || outcome, ',' ORDER BY gid = '$gid_commit' DESC)
	  FROM consistency.tpc_resolution_log WHERE gid IN ('$gid_commit', '$gid_abort')}),
	'commit/committed,rollback/rolled_back', 'each by its verdict: logged commit, presumed abort');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM consistency.tpc_resolution_log
	 WHERE gid IN ('$gid_commit', '$gid_abort') AND owner = 'maint'
	   AND resolved_at > '$lowered' AND resolved_at - prepared_at >= interval '2 seconds'}),
	'2', 'both resolved after the limit was lowered, and at least 2s after they were prepared');
is($node->safe_psql('postgres', 'SELECT string_agg(id::text, \',\') FROM acc'), '1',
	'only the committed transaction\'s write is there');
like(slurp_file($node->logfile), qr/resolved [12] in-doubt transactions older than 2s/,
	'the run says what it resolved');

# --- the workload ends; its lapsed keys and holds are cleaned up on schedule -----------------
ok(scalar(grep { $_ eq 'ok' } runs()) >= 6, 'the scheduler ran maintenance() repeatedly');
# The workload ran before the first scheduled run, finished a run before the resolutions, and
# runs on until two of its pgbench runs have finished since the last resolution.
my $workload_total = workload_stop($dir, $workload, 2);
ok($workload_total >= 3, "the workload ran throughout: $workload_total pgbench runs");
$scheduler->finish;
is($?, 0, 'the scheduler loop exited cleanly');
is($sched_loop_out . $sched_loop_err, '', 'and printed nothing');

# One more scheduled round, by hand, once every key and hold of the workload has lapsed.
$node->poll_query_until('postgres', q{
	SELECT NOT EXISTS (SELECT FROM consistency.idempotency_keys WHERE expires_at > now())
	   AND NOT EXISTS (SELECT FROM consistency.reservations WHERE status = 'active' AND expires_at > now())})
  or die 'the workload\'s keys and holds never lapsed';
$node->command_ok([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-U', 'maint', '-d', 'postgres',
	'-c', 'CALL consistency.maintenance(batch_size => 5, max_batches => 100000)' ],
	'a last run, as the scheduler would');
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.idempotency_keys'), '0',
	'every expired key purged');
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.reservations WHERE status = 'active'}),
	'0', 'every lapsed hold expired');
is($node->safe_psql('postgres', q{SELECT consistency.available('lamp')}), '1000000',
	'all the hot SKU\'s stock is back on sale');
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.check_inventory()}), '0',
	'the inventory is consistent');
my $sched_err = -e "$dir/scheduler.err" ? slurp_file("$dir/scheduler.err") : '';
is(join(',', grep { $_ ne 'ok' } runs()), '', 'no scheduled run failed') or diag $sched_err;
unlike($sched_err, qr/\S/, 'the scheduler printed no error') or diag $sched_err;

my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/still waiting for/, 'no backend waited for a lock longer than deadlock_timeout')
  or diag join("\n", grep { /still waiting for/ } split /\n/, $log);
unlike($log, qr/deadlock detected/, 'no deadlock');

if ($preloaded eq 't')
{
	my %c = map { split /\|/ } split /\n/, $node->safe_psql('postgres', q{
		SELECT counter, value FROM consistency.stats
		 WHERE datname = 'postgres' AND counter IN ('purged', 'expired', 'resolved_commit', 'resolved_rollback')});
	ok($c{purged} >= 2, "stats: keys purged ($c{purged})");
	ok($c{expired} >= 2, "stats: reservations expired ($c{expired})");
	is("$c{resolved_commit}/$c{resolved_rollback}", '1/1', 'stats: one resolution committed, one rolled back');
}
else
{
	like($node->safe_psql('postgres', 'SELECT reason FROM consistency.stats'),
		qr/not in shared_preload_libraries/, 'not preloaded: the stats view says why it has no counters');
}

$node->stop;
done_testing();
