# A coordinator cluster and two participant clusters run 100 distributed transactions with the
# documented protocol:
#   coordinator: BEGIN; gid := consistency.tpc_gid();
#   participants: BEGIN; ...; PREPARE TRANSACTION gid;
#   coordinator: SELECT consistency.tpc_log_decision(gid); COMMIT;     -- the decision
#   participants: COMMIT PREPARED gid;                                  -- phase 2
# and the coordinator is killed (immediate stop) four times: with transactions prepared but
# undecided, with decisions logged but no phase 2, midway through phase 2, and right after
# decisions committed under synchronous_commit = off (tpc_log_decision forces that commit to
# disk; the WAL writer sleeps 10 s here, so an unforced commit record would be lost).  After each
# crash, pg_consistency resolves the participants from the coordinator's decision log
# (--decisions-from, another cluster).  Exactly the transactions with a logged commit
# decision end up committed on both participants, all others rolled back, nothing stays
# prepared, and nothing that had committed is lost.  pg_consistency's monitoring exit codes
# are checked on the way.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $coord = PostgreSQL::Test::Cluster->new('coordinator');
$coord->init;
$coord->append_conf('postgresql.conf', "wal_writer_delay = 10s\n");
$coord->start;
$coord->safe_psql('postgres', 'CREATE EXTENSION consistency');

my @parts;
for my $name ('participant1', 'participant2')
{
	my $p = PostgreSQL::Test::Cluster->new($name);
	$p->init;
	$p->append_conf('postgresql.conf', "max_prepared_transactions = 20\n");
	$p->start;
	$p->safe_psql('postgres', q{
		CREATE EXTENSION consistency;
		CREATE TABLE transfers (txn int PRIMARY KEY, amount int NOT NULL);
	});
	push @parts, $p;
}

