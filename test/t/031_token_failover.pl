# Session LSN tokens across a real failover (primary + three streaming standbys):
# - standby_1 is stopped, a write t2 reaches only the old primary and standby_2;
# - the old primary goes away and standby_1 is promoted (timeline 2);
# - on the new primary and on a new standby of it, the token minted before the switch
#   point (t1) is primary / ready, and t2, whose write never reached the promoted
#   standby, is diverged -- for token_status, wait_for_token and SET read_after;
# - standby_2 still has t2 (it is on the old timeline), past the switch point.  Until it has
#   the new timeline's history it cannot tell where that timeline branched off, so a token
#   of the new timeline is behind -- unless the token lies at or before standby_2's own
#   position (a write on timeline 2 ends after the branch point): diverged.  Pointed at the
#   new primary it fetches the history, and then the token is diverged, and wait_for_token
#   fails with YC303;
# - standby_lag was stopped before t1, before the switch point, and comes back while the
#   old primary is gone: it has not fetched timeline 2's history, so t3 (a write on timeline
#   2) is behind, not diverged -- token_status, wait_for_token and SET read_after (YC304,
#   not YC303).  Pointed at the new primary, it follows timeline 2 and t3 is ready;
# - tokens minted on the new primary name timeline 2 and are ready on its standby;
# - a timeline-1 token exactly at the switch point is primary / ready on timeline 2's side
#   (new primary, standby_3, standby_lag), one byte further it is diverged.
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
# standby_1 becomes the new primary; standby_lag later follows it from before the switch
# point, so it must keep that WAL (checkpoints after the promotion would recycle it).
$standby_1->append_conf('postgresql.conf', "wal_keep_size = '256MB'");
my ($standby_lag) = start_standbys($primary, 'standby_lag');
$primary->wait_for_catchup($standby_lag, 'replay');
$standby_lag->stop;
my $sysid = $primary->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');

sub write_value
{
	my ($node, $v) = @_;
	return $node->safe_psql('postgres',
		"UPDATE kv SET v = $v WHERE k = 1; SELECT consistency.write_token();");
}

