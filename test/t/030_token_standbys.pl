# Session LSN tokens on a real primary and two streaming standbys:
# - the token names the commit, standbys report ready/behind, standby_status() shows
#   which standby has replayed it, and reads after
#   SET consistency.read_after see the write;
# - a paused standby and a delayed standby (recovery_min_apply_delay) make the SET fail
#   with YC304 and say why; a waiter holds no snapshot and returns when replay resumes;
# - the per-query check refuses to read stale data when the token was set without
#   waiting (connection options), for queries and for COPY ... TO, and refuses a
#   snapshot taken before replay passed the token (REPEATABLE READ; once under READ
#   COMMITTED);
# - another cluster's token is wrong_cluster and fails without waiting; the C router
#   never sends a read to a server of another cluster;
# - the replay watcher (shared_preload_libraries) and the polling fallback
#   (session_preload_libraries) both wake the waiter; a terminated watcher is restarted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsistencyCluster;

my $primary = start_primary('primary', q{
	CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);
	INSERT INTO kv VALUES (1, 0);
});

# standby_a: library preloaded (replay watcher); standby_b: loaded per session (polling).
my $standby_a = PostgreSQL::Test::Cluster->new('standby_a');
$standby_a->init_from_backup($primary, 'base', has_streaming => 1);
$standby_a->start;
my $standby_b = PostgreSQL::Test::Cluster->new('standby_b');
$standby_b->init_from_backup($primary, 'base', has_streaming => 1);
$standby_b->append_conf('postgresql.conf',
	"shared_preload_libraries = ''\nsession_preload_libraries = 'consistency'");
$standby_b->start;
$primary->wait_for_catchup($_, 'replay') for ($standby_a, $standby_b);

# The watcher has no database connection, so it is not in pg_stat_activity: look at the
# postmaster's children in /proc (their titles are in cmdline).
sub watcher_pids
{
	my ($node) = @_;
	my @pids;
	for my $stat (glob('/proc/[0-9]*/stat'))
	{
		open(my $fh, '<', $stat) or next;
		my $line = <$fh>;
		close($fh);
		next unless defined $line && $line =~ /^(\d+) .*\)\s+\S+\s+(\d+)/ && $2 == $node->{_pid};
		my $pid = $1;
		(my $cmdline = $stat) =~ s/stat$/cmdline/;
		my $title = eval { slurp_file($cmdline) } // '';
		push @pids, $pid if $title =~ /consistency replay watcher/;
	}
	return @pids;
}
sub watcher_count { return scalar(my @p = watcher_pids(@_)); }
for (1 .. 100)	# the worker starts once the standby is consistent
{
	last if watcher_count($standby_a) == 1;
	select(undef, undef, undef, 0.1);
}
is(watcher_count($standby_a), 1, 'the replay watcher runs on the preloaded standby');
is(watcher_count($standby_b), 0, 'and not where the library is only loaded per session');

# A watcher that is terminated comes back (it exits with status 1, which the postmaster
# restarts after bgw_restart_time = 1 s; status 0 would unregister it for good).  The
# waiters further down are woken by this new watcher.
my ($first_watcher) = watcher_pids($standby_a);
kill 'TERM', $first_watcher;
my $restarted;
for (1 .. 300)
{
	my @now = watcher_pids($standby_a);
	if (@now == 1 && $now[0] != $first_watcher) { $restarted = $now[0]; last; }
	select(undef, undef, undef, 0.1);
}
ok(defined $restarted, 'a terminated replay watcher is restarted by the postmaster');

# A write and its token, from the same session.
sub write_value
{
	my ($v) = @_;
	return $primary->safe_psql('postgres',
		"UPDATE kv SET v = $v WHERE k = 1; SELECT consistency.write_token();");
}

# Returns (exit code, stdout, stderr) of psql on a node, with SQLSTATEs in errors.
sub try_sql
{
	my ($node, $sql, %opts) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => ['-v', 'VERBOSITY=verbose'], %opts);
	return ($ret, $out, $err);
}

my $t1 = write_value(1);
like($t1, qr{^v1:\d+:1:[0-9A-F]+/[0-9A-F]+$}, "token after a write: $t1");
my ($lsn) = $t1 =~ m{:([0-9A-F]+/[0-9A-F]+)$};
is($primary->safe_psql('postgres', "SELECT '$lsn'::pg_lsn <= pg_current_wal_insert_lsn()"),
	't', 'the token lies within the WAL written');