# pg_consistency: returns (exit code, stdout, stderr).
sub pg_consistency
{
	my ($out, $err) = ('', '');
	IPC::Run::run(['pg_consistency', @_], '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

my %committed;		# txn => 1 for every transaction whose coordinator logged commit
my %gid_of;

# One participant session per cluster (they survive the coordinator's crashes).
my @psess = map { $_->background_psql('postgres') } @parts;

sub prepare_on
{
	my ($i, $txn, $gid) = @_;
	$psess[$i]->query_safe("BEGIN; INSERT INTO transfers VALUES ($txn, $txn * 10); PREPARE TRANSACTION '$gid'");
}

sub phase2_on
{
	my ($i, $gid) = @_;
	$psess[$i]->query_safe("COMMIT PREPARED '$gid'");
}

# Run transaction $txn up to $stop: 'prepared1' (only participant 1 prepared), 'prepared'
# (both), 'decided' (decision committed, no phase 2), 'phase2-half' (participant 1
# committed), 'done'.  $decision is 'commit' or 'abort'.  Returns the coordinator session if
# the coordinator transaction is left open.
sub distributed
{
	my ($txn, $stop, $decision) = @_;
	my $c = $coord->background_psql('postgres');
	$c->query_safe('BEGIN');
	my $gid = $c->query_safe('SELECT consistency.tpc_gid()');
	$gid_of{$txn} = $gid;
	prepare_on(0, $txn, $gid);
	return $c if $stop eq 'prepared1';
	prepare_on(1, $txn, $gid);
	return $c if $stop eq 'prepared';
	$c->query_safe("SELECT consistency.tpc_log_decision('$gid', '$decision')");
	$c->query_safe('COMMIT');
	$c->quit;
	$committed{$txn} = 1 if $decision eq 'commit';
	return undef if $stop eq 'decided';
	if ($decision eq 'commit')
	{
		phase2_on(0, $gid);
		return undef if $stop eq 'phase2-half';
		phase2_on(1, $gid);
	}
	else
	{
		$psess[$_]->query_safe("ROLLBACK PREPARED '$gid'") for (0, 1);
	}
	return undef;
}

sub check_round
{
	my ($round, $last) = @_;
	my $expect = join(',', grep { $committed{$_} } 1 .. $last);
	for my $i (0, 1)
	{
		is($parts[$i]->safe_psql('postgres', 'SELECT string_agg(txn::text, \',\' ORDER BY txn) FROM transfers'),
			$expect, "$round: participant " . ($i + 1) . ' has exactly the transactions decided commit');
		is($parts[$i]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
			'0', "$round: participant " . ($i + 1) . ' has nothing left prepared');
	}
}

sub crash_and_resolve
{
	my ($round, $open, $last, $expect_prepared) = @_;
	# the coordinator dies; its open transactions die with it
	$coord->stop('immediate');
	$_->quit for @$open;
	$coord->start;

	my ($code, $out, $err) = pg_consistency('in-doubt', '--warning', '0', '--critical', '1h',
		$parts[1]->connstr('postgres'));
	is($code, 1, "$round: in-doubt on participant 2 warns (exit 1) about prepared transactions");
	like($out, qr/^WARNING: $expect_prepared->[1] prepared transactions;/m,
		"$round: and counts them") or diag($out . $err);
	($code, $out) = pg_consistency('in-doubt', $parts[0]->connstr('postgres'));
	like($out, qr/^(OK|WARNING|CRITICAL): $expect_prepared->[0] prepared transactions?;/m,
		"$round: participant 1 has its own count");
	($code, $out) = pg_consistency('in-doubt', '--warning', '1h', '--critical', '0',
		$parts[1]->connstr('postgres'));
	is($code, 2, "$round: past --critical it is critical (exit 2)");

	# with the coordinator's decision log every verdict is known
	($code, $out, $err) = pg_consistency('in-doubt', '--decisions-from', $coord->connstr('postgres'),
		$parts[1]->connstr('postgres'));
	my @verdicts = $out =~ /^cy2:\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+\S+\s+\d+\s+\S+\s+(\S+)/mg;
	is(scalar(@verdicts), $expect_prepared->[1], "$round: in-doubt --decisions-from lists participant 2's transactions")
	  or diag($out . $err);
	is(scalar(grep { $_ ne 'commit' && $_ ne 'rollback' } @verdicts), 0,
		"$round: and knows what to do with each");

	# a dry run changes nothing
	($code, $out, $err) = pg_consistency('resolve', '--older-than', '0',
		'--decisions-from', $coord->connstr('postgres'), $parts[1]->connstr('postgres'));
	is($parts[1]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
		$expect_prepared->[1], "$round: a dry run leaves everything prepared") or diag($out . $err);

	for my $i (0, 1)
	{
		($code, $out, $err) = pg_consistency('resolve', '--execute', '--older-than', '0',
			'--decisions-from', $coord->connstr('postgres'), $parts[$i]->connstr('postgres'));
		is($code, 0, "$round: resolve --execute on participant " . ($i + 1) . ' leaves nothing in doubt')
		  or diag($out . $err);
	}
	check_round($round, $last);
	my ($c) = pg_consistency('in-doubt', $parts[0]->connstr('postgres'));
	is($c, 0, "$round: in-doubt is ok (exit 0) afterwards");
}

# Round 1: 30 complete (every 10th decided abort), then 10 left prepared with the coordinator
# transaction open: 5 prepared on participant 1 only, 5 on both.
distributed($_, 'done', $_ % 10 == 0 ? 'abort' : 'commit') for 1 .. 30;
my @open;
push @open, distributed($_, $_ <= 35 ? 'prepared1' : 'prepared', 'commit') for 31 .. 40;
crash_and_resolve('crash after PREPARE', \@open, 40, [10, 5]);

# Round 2: 20 complete, then 10 decided (6 commit, 4 abort) with no phase 2.
distributed($_, 'done', 'commit') for 41 .. 60;
distributed($_, 'decided', $_ % 5 == 0 || $_ % 5 == 3 ? 'abort' : 'commit') for 61 .. 70;
crash_and_resolve('crash after the decision', [], 70, [10, 10]);

# Round 3: 20 complete, then 10 midway through phase 2 (participant 1 committed, 2 not).
distributed($_, 'done', 'commit') for 71 .. 90;
distributed($_, 'phase2-half', 'commit') for 91 .. 100;
crash_and_resolve('crash midway through phase 2', [], 100, [0, 10]);

# Round 4: 5 prepared on both, then each coordinator logs commit and commits with
# synchronous_commit = off, and the coordinator crashes at once.  The decisions must survive.
my @async = map { [ $_, distributed($_, 'prepared', 'commit') ] } 101 .. 105;
for my $a (@async)
{
	my ($txn, $c) = @$a;
	$c->query_safe('SET LOCAL synchronous_commit = off');
	$c->query_safe("SELECT consistency.tpc_log_decision('$gid_of{$txn}')");
	$c->query_safe('COMMIT');
	$c->quit;
	$committed{$txn} = 1;
}
crash_and_resolve('crash after asynchronous commits of decisions', [], 105, [5, 5]);
is( $coord->safe_psql('postgres',
		'SELECT count(*) FROM consistency.tpc_decisions WHERE gid IN ('
		  . join(',', map { "'$gid_of{$_}'" } 101 .. 105) . ')'),
	'5', 'decisions committed with synchronous_commit = off survive the crash');

# A decided transaction the caller may not finish: bob (consistency_admin, not a superuser)
# sees it skipped with --decisions-from too, as without it: exit 1, left prepared, and his
# dry run does not promise a commit that --execute would fail.
distributed(106, 'decided', 'commit');
$committed{106} = 1;
$parts[0]->safe_psql('postgres', 'CREATE ROLE bob LOGIN; GRANT consistency_admin TO bob');
my $bob = $parts[0]->connstr('postgres') . ' user=bob';
my $gid106 = $gid_of{106};
for my $execute (0, 1)
{
	my $what = $execute ? 'resolve --execute' : 'resolve (dry run)';
	my ($code, $out, $err) = pg_consistency('resolve', ($execute ? ('--execute') : ()), '--older-than', '0',
		'--decisions-from', $coord->connstr('postgres'), $bob);
	is($code, 1, "bob: $what --decisions-from of another role's transaction exits 1 (left in doubt)")
	  or diag($out . $err);
	like($out, qr/^\Q$gid106\E\s+postgres\s+skip\s+f\s+skipped\s+not the caller's to finish: prepared by \S+/m,
		"bob: and prints it as skipped, with the reason");
}
is($parts[0]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '1', 'bob left it prepared');

# A coordinator connection that ends during the run: no verdict can come from it, so exit 3
# (could not tell), not the "left in doubt" of exit 1.  Made certain: participant 1 also holds
# a transaction it coordinated itself (no decision: presumed abort), whose verdict its listing
# reads from its own decision log, and a session holds that table's lock; pg_consistency
# connects to both, reads the coordinator's identity, and waits on that lock for its
# listing.  Meanwhile the coordinator ends its session (idle_session_timeout); then the lock
# is released, and transaction 106, coordinated there, needs the coordinator.
$parts[0]->safe_psql('postgres', 'CREATE TABLE scratch (i int)');
my $local_gid = $parts[0]->safe_psql('postgres', 'BEGIN; SELECT consistency.tpc_gid(); COMMIT');
$parts[0]->safe_psql('postgres', "BEGIN; INSERT INTO scratch VALUES (1); PREPARE TRANSACTION '$local_gid'");
for my $cmd ('in-doubt', 'resolve')
{
	my $locker = $parts[0]->background_psql('postgres');
	$locker->query_safe('BEGIN; LOCK TABLE consistency.tpc_decisions IN ACCESS EXCLUSIVE MODE');
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(['pg_consistency', $cmd, '--older-than', '0', '--decisions-from',
			$coord->connstr('postgres') . " application_name=cli_coord options='-c idle_session_timeout=100'",
			$parts[0]->connstr('postgres')], '>', \$out, '2>', \$err);
	$parts[0]->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND relation = 'consistency.tpc_decisions'::regclass})
	  or die 'pg_consistency does not wait for the lock';
	$coord->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'cli_coord'})
	  or die 'the coordinator session did not end';
	$locker->query_safe('COMMIT');
	$locker->quit;
	$h->finish;
	is($? >> 8, 3, "$cmd: a coordinator lost during the run exits 3 (could not tell)") or diag($out . $err);
	like($err, qr/lost the connection to the coordinator \(--decisions-from\)/, "$cmd: and says so");
}
$parts[0]->safe_psql('postgres', "ROLLBACK PREPARED '$local_gid'");

