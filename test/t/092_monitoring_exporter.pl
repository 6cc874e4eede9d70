# monitoring/consistency-queries.yaml in the real Prometheus PostgreSQL exporter (Debian
# prometheus-postgres-exporter), one exporter for a preloaded primary and one for its
# standby, each on a free loopback port, connected as a role granted only pg_monitor:
# traffic of every capability, then a scrape of /metrics, whose values must be the view's;
# and `pg_consistency stats`, which prints the same figures.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use HTTP::Tiny;

my $exporter_bin = '/usr/bin/prometheus-postgres-exporter';
plan skip_all => "$exporter_bin is not installed (scripts/lib/common.sh installs it)"
  unless -x $exporter_bin;
my $queries = "$ENV{TESTDIR}/monitoring/consistency-queries.yaml";

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf',
	"shared_preload_libraries = 'consistency'\nmax_prepared_transactions = 10");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE TABLE doc (id int PRIMARY KEY, body text, version bigint NOT NULL DEFAULT 1);
	SELECT consistency.enable_versioning('doc');
	INSERT INTO doc VALUES (1, 'a');
	CREATE TABLE acc (id int PRIMARY KEY);
	CREATE ROLE exporter LOGIN IN ROLE pg_monitor;
});
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# Traffic.
$primary->safe_psql('postgres', q{
	SELECT consistency.stock_set('mug', 3);
	SELECT consistency.reserve('mug', 2, 'r-1');
	SELECT consistency.reserve('mug', 2, 'r-2');		-- insufficient
	SELECT consistency.try_update_versioned('doc', '{"id": 1}', 7, '{"body": "b"}');	-- conflict
	BEGIN;
	SELECT consistency.idem_begin('k1');
	SELECT consistency.idem_complete('k1', '{}');
	COMMIT;
	SELECT consistency.idem_begin('k1');				-- replay
});
$primary->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO acc VALUES (1);
	PREPARE TRANSACTION 'monitoring-in-doubt';
});
$primary->wait_for_catchup($standby, 'replay');
# On the standby: replay paused, a token it has not replayed, one wait that times out.
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$standby->poll_query_until('postgres', q{SELECT pg_get_wal_replay_pause_state() = 'paused'})
  or die 'standby did not pause';
my $token = $primary->safe_psql('postgres',
	'INSERT INTO acc VALUES (2); SELECT consistency.write_token()');
is($standby->safe_psql('postgres', qq{SELECT consistency.wait_for_token('$token', '100ms')}),
	'f', 'standby: a wait that times out');

# One exporter per server.
my @exporters;
sub start_exporter
{
	my ($node) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	local $ENV{DATA_SOURCE_NAME} = sprintf('host=%s port=%d user=exporter dbname=postgres sslmode=disable',
		$node->host, $node->port);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ $exporter_bin, "--extend.query-path=$queries", "--web.listen-address=127.0.0.1:$port",
		  '--disable-default-metrics', '--disable-settings-metrics', '--log.level=warn' ],
		'>', \$out, '2>', \$err);
	push @exporters, [ $h, \$err ];
	return ("http://127.0.0.1:$port/metrics", $h, \$err);
}

# Scrape until the exporter answers with our metrics (it needs a moment to listen).
sub scrape
{
	my ($url, $h, $err) = @_;
	my $http = HTTP::Tiny->new(timeout => 10);
	my $r;
	for (1 .. 300)
	{
		die "the exporter exited: $$err" unless $h->pumpable;
		$r = $http->get($url);
		return $r->{content} if $r->{success} && $r->{content} =~ /^consistency_replay_in_recovery/m;
		$h->pump_nb;
		select(undef, undef, undef, 0.1);
	}
	die "no metrics from $url: $r->{status} $r->{content}\nexporter: $$err";
}

# value of METRIC whose labels include every pair in LABELS
sub metric
{
	my ($text, $metric, %labels) = @_;
	for my $line (split /\n/, $text)
	{
		next unless $line =~ /^\Q$metric\E(?:\{([^}]*)\})? (\S+)$/;
		my ($labels, $value) = ($1 // '', $2);
		my %have = $labels =~ /(\w+)="([^"]*)"/g;
		next if grep { ($have{$_} // '') ne $labels{$_} } keys %labels;
		return $value + 0;
	}
	return undef;
}

my ($primary_url, $primary_h, $primary_err) = start_exporter($primary);
my $p = scrape($primary_url, $primary_h, $primary_err);
my $s = scrape(start_exporter($standby));

# Every counter of the view, as the exporter shows it.
my %expected = map { my ($c, $n, $v) = split /\|/; ("$c.$n" => $v) }
  split /\n/, $primary->safe_psql('postgres', q{
	SELECT capability, counter, value FROM consistency.stats WHERE datname = 'postgres'});