$primary->wait_for_catchup($_, 'replay') for ($standby_a, $standby_b);
for my $s ($standby_a, $standby_b)
{
	is($s->safe_psql('postgres', "SELECT consistency.token_status('$t1')"),
		'ready', $s->name . ': token ready after replay');
	is($s->safe_psql('postgres', "SET consistency.read_after = '$t1'; SELECT v FROM kv"),
		'1', $s->name . ': read after SET read_after sees the write');
}
is($primary->safe_psql('postgres', "SELECT consistency.token_status('$t1')"),
	'primary', 'primary: its own token is primary');

# write_token() refuses to run on a standby.
my ($ret, $out, $err) = try_sql($standby_a, 'SELECT consistency.write_token()');
like($err, qr/YC305.*minted only on a primary/, 'write_token on a standby: YC305');

# --- paused standby -------------------------------------------------------------------
$standby_b->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$standby_b->poll_query_until('postgres',
	q{SELECT pg_get_wal_replay_pause_state() = 'paused'}) or die 'standby_b did not pause';
my $t2 = write_value(2);
$primary->wait_for_catchup($standby_a, 'replay');
is($standby_b->safe_psql('postgres', "SELECT consistency.token_status('$t2')"),
	'behind', 'paused standby: behind');
# standby_status() on the primary tells a router which standby already has the token.
my ($t2_lsn) = $t2 =~ m{:([0-9A-F]+/[0-9A-F]+)$};
is($primary->safe_psql('postgres', qq{
	SELECT string_agg(application_name, ',' ORDER BY application_name)
	  FROM consistency.standby_status() WHERE replay_lsn >= '$t2_lsn'}),
	'standby_a', 'standby_status: only the unpaused standby has replayed t2');
is($primary->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE replay_lag_bytes > 0) || '/' || count(*)
	  FROM consistency.standby_status() WHERE application_name = 'standby_b' AND state = 'streaming'}),
	'1/1', 'standby_status: the paused standby shows a lag in bytes');
is($standby_b->safe_psql('postgres', "SELECT consistency.wait_for_token('$t2', '50ms')"),
	'f', 'paused standby: wait_for_token times out with false');
($ret, $out, $err) = try_sql($standby_b,
	"SET consistency.read_after_timeout = '100ms'; SET consistency.read_after = '$t2'; SELECT v FROM kv");
isnt($ret, 0, 'paused standby: SET read_after fails');
like($err, qr/YC304: standby has not replayed the write/, 'with YC304');
like($err, qr/Recovery is paused on this server/, 'and the detail says recovery is paused');
like($err, qr/HINT:  Route the read to the primary/, 'and the hint says where to go');
unlike($out, qr/\d/, 'no stale value was returned');

# read_after from the connection options is not waited for; the per-query check refuses.
{
	local $ENV{PGOPTIONS} = "-c consistency.read_after=$t2";
	($ret, $out, $err) = try_sql($standby_b, 'SELECT v FROM kv');
	isnt($ret, 0, 'token in connection options: the query fails on the paused standby');
	like($err, qr/YC304/, 'per-query check raises YC304');
	is($out, '', 'and returns no stale row');
	# COPY of a table reads it without the executor: checked all the same.
	($ret, $out, $err) = try_sql($standby_b, 'COPY kv TO STDOUT');
	isnt($ret, 0, 'token in connection options: COPY kv TO STDOUT fails on the paused standby');
	like($err, qr/YC304/, 'with YC304');
	is($out, '', 'and copies no stale row');
	($ret, $out, $err) = try_sql($standby_b, 'COPY (SELECT v FROM kv) TO STDOUT');
	like($err, qr/YC304/, 'COPY (query) TO STDOUT: YC304 too');
	is($out, '', 'and no stale row');
}

# A snapshot taken before the standby replayed the token must not pass the check after
# replay passed it.  Under REPEATABLE READ, PREPARE takes the transaction's snapshot
# without running the executor; EXECUTE, once replay resumed, would read from it.
my $rr;
{
	local $ENV{PGOPTIONS} = "-c consistency.read_after=$t2";
	$rr = $standby_b->background_psql('postgres', on_error_stop => 0,
		extra_params => ['-v', 'VERBOSITY=verbose']);
}
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$rr->query_safe('PREPARE q AS SELECT v FROM kv');
# Under READ COMMITTED, the statement during whose check replay is first seen past the
# token may have taken its snapshot just before: it fails once, and passes when run again.
my $rc;
{
	local $ENV{PGOPTIONS} = "-c consistency.read_after=$t2";
	$rc = $standby_b->background_psql('postgres', on_error_stop => 0,
		extra_params => ['-v', 'VERBOSITY=verbose']);
}

