# reserve_now() batches honour each caller's own settings, where they decide what an answer
# means:
# - synchronous_commit: the primary has one synchronous standby whose replay is paused.
#   Writers with synchronous_commit = local keep calling (through a function with its own
#   SET synchronous_commit = local, whose exit restores the value it found, so a leader
#   cannot set the batch's level while applying it); meanwhile 8 callers with
#   remote_apply call once each.  A remote_apply caller must not be answered before the
#   standby has applied its reservation, whoever led its batch: none answers while replay is
#   paused, and all do once it resumes.  With the library preloaded, a local writer that led
#   a batch holding a remote_apply request waits for the standby (wait event SyncRep), which
#   shows that the batches mixed both kinds of caller (a round whose batches happened not to
#   mix is repeated, at most 4 rounds); without it no local writer ever waits.  Such a
#   leader's wait is cancelled (pg_cancel_backend: PostgreSQL ends the wait with a WARNING,
#   the commit stands): its remote_apply callers must not be answered for all that.
# - TimeZone: a ttl in months is counted in the caller's TimeZone, whoever led its batch.
# - read-your-writes: a caller's session token (write_token(), the reported
#   consistency.last_commit_token) covers its reservation, whoever committed it: the standby
#   shows it once it has replayed the token.
# - a read-only transaction: callers with default_transaction_read_only on, among writers,
#   get 25006 on every call and no row, as from reserve(), however the calls were batched.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', "max_connections = 100\n");
$node->start;
my $preloaded = $node->safe_psql('postgres', 'SHOW shared_preload_libraries') =~ /consistency/;
diag('shared_preload_libraries ' . ($preloaded ? 'includes' : 'does not include') . ' consistency');
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	SELECT consistency.stock_set('sync', 1000000, slots => 16);
	-- the writers call through a function with its own synchronous_commit, whose exit
	-- restores the value it found: a leader's batch must still commit as its callers asked
	CREATE FUNCTION hold_now(p_sku text, p_id text) RETURNS text LANGUAGE sql
		SET synchronous_commit = local SET search_path = pg_catalog, pg_temp
		AS $$ SELECT consistency.reserve_now(p_sku, 1, p_id) $$;
});
$node->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'base', has_streaming => 1);
$standby->start;
# the standby's walreceiver connects with application_name = its node name
$node->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = 'standby'});
$node->reload;
$node->poll_query_until('postgres',
	q{SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby'})
  or die 'the standby did not become synchronous';
$node->wait_for_catchup($standby, 'replay');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$standby->poll_query_until('postgres', q{SELECT pg_get_wal_replay_pause_state() = 'paused'})
  or die 'replay did not pause';

my $dir = PostgreSQL::Test::Utils::tempdir();
PostgreSQL::Test::Utils::append_to_file("$dir/buy.sql", q{
\set r random(1, 1000000000000)
SELECT public.hold_now('sync', 'w' || :client_id || '-' || :r);
});
sub pgbench
{
	my ($script, $clients, $options, $appname, @limit) = @_;
	my %h = (out => '', err => '');
	local $ENV{PGOPTIONS} = $options;
	local $ENV{PGAPPNAME} = $appname;
	$h{run} = IPC::Run::start([ 'pgbench', '-n', '-M', 'prepared', '-c', $clients, '-j', '2',
			@limit, '-f', "$dir/$script", '-h', $node->host, '-p', $node->port,
			'postgres' ], '>', \$h{out}, '2>', \$h{err});
	return \%h;
}

# Writers for 4 s, once they are going; then 40 callers of SCRIPT, one fresh session each, with
# -v id=PREFIX-i, the given PGOPTIONS and psql variables: their output.
sub busy_writers
{
	my ($options) = @_;
	my $w = pgbench('buy.sql', 8, $options, 'writer', '-T', '4');
	$node->poll_query_until('postgres', q{SELECT count(*) > 100 FROM consistency.reservations
		WHERE reservation_id LIKE 'w%' AND created_at > now() - interval '1 s'})
	  or die 'the writers did not start';
	return $w;
}
sub sessions
{
	my ($script, $prefix, $options, @vars) = @_;
	my ($out, $err) = ('', '');
	local $ENV{PGOPTIONS} = $options;
	IPC::Run::run([ 'bash', '-c', q{
		script=$1 prefix=$2 host=$3 port=$4; shift 4
		for i in $(seq 1 40); do
			psql -X -At -v ON_ERROR_STOP=1 -v "id=$prefix-$i" "$@" -h "$host" -p "$port" \
				-d postgres -f "$script" || exit 1
		done }, 'sessions', "$dir/$script", $prefix, $node->host, $node->port,
		map { ('-v', $_) } @vars ], '>', \$out, '2>', \$err)
	  or diag($err);
	return $out;
}

# A round: local writers for 5 s; the remote_apply callers (ids a<round>-1 .. a<round>-8)
# start once the writers are going.  While replay stays paused: who waits for the standby
# (sampled over 4 s).  The callers arrive one by one among the busy writers, so that most of
# them find a writer leading and are taken into a writer's batch; but one that arrives
# between two leaders leads its own batch, which then holds every writer it took until
# replay resumes, and if that happens to all of them no batch mixed the two kinds.  So with
# the library preloaded the round is repeated (at most 4 times, each checking everything
# again) until one shows a mixed batch.
sub sync_round
{
	my ($round) = @_;
	my $before = $node->safe_psql('postgres', q{SELECT count(*) FROM consistency.reservations});
	my $writers = pgbench('buy.sql', 8, '-c synchronous_commit=local', 'local', '-T', '5');
	$node->poll_query_until('postgres', qq{SELECT count(*) > $before + 100 FROM consistency.reservations})
	  or die 'the writers did not start';
	my ($apply_out, $apply_err) = ('', '');
	my $apply = IPC::Run::start([ 'bash', '-c', q{
		for i in $(seq 1 8); do
			PGOPTIONS='-c synchronous_commit=remote_apply' PGAPPNAME=apply \
				psql -X -At -h "$1" -p "$2" -d postgres \
				-c "SELECT 'a$3-' || $i || ' ' || consistency.reserve_now('sync', 1, 'a$3-' || $i)" &
			sleep 0.2
		done
		wait }, 'apply', $node->host, $node->port, $round ], '>', \$apply_out, '2>', \$apply_err);
	my %syncrep;
	my $cancelled = 0;
	for (1 .. 40)
	{
		$syncrep{$_}++ for split /\n/, $node->safe_psql('postgres', q{
			SELECT application_name FROM pg_stat_activity WHERE wait_event = 'SyncRep'});
		# a local writer waiting for the standby leads a batch with a remote_apply request:
		# cancel its wait, which ends with a WARNING to its client (its commit stands); the
		# remote_apply callers of its batch must still wait for the standby (while replay is
		# paused, no wait for it can end by itself, so the cancel finds the writer waiting)
		$cancelled += $node->safe_psql('postgres', q{
			SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity
			 WHERE wait_event = 'SyncRep' AND application_name = 'local'});
		usleep(100_000);
		$apply->pump_nb;	# collects any answer printed so far
	}
	diag("round $round, waiting for the standby (samples, by application): "
		  . join(', ', map { "$_ $syncrep{$_}" } sort keys %syncrep)
		  . "; local leaders' waits cancelled: $cancelled");
	is($apply_out, '', "round $round: no remote_apply caller was answered while the standby's replay was paused"
		  . ($cancelled ? ", though the local leaders' waits for it were cancelled" : ''));
	$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	ok($apply->finish, "round $round: the remote_apply callers finished once replay resumed")
	  or diag($apply_err);
	is(join(' ', sort split /\n/, $apply_out), join(' ', map { "a$round-$_ reserved" } sort 1 .. 8),
		"round $round: each remote_apply caller reserved");
	ok($writers->{run}->finish, "round $round: the local writers ran to completion")
	  or diag($writers->{err});
	return \%syncrep;
}
my ($syncrep, $writers);
my $rounds = $preloaded ? 4 : 1;
for my $round (1 .. $rounds)
{
	if ($round > 1)
	{
		$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
		$standby->poll_query_until('postgres', q{SELECT pg_get_wal_replay_pause_state() = 'paused'})
		  or die 'replay did not pause';
	}
	$syncrep = sync_round($round);
	last if $syncrep->{local};
}
if ($preloaded)
{
	ok($syncrep->{local}, 'a local writer led a batch with a remote_apply request and waited for the standby'
		  . ' (its wait was cancelled, and its batch\'s remote_apply callers went on waiting)')
	  or diag(explain $syncrep);
}
else
{
	ok($syncrep->{apply}, 'each remote_apply caller waited for the standby itself')
	  or diag(explain $syncrep);
	ok(!$syncrep->{local}, 'without the library preloaded no local writer waited for the standby')
	  or diag(explain $syncrep);
}
$node->safe_psql('postgres', q{ALTER SYSTEM RESET synchronous_standby_names});
$node->reload;

# Read-your-writes: 40 callers, one session each, among busy writers.  Each session's token
# (write_token(), and the consistency.last_commit_token parameter it reports) must cover its
# reservation, whoever committed it: both are past the WAL position taken before the call
# (the parameter may be later still: a statement that pruned a page wrote WAL too), and the
# standby shows the reservation once it has replayed the token.
PostgreSQL::Test::Utils::append_to_file("$dir/token.sql", q{
SELECT pg_current_wal_lsn() AS before \gset
SELECT consistency.reserve_now('sync', 1, :'id') AS answer \gset
SELECT consistency.write_token() AS tok \gset
SELECT :'id', :'answer', :'tok', split_part(:'tok', ':', 4)::pg_lsn > :'before'::pg_lsn,
	   split_part(current_setting('consistency.last_commit_token'), ':', 4)::pg_lsn > :'before'::pg_lsn;
});
$writers = busy_writers('');
my $tok_out = sessions('token.sql', 'tk', '');
ok($writers->{run}->finish, 'the writers ran to completion') or diag($writers->{err});
my @tokens = map { [ split /\|/ ] } grep { /^tk-/ } split /\n/, $tok_out;
is(scalar(@tokens), 40, 'every caller got its token');
is(scalar(grep { $_->[1] eq 'reserved' && $_->[3] eq 't' && $_->[4] eq 't' } @tokens), 40,
	'every caller reserved, and its token (write_token() and the reported parameter) is past its call')
  or diag($tok_out);
my $missing = 0;
for my $t (@tokens)
{
	my ($id, $answer, $tok) = @$t;
	my $seen = $standby->safe_psql('postgres', qq{
		SELECT consistency.wait_for_token('$tok', '60s');
		SELECT count(*) FROM consistency.reservations WHERE reservation_id = '$id';});
	$missing++ unless $seen eq "t\n1";
}
is($missing, 0, 'the standby shows every reservation once it has replayed its caller\'s token');

# TimeZone: a ttl of months or days is calendar time in the caller's TimeZone, as for
# reserve(), whoever led the batch.  Writers run with TimeZone UTC; 40 callers, one session
# each, run in a zone and with a ttl for which "now + ttl" differs from UTC's by a DST change
# in between.  Four zones (both hemispheres) and ttls of 5, 6 and 7 months: every hour of
# 2026 to 2045 has such a pair (checked when the test was written).
my ($zone, $ttl) = split /\|/, $node->safe_psql('postgres', q{
	SELECT z, ttl FROM (VALUES ('Australia/Sydney'), ('America/New_York'), ('Europe/London'),
							   ('Pacific/Auckland')) v(z),
		   (VALUES ('6 months'), ('5 months'), ('7 months')) t(ttl)
	 WHERE timezone(z, timezone(z, now()) + ttl::interval)
		   <> timezone('UTC', timezone('UTC', now()) + ttl::interval)
	 LIMIT 1});
ok(defined $ttl,
	'a zone and a ttl whose calendar arithmetic is not UTC\'s: ' . ($zone || 'none') . ', '
	  . ($ttl // 'none'));
PostgreSQL::Test::Utils::append_to_file("$dir/zone.sql", q{
SELECT consistency.reserve_now('sync', 1, :'id', :'ttl'::interval) AS answer \gset
SELECT :'id', :'answer', expires_at = created_at + :'ttl'::interval
  FROM consistency.reservations WHERE reservation_id = :'id';
});
$writers = busy_writers('-c TimeZone=UTC');
my $zone_out = sessions('zone.sql', 'tz', "-c TimeZone=$zone", "ttl=$ttl");
ok($writers->{run}->finish, 'the writers ran to completion') or diag($writers->{err});
is(scalar(grep { /^tz-\d+\|reserved\|t$/ } split /\n/, $zone_out), 40,
	"every caller in $zone reserved, expiring $ttl later in its own zone")
  or diag($zone_out);

# Read-only callers among writers: 100 calls, one connection each, while 8 writers keep
# leading and joining batches.
my ($ro_out, $ro_err) = ('', '');
my $ro = IPC::Run::start([ 'bash', '-c', q{
	for i in $(seq 1 100); do
		PGOPTIONS='-c default_transaction_read_only=on' psql -X -At -v VERBOSITY=verbose \
			-h "$1" -p "$2" -d postgres \
			-c "SELECT consistency.reserve_now('sync', 1, 'ro-' || $i)" 2>&1
	done
	exit 0 }, 'ro', $node->host, $node->port ], '>', \$ro_out, '2>', \$ro_err);
$writers = pgbench('buy.sql', 8, '', 'writer', '-t', '300');
ok($ro->finish, 'the read-only calls ran') or diag($ro_err);
ok($writers->{run}->finish, 'the writers ran every call to completion') or diag($writers->{err});
my @refused = $ro_out =~ /^ERROR:\s+25006:/mg;
is(scalar(@refused), 100, 'every read-only call was refused with 25006') or diag($ro_out);
unlike($ro_out, qr/^reserved$/m, 'no read-only call answered reserved');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM consistency.reservations WHERE reservation_id LIKE 'ro-%'}),
	'0', 'no read-only call left a reservation');
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.check_inventory()}),
	'0', 'check_inventory() finds nothing wrong');

done_testing();