is(scalar(keys %expected), 33, 'the view has 33 counters for the database');
my @wrong = grep {
	my ($c, $n) = split /\./;
	(metric($p, 'consistency_stats_value', datname => 'postgres', capability => $c, counter => $n) // -1)
	  != $expected{$_}
} sort keys %expected;
is_deeply(\@wrong, [], 'primary: every counter in /metrics equals the view');
is(metric($p, 'consistency_stats_value', capability => 'idempotency', counter => 'replay'), 1, 'replay: 1');
is(metric($p, 'consistency_stats_value', capability => 'inventory', counter => 'insufficient'), 1, 'insufficient: 1');
is(metric($p, 'consistency_stats_value', capability => 'versioning', counter => 'conflict'), 1, 'conflict: 1');
is(metric($p, 'consistency_stats_preloaded'), 1, 'primary: stats preloaded');
is(metric($p, 'consistency_in_doubt_count'), 1, 'primary: one transaction in doubt');
ok(metric($p, 'consistency_in_doubt_oldest_age_seconds') >= 0, 'primary: its age is exported');
is(metric($p, 'consistency_in_doubt_pins_xmin_horizon'), 1, 'primary: it pins the xmin horizon');
is(metric($p, 'consistency_in_doubt_resolvable'), 0,
	'primary: not resolvable (not made by tpc_gid: needs force)');
is(metric($p, 'consistency_replay_in_recovery'), 0, 'primary: not in recovery');
is(metric($p, 'consistency_replay_lsn_bytes'), 0, 'primary: 0 replayed bytes');

is(metric($s, 'consistency_replay_in_recovery'), 1, 'standby: in recovery');
is(metric($s, 'consistency_replay_lsn_bytes'),
	$standby->safe_psql('postgres', q{SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')}) + 0,
	'standby: replay position in bytes');
is(metric($s, 'consistency_stats_value', capability => 'tokens', counter => 'wait'), 1, 'standby: 1 token wait');
is(metric($s, 'consistency_stats_value', capability => 'tokens', counter => 'timeout'), 1, 'standby: 1 timeout');
cmp_ok(metric($s, 'consistency_stats_value', capability => 'tokens', counter => 'wait_time_us'), '>=', 99000,
	'standby: the wait time is at least the timeout');
is(metric($s, 'consistency_stats_value', capability => 'inventory', counter => 'reserved'), 0,
	'standby: its own counters, not the primary\'s');

# pg_consistency stats prints the same figures for a terminal, as the same role.
my ($cli_out, $cli_err) = ('', '');
IPC::Run::run([ 'pg_consistency', 'stats', $primary->connstr('postgres') . ' user=exporter' ],
	'>', \$cli_out, '2>', \$cli_err);
is($? >> 8, 0, 'pg_consistency stats: exit 0');
like($cli_out, qr/^database postgres \(counters never reset\)$/m, 'stats: names the database, never reset');
my @cli_wrong = grep {
	my ($c, $n) = split /\./;
	$cli_out !~ /^  \Q$c\E +\Q$n\E +\Q$expected{$_}\E$/m
} sort keys %expected;
is_deeply(\@cli_wrong, [], 'stats: every counter printed with the view\'s value');
like($cli_out, qr/^in-doubt: 1 prepared transaction, oldest \S+, pins the xmin horizon: yes, resolvable now: 0$/m,
	'stats: the in-doubt summary');
like($cli_out, qr/^replay: primary \(not in recovery\)$/m, 'stats: primary');
IPC::Run::run([ 'pg_consistency', 'stats', $standby->connstr('postgres') . ' user=exporter' ],
	'>', \$cli_out, '2>', \$cli_err);
my $replayed = $standby->safe_psql('postgres', 'SELECT pg_last_wal_replay_lsn()');
like($cli_out, qr/^replay: standby, replayed up to \Q$replayed\E, last replayed commit \S+ ago$/m,
	'stats on the standby: its replay position');
like($cli_out, qr/^  tokens +timeout +1$/m, 'stats on the standby: its own token timeout');
IPC::Run::run([ 'pg_consistency', 'stats', '--older-than', '1h', $primary->connstr('postgres') ],
	'>', \$cli_out, '2>', \$cli_err);
is($? >> 8, 3, 'stats: an option it does not take exits 3');
like($cli_err, qr/unknown option "--older-than" for stats/, 'and says which');
IPC::Run::run([ 'pg_consistency', 'stats', 'host=/nonexistent port=1' ],
	'>', \$cli_out, '2>', \$cli_err);
is($? >> 8, 3, 'stats: a server it cannot reach exits 3');
# pg_consistency in-doubt keeps its monitoring exit codes, on the same prepared transaction.
for my $case ([ [], 0, 'younger than the default --warning 5min' ],
	[ [ '--warning', '1us', '--critical', '1h' ], 1, 'older than --warning' ],
	[ [ '--warning', '1us', '--critical', '2us' ], 2, 'older than --critical' ])
{
	IPC::Run::run([ 'pg_consistency', 'in-doubt', @{ $case->[0] }, $primary->connstr('postgres') ],
		'>', \$cli_out, '2>', \$cli_err);
	is($? >> 8, $case->[1], "in-doubt: exit $case->[1], $case->[2]");
}

# After crash recovery the primary's last replayed position is set, and stays: the exporter
# still says 0 replayed bytes, as for any primary.
$primary->stop('immediate');
$primary->start;
isnt($primary->safe_psql('postgres', 'SELECT pg_last_wal_replay_lsn()'), '',
	'primary after crash recovery: pg_last_wal_replay_lsn() is set');
$p = scrape($primary_url, $primary_h, $primary_err);
is(metric($p, 'consistency_replay_in_recovery'), 0, 'primary after crash recovery: not in recovery');
is(metric($p, 'consistency_replay_lsn_bytes'), 0, 'primary after crash recovery: 0 replayed bytes');
is(metric($p, 'consistency_replay_lag_seconds'), 0, 'primary after crash recovery: 0 lag');

$_->[0]->kill_kill for @exporters;
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->safe_psql('postgres', q{ROLLBACK PREPARED 'monitoring-in-doubt'});
$standby->stop;
$primary->stop;
done_testing();
