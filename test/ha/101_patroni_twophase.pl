# The 2PC decision log on a coordinator run by Patroni (test/ha/PatroniCluster.pm), with two
# plain participant clusters, and the documented protocol:
#   coordinator: BEGIN; gid := consistency.tpc_gid();
#   participants: BEGIN; INSERT ...; PREPARE TRANSACTION gid;
#   coordinator: SELECT consistency.tpc_log_decision(gid, decision); COMMIT;
#   participants: COMMIT PREPARED gid (or ROLLBACK PREPARED for an abort decision)
# - synchronous_mode: true.  100 distributed transactions in four rounds of 25; in each round
#   every transaction stops at a random phase (gid made, prepared on one participant, on both,
#   decision logged but not committed, decision committed, phase 2 half done, done; every
#   phase in every round; about one in five decides abort), then the coordinator's leader is
#   killed (SIGKILL of its postmaster).  After the failover, pg_consistency resolve --execute
#   --decisions-from the new leader (found through Patroni's REST API) leaves nothing in
#   doubt: exactly the transactions whose commit decision was committed (acknowledged to the
#   coordinator) are committed on both participants, every other one rolled back, nothing
#   prepared.
# - asynchronous replication: what a failover can lose.  Ten transactions prepared on both
#   participants, the leader's walsenders frozen, then each decision logged and committed
#   (acknowledged), phase 2 done on participant 1 for five of them, and the leader killed.
#   The new leader has none of the ten decisions, so the resolver (presumed abort) rolls
#   them all back where they are still prepared: five transactions end committed on
#   participant 1 and rolled back on participant 2.  That is why the README requires
#   synchronous mode for the coordinator.
use strict;
use warnings;
use IPC::Run;
use List::Util qw(shuffle);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PatroniCluster;

my $seed = $ENV{HA_SEED} // time;
srand($seed);
diag("random phases: HA_SEED=$seed");

my @parts;
for my $name ('participant1', 'participant2')
{
	my $p = PostgreSQL::Test::Cluster->new($name);
	$p->init;
	$p->append_conf('postgresql.conf', "max_prepared_transactions = 40\n");
	$p->start;
	$p->safe_psql('postgres', q{
		CREATE EXTENSION consistency;
		CREATE TABLE transfers (txn int PRIMARY KEY, amount int NOT NULL);
	});
	push @parts, $p;
}
my @psess = map { $_->background_psql('postgres') } @parts;

sub pg_consistency
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pg_consistency', @_ ], '>', \$out, '2>', \$err);
	return ($? >> 8, $out . $err);
}

my @phases = qw(begun prepared1 prepared logged decided phase2-half done);
my %rank = map { $phases[$_] => $_ } 0 .. $#phases;

# Run transaction txn on the coordinator leader up to phase stop.  Returns the coordinator
# session while its transaction is open (phases before 'decided'), else undef.
sub distributed
{
	my ($ha, $leader, $txn, $stop, $decision, $gid_of) = @_;
	my $c = $ha->session($leader);
	$c->query_safe('BEGIN');
	my $gid = $gid_of->{$txn} = $c->query_safe('SELECT consistency.tpc_gid()');
	return $c if $stop eq 'begun';
	$psess[0]->query_safe("BEGIN; INSERT INTO transfers VALUES ($txn, $txn * 10); PREPARE TRANSACTION '$gid'");
	return $c if $stop eq 'prepared1';
	$psess[1]->query_safe("BEGIN; INSERT INTO transfers VALUES ($txn, $txn * 10); PREPARE TRANSACTION '$gid'");
	return $c if $stop eq 'prepared';
	$c->query_safe("SELECT consistency.tpc_log_decision('$gid', '$decision')");
	return $c if $stop eq 'logged';
	$c->query_safe('COMMIT');
	$c->quit;
	return undef if $stop eq 'decided';
	my $finish = $decision eq 'commit' ? 'COMMIT PREPARED' : 'ROLLBACK PREPARED';
	$psess[0]->query_safe("$finish '$gid'");
	return undef if $stop eq 'phase2-half';
	$psess[1]->query_safe("$finish '$gid'");
	return undef;
}

sub committed_on
{
	my ($i) = @_;
	return $parts[$i]->safe_psql('postgres', q{SELECT coalesce(string_agg(txn::text, ',' ORDER BY txn), '') FROM transfers});
}

sub prepared_on
{
	my ($i) = @_;
	return $parts[$i]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts');
}