# Options that would change nothing are refused (exit 3), not ignored.
for my $case ([ 'resolve', '--warning', '1min' ], [ 'resolve', '--critical', '1min' ],
	[ 'in-doubt', '--grace', '1min' ], [ 'resolve', '--grace', '1min' ])
{
	my ($code, $out, $err) = pg_consistency(@$case, $parts[0]->connstr('postgres'));
	is($code, 3, "@$case: refused (exit 3)");
	like($err, qr/option \Q$case->[1]\E is for /, "@$case: with the reason");
}
for my $i (0, 1)
{
	my ($code, $out, $err) = pg_consistency('resolve', '--execute', '--older-than', '0',
		'--decisions-from', $coord->connstr('postgres'), $parts[$i]->connstr('postgres'));
	is($code, 0, 'the superuser resolves transaction 106 on participant ' . ($i + 1)) or diag($out . $err);
}
is($parts[0]->safe_psql('postgres', 'SELECT amount FROM transfers WHERE txn = 106'), '1060',
	'transaction 106 committed, as decided');

is(scalar(grep { $committed{$_} } 1 .. 105), 88, '88 of the 105 transactions were decided commit');
is( $parts[0]->safe_psql('postgres', 'SELECT sum(amount) FROM transfers'),
	$parts[1]->safe_psql('postgres', 'SELECT sum(amount) FROM transfers'),
	'the participants agree');
like( $parts[1]->safe_psql('postgres', q{
		SELECT string_agg(DISTINCT action || ':' || outcome, ',' ORDER BY action || ':' || outcome)
		  FROM consistency.tpc_resolution_log}),
	qr/^commit:committed,rollback:rolled_back$/, 'every resolution is logged on the participant');

$_->quit for @psess;
$_->stop for ($coord, @parts);
done_testing();