# Does node have the history file of timeline tli in pg_wal?
sub has_history
{
	my ($node, $tli) = @_;
	return $node->safe_psql('postgres',
		sprintf("SELECT count(*) > 0 FROM pg_ls_waldir() WHERE name = '%08X.history'", $tli));
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

# standby_2 is still on timeline 1 and has t2; the new timeline is not in its history, and
# its primary is gone, so it has not fetched timeline 2's history file.
is(status_of($standby_2, $t2), 'ready', 'standby_2 (old timeline) still has t2');
is(has_history($standby_2, 2), 'f', 'standby_2 does not have timeline 2\'s history');
my $s2_pos = $standby_2->safe_psql('postgres', 'SELECT pg_last_wal_replay_lsn()');
my $s2_next = $standby_2->safe_psql('postgres', 'SELECT pg_last_wal_replay_lsn() + 1');
is(status_of($standby_2, "v1:$sysid:2:$s2_pos"), 'diverged',
	'standby_2: a timeline-2 position at its own replay position is diverged without the history');
is(status_of($standby_2, "v1:$sysid:2:$s2_next"), 'behind',
	'standby_2: one byte further it cannot tell yet: behind');
# Pointed at the new primary, its walreceiver fetches timeline 2's history (and refuses to
# follow it: the branch point is behind standby_2's position).
$standby_2->append_conf('postgresql.conf', "primary_conninfo = '" . $new_primary->connstr . "'");
$standby_2->reload;
$standby_2->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_ls_waldir() WHERE name = '00000002.history'")
  or die 'standby_2 did not fetch the history of timeline 2';
is(status_of($standby_2, $t3), 'diverged', 'standby_2 with the history: t3 is diverged');
is(status_of($standby_2, "v1:$sysid:2:$s2_next"), 'diverged',
	'standby_2 with the history: any timeline-2 token is diverged');
($ret, $out, $err) = $standby_2->psql('postgres',
	"SELECT consistency.wait_for_token('$t3', '1h')", extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/YC303/, 'standby_2: wait_for_token(t3) fails with YC303 at once');
is($standby_2->safe_psql('postgres', 'SELECT pg_last_wal_replay_lsn()'), $s2_pos,
	'(standby_2 did not move)');

# standby_lag stopped before t1, so before the switch point, and comes back while its
# primary is gone: it cannot have timeline 2's history yet.
$standby_lag->start;
my $switch_point = (split /\s+/, $new_primary->safe_psql('postgres',
	q{SELECT pg_read_file('pg_wal/00000002.history')}))[1];
is($standby_lag->safe_psql('postgres', "SELECT pg_last_wal_replay_lsn() < '$switch_point'"), 't',
	"standby_lag is before the switch point $switch_point");
is(has_history($standby_lag, 2), 'f', 'standby_lag does not have timeline 2\'s history');
is(status_of($standby_lag, $t3), 'behind', 'standby_lag: t3 (timeline 2) is behind, not diverged');
is(status_of($standby_lag, $t1), 'behind', 'standby_lag: t1 (timeline 1, not replayed yet) is behind');
is($standby_lag->safe_psql('postgres', "SELECT consistency.wait_for_token('$t3', '10ms')"),
	'f', 'standby_lag: wait_for_token(t3) times out with false, no YC303');
($ret, $out, $err) = $standby_lag->psql('postgres',
	"SET consistency.read_after_timeout = 0; SET consistency.read_after = '$t3'; SELECT v FROM kv",
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/YC304: standby has not replayed the write/, 'standby_lag: SET read_after = t3 is YC304');
unlike($err, qr/YC303/, 'not YC303');
is($out, '', 'and no stale read happened');
# Pointed at the new primary, it follows timeline 2 and replays past t3.
$standby_lag->append_conf('postgresql.conf', "primary_conninfo = '" . $new_primary->connstr . "'");
$standby_lag->reload;
$standby_lag->poll_query_until('postgres', "SELECT consistency.token_status('$t3')", 'ready')
  or die 'standby_lag did not replay t3';
pass('standby_lag, following timeline 2: t3 is ready');
is(status_of($standby_lag, $t1), 'ready', 'standby_lag: t1 is ready');
is(status_of($standby_lag, $t2), 'diverged', 'standby_lag: t2 (lost in the failover) is diverged');
is($standby_lag->safe_psql('postgres', "SET consistency.read_after = '$t3'; SELECT v FROM kv"),
	'3', 'standby_lag: SET read_after = t3 reads the write');

# The edge of timeline 1: a token exactly at the switch point names WAL the new timeline
# shares (it branched off there), so it is primary / ready on timeline 2's side; one byte
# further it names WAL only the old timeline had: diverged.
my $at_switch = "v1:$sysid:1:$switch_point";
my $past_switch = "v1:$sysid:1:"
  . $new_primary->safe_psql('postgres', "SELECT '$switch_point'::pg_lsn + 1");
is(status_of($new_primary, $at_switch), 'primary',
	"new primary: a timeline-1 token at the switch point $switch_point is primary");
is(status_of($new_primary, $past_switch), 'diverged',
	'new primary: one byte past the switch point it is diverged');
for my $standby ($standby_3, $standby_lag)
{
	is(status_of($standby, $at_switch), 'ready',
		$standby->name . ': a timeline-1 token at the switch point is ready');
	is(status_of($standby, $past_switch), 'diverged',
		$standby->name . ': one byte past the switch point it is diverged');
}

# token_max prefers the later timeline.
is($new_primary->safe_psql('postgres', "SELECT consistency.token_max('$t2', '$t3')"),
	$t3, 'token_max picks the token of the later timeline');

$standby_3->stop;
$standby_lag->stop;
$standby_2->stop;
$new_primary->stop;
done_testing();