# Kill the leader, wait for Patroni's new one, resolve both participants from it.
sub failover_and_resolve
{
	my ($ha, $leader, $open, $label) = @_;
	$ha->kill_postmaster($leader);
	eval { $_->quit } for @$open;
	my $new = $ha->wait_for_leader(not => $leader);
	diag(sprintf('%s: %s leads after %.1f s', $label, $new->{name}, $ha->{last_wait}));
	for my $i (0, 1)
	{
		my ($code, $out) = pg_consistency('resolve', '--execute', '--older-than', '0',
			'--decisions-from', $ha->connstr($new), $parts[$i]->connstr('postgres'));
		is($code, 0, "$label: resolve --execute --decisions-from the new leader $new->{name} on participant "
			  . ($i + 1) . ' leaves nothing in doubt') or diag($out);
	}
	return $new;
}

# ---- synchronous mode: 100 transactions, 4 kills ----
{
	my $ha = PatroniCluster->new('tpc_sync', synchronous_mode => 1);
	diag(sprintf('sync: Patroni cluster up in %.1f s', $ha->{startup_seconds}));
	my (%committed, %gid_of);
	my $txn = 0;
	for my $round (1 .. 4)
	{
		my $leader = $ha->leader;
		my @stops = (shuffle((@phases) x 4))[ 0 .. 24 ];
		# every phase at least once per round
		@stops[ 0 .. $#phases ] = @phases;
		@stops = shuffle(@stops);
		my (@open, %stop_of);
		for my $stop (@stops)
		{
			$txn++;
			my $decision = rand() < 0.2 ? 'abort' : 'commit';
			my $c = distributed($ha, $leader, $txn, $stop, $decision, \%gid_of);
			push @open, $c if $c;
			$committed{$txn} = 1 if $rank{$stop} >= $rank{decided} && $decision eq 'commit';
			$stop_of{$stop}++;
		}
		my $label = "sync round $round (" . join(', ', map { "$_ $stop_of{$_}" } @phases) . ')';
		my $new = failover_and_resolve($ha, $leader, \@open, $label);
		my $expect = join(',', grep { $committed{$_} } 1 .. $txn);
		for my $i (0, 1)
		{
			is(committed_on($i), $expect,
				"sync round $round: participant " . ($i + 1) . ' has exactly the transactions whose commit decision was acknowledged');
			is(prepared_on($i), '0', "sync round $round: participant " . ($i + 1) . ' has nothing prepared');
		}
		# The old leader rejoins before the next round.
		$ha->wait_for_replicas(2, 120);
	}
	is($txn, 100, 'sync: 100 distributed transactions');
	diag('sync: ' . scalar(keys %committed) . ' of 100 committed');
	$ha->stop;
}

# ---- asynchronous replication: acknowledged decisions lost ----
{
	my $ha = PatroniCluster->new('tpc_async', synchronous_mode => 0);
	diag(sprintf('async: Patroni cluster up in %.1f s', $ha->{startup_seconds}));
	my $leader = $ha->leader;
	my $before_p1 = committed_on(0);
	my $before_p2 = committed_on(1);
	my (%gid_of, @open);
	my @txns = 201 .. 210;
	push @open, distributed($ha, $leader, $_, 'prepared', 'commit', \%gid_of) for @txns;
	# The xid records of the ten coordinator transactions are on the replicas.
	my $lsn = $ha->sql($leader, 'SELECT pg_current_wal_flush_lsn()');
	PatroniCluster::wait_until('the replicas', 60, sub {
		2 == $ha->sql($leader, "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn >= '$lsn'");
	});
	$ha->stop_walsenders($leader);
	for my $k (0 .. $#txns)
	{
		my $c = $open[$k];
		$c->query_safe("SELECT consistency.tpc_log_decision('$gid_of{$txns[$k]}')");
		$c->query_safe('COMMIT');	# acknowledged: asynchronous replication does not wait
		$c->quit;
		$psess[0]->query_safe("COMMIT PREPARED '$gid_of{$txns[$k]}'") if $k < 5;
	}
	is($ha->sql($leader, 'SELECT count(*) FROM consistency.tpc_decisions WHERE gid IN ('
			  . join(',', map { "'$gid_of{$_}'" } @txns) . ')'),
		'10', 'async: ten commit decisions committed on the leader');
	my $new = failover_and_resolve($ha, $leader, [], 'async');
	is($ha->sql($new, 'SELECT count(*) FROM consistency.tpc_decisions WHERE gid IN ('
			  . join(',', map { "'$gid_of{$_}'" } @txns) . ')'),
		'0', 'async: the new leader has none of the ten acknowledged decisions');
	is(committed_on(0), join(',', grep { $_ ne '' } $before_p1, 201 .. 205),
		'async: participant 1 keeps the five it had committed in phase 2 and rolled back the rest');
	is(committed_on(1), $before_p2,
		'async: participant 2 rolled back all ten (presumed abort): five transactions are split');
	is(prepared_on($_), '0', 'async: participant ' . ($_ + 1) . ' has nothing prepared') for (0, 1);
	$ha->stop;
}

$_->quit for @psess;
$_->stop for @parts;
done_testing();
