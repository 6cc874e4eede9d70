# Read-your-writes through the C router on a real Patroni cluster (test/ha/PatroniCluster.pm:
# etcd, three Patroni nodes, the library preloaded), once with asynchronous replication and
# once with synchronous_mode: true.  A steady write -> read workload (test/router_example
# --until: write i, read it back, through a router given every node, the primary by libpq
# multi-host with target_session_attrs=read-write) runs through a patronictl switchover and
# then a hard failover (SIGKILL of the leader's postmaster), and follows each new leader
# without a restart:
# - zero stale reads at any point;
# - asynchronous: the leader's walsenders are frozen before the kill, so the writes
#   acknowledged after that are lost; each of them is diverged on every node of the new
#   timeline (new leader, the other replica, and the old leader rejoined by pg_rewind),
#   never ready, and wait_for_token fails at once (YC303); the router reports the lost write
#   (YC303, crouter_lost_token() = the session's last token), it never reads older data;
#   every write that survived is primary / ready;
# - synchronous: the same freeze makes the next commit wait for the synchronous standby, so it
#   is never acknowledged; every acknowledged write is primary on the new leader and ready on
#   every replica, the old leader rejoined included, and no write is reported lost.  A
#   checkpoint on the frozen leader makes its WAL diverge even when the waiting commit's WAL
#   got out before the freeze, so the old leader always rejoins through pg_rewind.
# The times from the switchover / the kill to the first write acknowledged by the new leader
# are printed (diag), not asserted.
use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Utils;
use Test::More;
use PatroniCluster;

my $example = "$ENV{TESTDIR}/test/router_example";
-x $example or BAIL_OUT("$example is not built");

my @workloads;	# running router_example harnesses, stopped in END
END { $_->{h}->kill_kill for grep { $_->{h}->pumpable } @workloads }

# The workload's output: ack/lost/stale/retry lines (see test/router_example.c).
sub events
{
	my ($w) = @_;
	open(my $fh, '<', $w->{out}) or return ();
	my @e;
	while (my $line = <$fh>)
	{
		last unless $line =~ /\n$/;
		push @e, [ split ' ', $line ];
	}
	close($fh);
	return @e;
}

sub acks { return grep { $_->[0] eq 'ack' } events($_[0]) }

# Wait until the workload has n more acknowledged writes than now, or acknowledged ones
# after wall-clock time $after (with a token of timeline $tli, if given).
sub wait_acks
{
	my ($w, $n, $after, $tli) = @_;
	my $base = $after ? 0 : scalar(acks($w));
	PatroniCluster::wait_until("$n acknowledged writes", 120, sub {
		die "the workload stopped: " . PostgreSQL::Test::Utils::slurp_file($w->{err})
		  unless $w->{h}->pumpable;
		my @a = acks($w);
		@a = grep { $_->[3] / 1000 > $after && (!$tli || (split /:/, $_->[2])[2] == $tli) } @a
		  if $after;
		return @a >= $base + $n ? $a[ $base + $n - 1 ] : undef;
	});
}

sub start_workload
{
	my ($ha, $name) = @_;
	my $dir = "$PostgreSQL::Test::Utils::tmp_check/workload_$name";
	mkdir $dir;
	my $w = { out => "$dir/out", err => "$dir/err", stop => "$dir/stop" };
	my @cmd = ($example, '--primary', $ha->multihost_connstr('read-write'),
		(map { ('--standby', $ha->connstr($_) . ' target_session_attrs=standby connect_timeout=2') }
			$ha->nodes),
		'--budget-ms', 200, '--failover-ms', 60000, '--until', $w->{stop});
	$w->{h} = IPC::Run::start(\@cmd, '>', $w->{out}, '2>', $w->{err});
	push @workloads, $w;
	return $w;
}

