# examples/twophase_psycopg/transfer.py (psycopg 3's tpc_begin / tpc_prepare / tpc_commit, gids
# from consistency.tpc_gid()) across three throwaway clusters: a coordinator and two
# participants ("stock", "billing"; max_prepared_transactions > 0), as a role granted only
# consistency_user on the coordinator.  A clean run commits and aborts as decided; then the
# coordinator is crashed three times (the example kills itself with SIGKILL at the chosen
# point and the coordinator's server is stopped immediately): with both participants
# prepared and no decision, with a commit (and, once, an abort) decision logged and no phase
# 2, and midway through phase 2.  The example's --in-doubt lists what psycopg's
# tpc_recover() finds; `pg_consistency resolve --execute --decisions-from` resolves it.  In
# the end nothing stays prepared and each participant holds exactly the rows of the gids
# the coordinator's decision log says commit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $example = "$ENV{TESTDIR}/examples/twophase_psycopg/transfer.py";

my $coord = PostgreSQL::Test::Cluster->new('tpc_coordinator');
$coord->init;
$coord->start;
$coord->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE ROLE app LOGIN;
	GRANT consistency_user TO app;
});
my %part;
for my $name ('stock', 'billing')
{
	my $p = PostgreSQL::Test::Cluster->new("tpc_$name");
	$p->init;
	$p->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
	$p->start;
	$p->safe_psql('postgres', q{
		CREATE EXTENSION consistency;
		CREATE ROLE app LOGIN;
		CREATE TABLE public.tpc_ledger (txn int PRIMARY KEY, gid text NOT NULL UNIQUE, amount int NOT NULL);
		GRANT SELECT, INSERT ON public.tpc_ledger TO app;
	});
	$part{$name} = $p;
}
my $conninfo = sub { sprintf('host=%s port=%d dbname=postgres user=app', $_[0]->host, $_[0]->port) };
my @topology = ('--coordinator', $conninfo->($coord),
	map { ('--participant', "$_=" . $conninfo->($part{$_})) } 'stock', 'billing');

sub run_example
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ '/usr/bin/python3', $example, @topology, @_ ], '>', \$out, '2>', \$err);
	my $sig = $? & 127;
	note($out);
	diag($err) if $err ne '' && !$sig;
	return ($? >> 8, $sig, $out);
}

sub prepared_gids
{
	my ($p) = @_;
	return [ split /\n/, $p->safe_psql('postgres', 'SELECT gid FROM pg_prepared_xacts ORDER BY gid') ];
}

sub decision_of
{
	my ($gid) = @_;
	return $coord->safe_psql('postgres',
		"SELECT coalesce((SELECT decision FROM consistency.tpc_decisions WHERE gid = '$gid'), 'none')");
}

sub pg_consistency
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pg_consistency', @_ ], '>', \$out, '2>', \$err);
	return ($? >> 8, $out . $err);
}

# ---- bad arguments: refused before anything is written -----------------------------------------
my ($code, $sig, $out);
for my $bad ([ '--count', 0 ], [ '--participant', 'no-name' ], [ '--participant', 'stock=host=elsewhere' ])
{
	my ($o, $e) = ('', '');
	IPC::Run::run([ '/usr/bin/python3', $example, @topology, @$bad ], '>', \$o, '2>', \$e);
	is($? >> 8, 2, "@$bad: refused (exit 2)");
	like($e, qr/^transfer\.py: error: /m, "@$bad: with a usage error");
}
is(join('/', map { $part{$_}->safe_psql('postgres', 'SELECT count(*) FROM public.tpc_ledger') } 'stock', 'billing'),
	'0/0', 'the refused runs wrote nothing');

# ---- a clean run ----------------------------------------------------------------------------
($code, $sig, $out) = run_example('--first', 1, '--count', 6, '--abort-every', 3);
is($code, 0, 'a clean run exits 0');
like($out, qr/^done: 4 committed, 2 aborted$/m, 'and commits 4, aborts 2');
for my $name ('stock', 'billing')
{
	is($part{$name}->safe_psql('postgres', 'SELECT string_agg(txn::text, \',\' ORDER BY txn) FROM public.tpc_ledger'),
		'1,2,4,5', "$name: the committed transactions' rows");
	is(scalar @{ prepared_gids($part{$name}) }, 0, "$name: nothing prepared");
}
like($part{stock}->safe_psql('postgres', 'SELECT gid FROM public.tpc_ledger WHERE txn = 1'),
	qr/^cy2:\d+:\d+:\d+:[0-9a-f]{16}:stock$/, 'the participant prepared under the gid of tpc_gid(\'stock\')');