# A waiter holds no snapshot, and returns as soon as replay resumes.
my $waiter = $standby_b->background_psql('postgres', on_error_stop => 0);
my $waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, qq{
	\\echo waiting
	SET consistency.read_after_timeout = '5min';
	SET consistency.read_after = '$t2';
	SELECT 'value ' || v FROM kv;
});
$standby_b->poll_query_until('postgres', qq{
	SELECT wait_event = 'Extension' FROM pg_stat_activity WHERE pid = $waiter_pid})
  or die 'the waiter did not start waiting';
is($standby_b->safe_psql('postgres', qq{
	SELECT backend_xmin IS NULL AND backend_xid IS NULL FROM pg_stat_activity WHERE pid = $waiter_pid}),
	't', 'SET read_after waits without holding a snapshot');
# The same inside a transaction that already ran a query (SET LOCAL, as behind a pooler).
my $waiter2 = $standby_b->background_psql('postgres', on_error_stop => 0);
my $waiter2_pid = $waiter2->query_safe('SELECT pg_backend_pid()');
$waiter2->query_until(qr/waiting/, qq{
	\\echo waiting
	BEGIN;
	SELECT count(*) FROM pg_class;
	SET LOCAL consistency.read_after_timeout = '5min';
	SET LOCAL consistency.read_after = '$t2';
	SELECT 'value ' || v FROM kv;
	COMMIT;
});
$standby_b->poll_query_until('postgres', qq{
	SELECT wait_event = 'Extension' FROM pg_stat_activity WHERE pid = $waiter2_pid})
  or die 'the second waiter did not start waiting';
is($standby_b->safe_psql('postgres', qq{
	SELECT backend_xmin IS NULL FROM pg_stat_activity WHERE pid = $waiter2_pid}),
	't', 'SET LOCAL read_after after a query in the transaction waits without a snapshot');
$standby_b->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
like($waiter->query_until(qr/value \d/, ''), qr/value 2/,
	'the waiter returns after replay resumes and reads the write');
like($waiter2->query_until(qr/value \d/, ''), qr/value 2/,
	'so does the SET LOCAL waiter');
$waiter->quit;
$waiter2->quit;

# Replay has passed t2 now, but the REPEATABLE READ transaction's snapshot predates it.
my ($rr_out, $rr_failed) = $rr->query('EXECUTE q');
ok($rr_failed, 'REPEATABLE READ snapshot older than the replay of the token: EXECUTE fails');
like($rr->{stderr}, qr/YC304: statement's snapshot was taken before this standby replayed/,
	'with YC304 naming the snapshot');
is($rr_out, '', 'and returns no stale row');
$rr->{stderr} = '';
$rr->query_safe('ROLLBACK');
is($rr->query_safe('EXECUTE q'), '2', 'a new transaction, with a new snapshot, reads the write');
$rr->quit;
my ($rc_out, $rc_failed) = $rc->query('SELECT v FROM kv');
ok($rc_failed, 'READ COMMITTED, token from the connection options: the first check that sees it replayed fails');
like($rc->{stderr}, qr/YC304: statement's snapshot was taken before/, 'with YC304');
is($rc_out, '', 'and returns no row');
$rc->{stderr} = '';
is($rc->query_safe('SELECT v FROM kv'), '2', 'run again, it reads the write');
$rc->quit;

# --- delayed standby ------------------------------------------------------------------
$standby_a->append_conf('postgresql.conf', "recovery_min_apply_delay = '1h'");
$standby_a->reload;
$standby_a->poll_query_until('postgres', q{SELECT current_setting('recovery_min_apply_delay') = '1h'})
  or die 'delay not applied';
my $t3 = write_value(3);
$primary->wait_for_catchup($standby_b, 'replay');
is($standby_a->safe_psql('postgres', "SELECT consistency.token_status('$t3')"),
	'behind', 'delayed standby: behind');
($ret, $out, $err) = try_sql($standby_a,
	"SET consistency.read_after_timeout = '100ms'; SET consistency.read_after = '$t3'");
like($err, qr/YC304.*recovery_min_apply_delay is 3600000 ms on this server/s,
	'delayed standby: YC304 and the detail names recovery_min_apply_delay');
($ret, $out, $err) = try_sql($standby_a,
	"SET consistency.read_after_timeout = 0; SET consistency.read_after = '$t3'");
like($err, qr/YC304.*did not wait/s, 'read_after_timeout = 0 fails without waiting');
is($standby_b->safe_psql('postgres', "SET consistency.read_after = '$t3'; SELECT v FROM kv"),
	'3', 'the undelayed standby serves the read');
# the delay applies to commits: an older token is still ready on the delayed standby
is($standby_a->safe_psql('postgres', "SELECT consistency.token_status('$t2')"),
	'ready', 'delayed standby: an older token is ready');

# The watcher wakes a waiter on the preloaded standby too: lift the delay while it waits.
$waiter = $standby_a->background_psql('postgres', on_error_stop => 0);
$waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, qq{
	\\echo waiting
	SET consistency.read_after_timeout = '5min';
	SET consistency.read_after = '$t3';
	SELECT 'value ' || v FROM kv;
});
$standby_a->poll_query_until('postgres', qq{
	SELECT wait_event = 'Extension' FROM pg_stat_activity WHERE pid = $waiter_pid})
  or die 'the waiter did not start waiting';