sub stop_workload
{
	my ($w) = @_;
	open(my $fh, '>', $w->{stop}) or die;
	close($fh);
	my $ok = $w->{h}->finish;
	my @e = events($w);
	my ($summary) = grep { $_->[0] eq 'follow' } @e;
	return ($ok, { map { split /=/ } @{$summary}[ 1 .. $#$summary ] }, @e);
}

# token => status on node, for many tokens at once.
sub statuses
{
	my ($ha, $node, @tokens) = @_;
	return {} unless @tokens;
	my $list = join(',', map { "'$_'" } @tokens);
	my %s = map { split /\|/ } split /\n/, $ha->sql($node,
		"SELECT t || '|' || consistency.token_status(t) FROM unnest(ARRAY[$list]) t");
	return \%s;
}

sub tli_of { return (split /:/, $_[0])[2] }

for my $mode ('async', 'sync')
{
	my $sync = $mode eq 'sync';
	my $ha = PatroniCluster->new("rw_$mode", synchronous_mode => $sync, sql => q{
		CREATE TABLE rw_counter (id int PRIMARY KEY, v bigint NOT NULL);
		INSERT INTO rw_counter VALUES (1, 0);
		CREATE TABLE rw_log (i bigint PRIMARY KEY);
	});
	diag(sprintf('%s: Patroni cluster up in %.1f s', $mode, $ha->{startup_seconds}));
	my $w = start_workload($ha, $mode);
	wait_acks($w, 200);

	# A switchover (in synchronous mode Patroni only takes the synchronous standby).
	my $old = $ha->leader;
	my ($candidate) = $ha->replicas(sync => $sync);
	my $t0 = time;
	my $leader = $ha->switchover($old, $candidate);
	is($leader->{name}, $candidate->{name}, "$mode: switchover to $candidate->{name}");
	my $first = wait_acks($w, 1, $t0, $leader->{timeline});
	diag(sprintf('%s: switchover: first write acknowledged by the new leader %.2f s after patronictl was called',
		$mode, $first->[3] / 1000 - $t0));
	wait_acks($w, 200);
	$ha->wait_for_replicas(2);

	# The hard failover, with the walsenders frozen first.
	$ha->stop_walsenders($leader);
	my $frozen_at = time;
	if ($sync)
	{
		PatroniCluster::wait_until('a commit waiting for the synchronous standby', 60, sub {
			$ha->sql($leader, q{SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'}) > 0;
		});
		# The waiting commit's WAL may have reached the standby just before the freeze
		# (only its acknowledgement is held up); then the old leader would have nothing the
		# new timeline lacks, and would rejoin without pg_rewind.  A checkpoint record,
		# flushed locally and never sent, makes it diverge every time, as in async mode.
		$ha->sql($leader, 'CHECKPOINT');
	}
	else
	{
		wait_acks($w, 20);		# acknowledged, never sent to a replica
	}
	my $kill_at = time;
	$ha->kill_postmaster($leader);
	my $new = $ha->wait_for_leader(not => $leader);
	ok($new->{timeline} > $leader->{timeline},
		"$mode: after the kill $new->{name} leads on timeline $new->{timeline}");
	$first = wait_acks($w, 1, $kill_at, $new->{timeline});
	diag(sprintf('%s: failover: first write acknowledged by the new leader %.2f s after the SIGKILL (Patroni saw a leader after %.2f s)',
		$mode, $first->[3] / 1000 - $kill_at, $ha->{last_wait}));
	wait_acks($w, 100);
	# The old leader rejoins as a replica (pg_rewind through Patroni).
	$ha->wait_for_replicas(2, 120);
	my @replicas = $ha->replicas;
	ok((grep { $_->{name} eq $leader->{name} } @replicas), "$mode: the old leader $leader->{name} rejoined as a replica");

	my ($ok, $sum, @events) = stop_workload($w);
	ok($ok, "$mode: the workload ended without a stale or failed read");
	is($sum->{stale}, 0, "$mode: zero stale reads in $sum->{cycles} write -> read cycles");
	is(scalar(grep { $_->[0] eq 'stale' } @events), 0, "$mode: no stale line");
	is($sum->{failed}, 0, "$mode: no failed read");
	cmp_ok($sum->{reconnects}, '>=', 2, "$mode: the router followed both new leaders without a restart");
	cmp_ok($sum->{standby}, '>', 0, "$mode: replicas served reads ($sum->{standby}; the primary $sum->{primary})");
	like(PostgreSQL::Test::Utils::slurp_file("$leader->{dir}/patroni.log"), qr/pg_rewind exit code=0/,
		"$mode: Patroni rejoined the old leader with pg_rewind");
	diag(sprintf('%s: %d cycles, %d write retries, longest gap between acknowledged writes %d ms',
		$mode, $sum->{cycles}, scalar(grep { $_->[0] eq 'retry' } @events), $sum->{max_gap_ms}));

	# Every write acknowledged before the failover, and whether it survived.
	my @old_acks = grep { tli_of($_->[2]) < $new->{timeline} } grep { $_->[0] eq 'ack' } @events;
	my %kept = map { $_ => 1 } split /\n/, $ha->sql($new, 'SELECT i FROM rw_log');
	my @lost = grep { !$kept{ $_->[1] } } @old_acks;
	my @survived = grep { $kept{ $_->[1] } } @old_acks;
	my @lost_reports = grep { $_->[0] eq 'lost' } @events;
	my $last_new = (grep { $_->[0] eq 'ack' } @events)[-1][2];

	# Every node of the new timeline has replayed the last write.
	for my $node (@replicas)
	{
		PatroniCluster::wait_until("$node->{name} replaying $last_new", 60, sub {
			$ha->sql($node, "SELECT consistency.token_status('$last_new')") eq 'ready';
		});
	}

	if ($sync)
	{
		is(scalar(@lost), 0, "sync: no acknowledged write is missing on the new leader (" . scalar(@old_acks) . ' acknowledged on the killed leader)');
		is(scalar(@lost_reports), 0, 'sync: the router reported no lost write');
		my $st = statuses($ha, $new, map { $_->[2] } @old_acks);
		is(scalar(grep { $st->{$_} ne 'primary' } keys %$st), 0, 'sync: every acknowledged token is primary on the new leader');
	}
	else
	{
		cmp_ok(scalar(@lost), '>=', 20, 'async: the writes acknowledged after the freeze are lost (' . scalar(@lost) . ')');
		my $st = statuses($ha, $new, map { $_->[2] } @old_acks);
		is(scalar(grep { $st->{ $_->[2] } ne 'diverged' } @lost), 0, 'async: every lost write is diverged on the new leader');
		is(scalar(grep { $st->{ $_->[2] } ne 'primary' } @survived), 0, 'async: every surviving write is primary there');
		is(scalar(@lost_reports), 1, 'async: the router reported one lost write');
		my $last_old = $old_acks[-1][2];
		is($lost_reports[0][2], $last_old, 'async: naming the session token of its last write before the kill');
		ok($lost_reports[0][3] / 1000 > $kill_at, 'async: reported after the kill');
		my $tok = $lost[0][2];
		my ($ret, $out, $err) = ('', '', '');
		IPC::Run::run([ 'psql', '-X', '-At', '-v', 'VERBOSITY=verbose', '-d', $ha->connstr($replicas[0]),
				'-c', "SELECT consistency.wait_for_token('$tok', '1h')" ], '>', \$out, '2>', \$err);
		like($err, qr/YC303/, "async: wait_for_token of a lost write on $replicas[0]{name} fails with YC303, no wait");
	}
	for my $node (@replicas)
	{
		my $role = $node->{name} eq $leader->{name} ? 'the rejoined old leader' : 'the other replica';
		my $st = statuses($ha, $node, map { $_->[2] } @old_acks);
		is(scalar(grep { $st->{ $_->[2] } ne 'diverged' } @lost), 0,
			"$mode: $role $node->{name}: every lost write is diverged");
		is(scalar(grep { $st->{ $_->[2] } ne 'ready' } @survived), 0,
			"$mode: $role $node->{name}: every surviving write is ready");
		is($ha->sql($node, q{SELECT v FROM rw_counter}), $ha->sql($new, q{SELECT v FROM rw_counter}),
			"$mode: $role $node->{name} has the new leader's data");
	}
	$ha->stop;
}

done_testing();