# ---- crashes between PREPARE and the end of phase 2 --------------------------------------------
# [stage, first txn, count, extra options, participants expected prepared after the crash,
#  the crashed transaction's decision]
my @crashes = (
	[ 'prepared',    7,  3, [],                      [ 'stock', 'billing' ], 'none' ],
	[ 'decided',     10, 3, [],                      [ 'stock', 'billing' ], 'commit' ],
	[ 'decided',     13, 1, [ '--abort-every', 1 ],  [ 'stock', 'billing' ], 'abort' ],
	[ 'phase2-half', 14, 3, [],                      [ 'billing' ],          'commit' ],
);
for my $c (@crashes)
{
	my ($stage, $first, $count, $extra, $expect_prepared, $decision) = @$c;
	my $last = $first + $count - 1;
	my $round = "crash at $stage" . ($decision eq 'abort' ? ' (abort decided)' : '');
	($code, $sig, $out) = run_example('--first', $first, '--count', $count, '--crash-at', $stage, @$extra);
	is($sig, 9, "$round: the coordinator process died by SIGKILL");
	like($out, qr/^crash: the coordinator dies at '$stage' of transaction $last$/m, "$round: in transaction $last");
	$coord->stop('immediate');
	$coord->start;

	my %gids;
	for my $name ('stock', 'billing')
	{
		my $g = prepared_gids($part{$name});
		$gids{$name} = $g->[0] if @$g;
		is(scalar @$g, (grep { $_ eq $name } @$expect_prepared) ? 1 : 0,
			"$round: $name has " . ((grep { $_ eq $name } @$expect_prepared) ? 'its transaction' : 'nothing') . ' prepared');
	}
	for my $name (sort keys %gids)
	{
		is(decision_of($gids{$name}), $decision, "$round: the decision log says $decision for $name\'s gid");
	}
	($code, $sig, $out) = run_example('--in-doubt');
	my @listed = $out =~ /^in doubt: (\S+) (\S+) prepared .* decision (\S+)/mg;
	my %want = map { ($_ => "$gids{$_} " . ($decision eq 'none' ? 'none' : $decision)) } keys %gids;
	my %got;
	while (my ($n, $g, $d) = splice(@listed, 0, 3)) { $got{$n} = "$g $d"; }
	is_deeply(\%got, \%want, "$round: --in-doubt (tpc_recover) lists the prepared gids with their decision");

	for my $name ('stock', 'billing')
	{
		my ($rc, $text) = pg_consistency('resolve', '--execute', '--older-than', '0',
			'--decisions-from', $coord->connstr('postgres'), $part{$name}->connstr('postgres'));
		is($rc, 0, "$round: pg_consistency resolve --execute on $name leaves nothing in doubt") or diag($text);
		is(scalar @{ prepared_gids($part{$name}) }, 0, "$round: $name has nothing prepared");
		next unless $gids{$name};
		is($part{$name}->safe_psql('postgres',
				"SELECT action || ' ' || outcome FROM consistency.tpc_resolution_log WHERE gid = '$gids{$name}'"),
			$decision eq 'commit' ? 'commit committed' : 'rollback rolled_back',
			"$round: $name\'s resolution log records what was done");
		is($part{$name}->safe_psql('postgres', "SELECT count(*) FROM public.tpc_ledger WHERE txn = $last"),
			$decision eq 'commit' ? '1' : '0', "$round: $name " . ($decision eq 'commit' ? 'has' : 'lacks')
			  . " the crashed transaction's row");
	}
}

# ---- every participant's outcome is the decision log's -------------------------------------------
for my $name ('stock', 'billing')
{
	is($part{$name}->safe_psql('postgres', 'SELECT string_agg(gid, \',\' ORDER BY gid) FROM public.tpc_ledger'),
		$coord->safe_psql('postgres', qq{SELECT string_agg(gid, ',' ORDER BY gid) FROM consistency.tpc_decisions
			WHERE decision = 'commit' AND gid LIKE '%:$name'}),
		"$name holds exactly the rows of the gids decided commit");
	is($part{$name}->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0', "$name: nothing stays prepared");
}
is($part{stock}->safe_psql('postgres', 'SELECT string_agg(txn::text, \',\' ORDER BY txn) FROM public.tpc_ledger'),
	'1,2,4,5,7,8,10,11,12,14,15,16', 'the transactions committed: all but the aborted and the undecided');
is($part{stock}->safe_psql('postgres', 'SELECT sum(amount) FROM public.tpc_ledger'),
	-$part{billing}->safe_psql('postgres', 'SELECT sum(amount) FROM public.tpc_ledger'),
	'the participants agree (stock debits what billing credits)');

$_->stop for ($coord, values %part);
done_testing();
