# Session LSN tokens across a real failover (primary + two streaming standbys):
# - standby_1 is stopped, a write t2 reaches only the old primary and standby_2;
# - the old primary goes away and standby_1 is promoted (timeline 2);
# - on the new primary and on a new standby of it, the token minted before the switch
#   point (t1) is primary / ready, and t2, whose write never reached the promoted
#   standby, is diverged -- for token_status, wait_for_token and SET read_after;
# - standby_2 still has t2 (it is on the old timeline), and reports a token of the new
#   timeline as diverged: it is not in its history;
# - tokens minted on the new primary name timeline 2 and are ready on its standby.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsistencyCluster;

my $primary = start_primary('old_primary', q{
	CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);
	INSERT INTO kv VALUES (1, 0);
});
my @standbys = start_standbys($primary, 'standby_1', 'standby_2');
my ($standby_1, $standby_2) = @standbys;

sub write_value
{
	my ($node, $v) = @_;
	return $node->safe_psql('postgres',
		"UPDATE kv SET v = $v WHERE k = 1; SELECT consistency.write_token();");
}

sub status_of
{
	my ($node, $token) = @_;
	return $node->safe_psql('postgres', "SELECT consistency.token_status('$token')");
}

my $t1 = write_value($primary, 1);
$primary->wait_for_catchup($_, 'replay') for @standbys;
is(status_of($_, $t1), 'ready', $_->name . ': t1 ready before the failover') for @standbys;

# t2 reaches the old primary and standby_2 only.
$standby_1->stop;
my $t2 = write_value($primary, 2);
$primary->wait_for_catchup($standby_2, 'replay');
is(status_of($standby_2, $t2), 'ready', 'standby_2 has t2');
$primary->stop('immediate');

$standby_1->start;
$standby_1->promote;
$standby_1->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'no promotion';
my $new_primary = $standby_1;
is($new_primary->safe_psql('postgres', q{SELECT split_part(consistency.write_token(), ':', 3)}),
	'2', 'the promoted standby is on timeline 2');

is(status_of($new_primary, $t1), 'primary', 'new primary: t1 (before the switch point) is primary');
is(status_of($new_primary, $t2), 'diverged', 'new primary: t2 (lost in the failover) is diverged');
is($new_primary->safe_psql('postgres', 'SELECT v FROM kv'), '1', '(the new primary indeed lacks t2)');

# A new standby of the new primary.
$new_primary->backup('after_failover');
my $standby_3 = PostgreSQL::Test::Cluster->new('standby_3');
$standby_3->init_from_backup($new_primary, 'after_failover', has_streaming => 1);
$standby_3->start;
my $t3 = write_value($new_primary, 3);
like($t3, qr{^v1:\d+:2:}, "a token minted on the new primary names timeline 2: $t3");
$new_primary->wait_for_catchup($standby_3, 'replay');

is(status_of($standby_3, $t1), 'ready', "new primary's standby: t1 is ready");
is(status_of($standby_3, $t2), 'diverged', "new primary's standby: t2 is diverged");
is(status_of($standby_3, $t3), 'ready', "new primary's standby: t3 is ready");
is($standby_3->safe_psql('postgres', "SELECT consistency.wait_for_token('$t1', '1s')"),
	't', 'wait_for_token(t1) on the new standby: true');

my ($ret, $out, $err) = $standby_3->psql('postgres',
	"SELECT consistency.wait_for_token('$t2', '1h')", extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/YC303: write named by the consistency token is not in this server's history/,
	'wait_for_token(t2): YC303 at once (never waits for a lost write)');
like($err, qr/DETAIL:  The token names [0-9A-F]+\/[0-9A-F]+ on timeline 1; this server is at [0-9A-F]+\/[0-9A-F]+ on timeline 2/,
	'the detail names both positions and timelines');
($ret, $out, $err) = $standby_3->psql('postgres',
	"SET consistency.read_after_timeout = '1h'; SET consistency.read_after = '$t2'; SELECT v FROM kv",
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/YC303/, 'SET read_after = t2: YC303 at once');
is($out, '', 'and no read happened');
is($standby_3->safe_psql('postgres', "SET consistency.read_after = '$t1'; SELECT v FROM kv"),
	'3', 'SET read_after = t1 on the new standby reads the current data');

# standby_2 is still on timeline 1 and has t2; the new timeline is not in its history.
is(status_of($standby_2, $t2), 'ready', 'standby_2 (old timeline) still has t2');
is(status_of($standby_2, $t3), 'diverged', 'standby_2: a token of timeline 2 is diverged');

# token_max prefers the later timeline.
is($new_primary->safe_psql('postgres', "SELECT consistency.token_max('$t2', '$t3')"),
	$t3, 'token_max picks the token of the later timeline');

$standby_3->stop;
$standby_2->stop;
$new_primary->stop;
done_testing();