$standby_a->append_conf('postgresql.conf', "recovery_min_apply_delay = 0");
$standby_a->reload;
like($waiter->query_until(qr/value \d/, ''), qr/value 3/,
	'the watcher wakes the waiter once the delayed commit is applied');
$waiter->quit;

# --- another cluster ------------------------------------------------------------------
my $other = PostgreSQL::Test::Cluster->new('other');
$other->init;
$other->start;
$other->safe_psql('postgres', 'CREATE EXTENSION consistency');
is($other->safe_psql('postgres', "SELECT consistency.token_status('$t3')"),
	'wrong_cluster', 'another cluster: wrong_cluster');
# With an hour to wait, these return at once: they never wait for a foreign token.
# (the library is not preloaded here: LOAD it, or read_after would be a mere placeholder)
($ret, $out, $err) = try_sql($other,
	"LOAD 'consistency'; SET consistency.read_after_timeout = '1h'; SET consistency.read_after = '$t3'");
like($err, qr/YC302: consistency token is from another cluster/, 'SET read_after: YC302 without waiting');
($ret, $out, $err) = try_sql($other, "SELECT consistency.wait_for_token('$t3', '1h')");
like($err, qr/YC302/, 'wait_for_token: YC302 without waiting');
my $per_call = $other->safe_psql('postgres', qq{
	WITH t0 AS MATERIALIZED (SELECT clock_timestamp() AS c),
		 n AS MATERIALIZED (SELECT count(consistency.token_status('$t3')) FROM t0, generate_series(1, 10000))
	SELECT round(extract(epoch FROM clock_timestamp() - (SELECT c FROM t0)) * 1e6 / 10000, 2) FROM n});
diag("wrong_cluster verdict: about $per_call us per call (informational)");
# Without the library preloaded nothing is reported at the first commit: the C router falls
# back to asking write_token() (one extra query), which loads the library in that session,
# so from the next commit on the token is reported again.
$other->safe_psql('postgres', q{
	CREATE TABLE rw_counter (id int PRIMARY KEY, v bigint NOT NULL);
	INSERT INTO rw_counter VALUES (1, 0);
});
my ($rstdout, $rstderr) = ('', '');
IPC::Run::run([ "$ENV{TESTDIR}/test/router_example", '--primary', $other->connstr('postgres'),
		'--cycles', 50 ], '>', \$rstdout, '2>', \$rstderr);
like($rstdout, qr/^cycles=50 stale=0 failed=0 primary=50 .*tokens_from_parameter_status=49 tokens_from_query=1$/m,
	'router without preloading: first token from write_token(), then reported; zero stale reads')
  or diag($rstderr);
# The C router checks at connect that each standby belongs to the primary's cluster: a server
# of another cluster never answers a read, not even one without a token (which any server
# would answer).  Standby 0 is the other cluster, standby 1 a standby of the primary.
my ($probe_out, $probe_err) = ('', '');
IPC::Run::run([ "$ENV{TESTDIR}/test/router_example", '--probe',
		'--primary', $primary->connstr('postgres'),
		'--standby', $other->connstr('postgres'), '--standby', $standby_a->connstr('postgres') ],
	'>', \$probe_out, '2>', \$probe_err);
like($probe_out, qr/^probe served_by=1,1$/m,
	'router: reads without a token skip the server of another cluster') or diag($probe_err);
like($probe_err, qr/standby 0: not a server of the primary's cluster \(token_status: wrong_cluster\)/,
	'and crouter_error() says why');
$other->stop;

$standby_a->stop;
$standby_b->stop;
$primary->stop;
done_testing();
