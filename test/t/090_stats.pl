# consistency.stats with the library preloaded, on a primary and a streaming standby:
# - counters of concurrent sessions: an inventory buyer turned away as busy, buyers that
#   waited for a slot lock (of a multi-slot SKU, of a pinned one-slot SKU), counted once each
#   session's transaction ended;
# - on a paused standby: token waits (count, total and maximum time, at least the timeout),
#   timeouts (YC304) and a stale statement refused, in the standby's own counters;
# - counters are per database, and stats_reset() resets only the caller's;
# - counters survive a clean restart and start from zero after a crash (immediate stop),
#   as PostgreSQL's own statistics do.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsistencyCluster;

my $primary = start_primary('primary', q{
	CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);
	INSERT INTO kv VALUES (1, 0);
	CREATE DATABASE other;
});
my ($standby) = start_standbys($primary, 'standby');
$primary->wait_for_catchup($standby, 'replay');
$primary->safe_psql('other', 'CREATE EXTENSION consistency');

# counter value in database DB of NODE
sub counter
{
	my ($node, $db, $capability, $counter) = @_;
	return $node->safe_psql($db, qq{
		SELECT value FROM consistency.stats
		 WHERE datname = current_database() AND capability = '$capability' AND counter = '$counter'});
}

is($primary->safe_psql('postgres', 'SELECT count(*) FROM consistency.stats WHERE reason IS NOT NULL'),
	'0', 'preloaded: no row with a reason');

# --- concurrent sessions: busy and a lock wait --------------------------------------------
$primary->safe_psql('postgres', q{SELECT consistency.stock_set('lamp', 40, 4)});
my $holder = $primary->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe(q{SELECT consistency.stock_add('lamp', 1)});	# holds every slot
is($primary->safe_psql('postgres', q{SELECT consistency.reserve('lamp', 1, 'b-1', wait => false)}),
	'busy', 'a buyer that will not wait is turned away: busy');
my $waiter = $primary->background_psql('postgres', on_error_stop => 0);
my $waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, q{
	\echo waiting
	SELECT consistency.reserve('lamp', 1, 'b-2');
});
$primary->poll_query_until('postgres', qq{
	SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $waiter_pid AND NOT granted)})
  or die 'the buyer did not wait for the slot lock';
# counted in the waiter's backend, not yet added: its transaction has not ended
is(counter($primary, 'postgres', 'inventory', 'lock_wait'), '0',
	'a wait is not in the shared counters while its transaction runs');
$holder->query_safe('COMMIT');
$holder->quit;
$waiter->quit;
is(counter($primary, 'postgres', 'inventory', 'busy'), '1', 'busy: 1');
is(counter($primary, 'postgres', 'inventory', 'lock_wait'), '1', 'lock_wait: 1, once its transaction ended');
is(counter($primary, 'postgres', 'inventory', 'reserved'), '1', 'reserved: 1 (the waiter, after the wait)');

# a buyer of a pinned one-slot SKU waits for its slot lock too (not for the row): counted
$primary->safe_psql('postgres', q{SELECT consistency.stock_set('desk', 10, slots => 1)});
$holder = $primary->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe(q{SELECT consistency.reserve('desk', 1, 'd-1')});
$waiter = $primary->background_psql('postgres', on_error_stop => 0);
$waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, q{
	\echo waiting
	SELECT consistency.reserve('desk', 1, 'd-2');
});
$primary->poll_query_until('postgres', qq{
	SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $waiter_pid AND NOT granted
	                                      AND locktype = 'advisory' AND objsubid = 18774)})
  or die 'the buyer of the one-slot SKU did not wait for its slot lock';
$holder->query_safe('COMMIT');
$holder->quit;
$waiter->quit;
is(counter($primary, 'postgres', 'inventory', 'lock_wait'), '2',
	'lock_wait: 2, the one-slot buyer\'s wait counted once its transaction ended');
is(counter($primary, 'postgres', 'inventory', 'reserved'), '3', 'reserved: 3 (holder and waiter of the one-slot SKU)');

# --- per database ---------------------------------------------------------------------------
$primary->safe_psql('other', q{SELECT consistency.stock_set('mug', 1); SELECT consistency.reserve('mug', 5, 'x')});
is(counter($primary, 'other', 'inventory', 'insufficient'), '1', 'database other: insufficient 1');
is(counter($primary, 'postgres', 'inventory', 'insufficient'), '0', 'database postgres: insufficient 0');
is($primary->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT datname, ',' ORDER BY datname) FROM consistency.stats}),
	'other,postgres', 'the view lists every database that counted, from any database');

# --- tokens on a paused standby -------------------------------------------------------------
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$standby->poll_query_until('postgres', q{SELECT pg_get_wal_replay_pause_state() = 'paused'})
  or die 'standby did not pause';
my $token = $primary->safe_psql('postgres',
	'UPDATE kv SET v = 1 WHERE k = 1; SELECT consistency.write_token()');
is($standby->safe_psql('postgres', qq{SELECT consistency.wait_for_token('$token', '200ms')}),
	'f', 'standby: wait_for_token times out');
my ($ret, $out, $err) = $standby->psql('postgres',
	"SET consistency.read_after_timeout = '100ms'; SET consistency.read_after = '$token'");
like($err, qr/standby has not replayed/, 'standby: SET read_after times out');
{
	local $ENV{PGOPTIONS} = "-c consistency.read_after=$token";
	($ret, $out, $err) = $standby->psql('postgres', 'SELECT v FROM kv');
	like($err, qr/standby has not replayed/, 'standby: a stale statement is refused');
}
is(counter($standby, 'postgres', 'tokens', 'wait'), '2', 'standby: 2 waits');
is(counter($standby, 'postgres', 'tokens', 'timeout'), '2', 'standby: 2 timeouts');
is(counter($standby, 'postgres', 'tokens', 'stale_refused'), '1', 'standby: 1 stale statement refused');
# (the wait loop reads the clock in whole milliseconds, rounded up: 1 ms of slack each)
cmp_ok(counter($standby, 'postgres', 'tokens', 'wait_time_us'), '>=', 298000,
	'standby: total wait time is at least the two timeouts');
cmp_ok(counter($standby, 'postgres', 'tokens', 'max_wait_us'), '>=', 199000,
	'standby: maximum wait is at least the longer timeout');
cmp_ok(counter($standby, 'postgres', 'tokens', 'max_wait_us'), '<',
	counter($standby, 'postgres', 'tokens', 'wait_time_us'),
	'standby: and less than the total of both');
is(counter($primary, 'postgres', 'tokens', 'wait'), '0', 'the primary counted no wait');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');

# --- reset: only the caller's database ------------------------------------------------------
$primary->safe_psql('other', 'SELECT consistency.stats_reset()');
is(counter($primary, 'other', 'inventory', 'insufficient'), '0', 'reset in other: zero there');
is(counter($primary, 'postgres', 'inventory', 'busy'), '1', 'and postgres keeps its counters');
$primary->safe_psql('other', q{SELECT consistency.reserve('mug', 5, 'y')});

# --- a DROP DATABASE that waited for a rename: the dropped database's counters go -------------
# DROP DATABASE swap_a waits for a transaction that renames swap_a to swap_old and swap_b to
# swap_a; once it commits, the drop finds swap_a again (dropdb() looks the name up again
# after the lock) and drops the former swap_b.  swap_old keeps its counters.
for my $db ('swap_a', 'swap_b')
{
	$primary->safe_psql('postgres', "CREATE DATABASE $db");
	$primary->safe_psql($db, q{CREATE EXTENSION consistency;
		SELECT consistency.stock_set('mug', 1); SELECT consistency.reserve('mug', 5, 'x')});
}
my $renamer = $primary->background_psql('postgres');
$renamer->query_safe('BEGIN; ALTER DATABASE swap_a RENAME TO swap_old; ALTER DATABASE swap_b RENAME TO swap_a');
my $dropper = $primary->background_psql('postgres');
$dropper->query_until(qr/dropping/, "\\echo dropping\nDROP DATABASE swap_a;\n");
$primary->poll_query_until('postgres', q{
	SELECT EXISTS (SELECT FROM pg_stat_activity
				   WHERE wait_event_type = 'Lock' AND query LIKE 'DROP DATABASE swap_a%')})
  or die 'DROP DATABASE does not wait for the rename';
$renamer->query_safe('COMMIT');
$renamer->quit;
$dropper->quit;
is($primary->safe_psql('postgres', q{SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database
	WHERE datname LIKE 'swap%'}), 'swap_old', 'the drop dropped the database renamed to swap_a');
is(counter($primary, 'swap_old', 'inventory', 'insufficient'), '1',
	'the renamed database keeps its counters');
is($primary->safe_psql('postgres', q{SELECT string_agg(DISTINCT datname, ',') FROM consistency.stats
	WHERE datname LIKE 'swap%'}), 'swap_old', 'and only it is listed');
$primary->safe_psql('postgres', 'DROP DATABASE swap_old');

# --- restarts -------------------------------------------------------------------------------
my $before = $primary->safe_psql('postgres', q{
	SELECT string_agg(datname || '.' || capability || '.' || counter || '=' || value, ' '
					  ORDER BY datname, capability, counter)
	  FROM consistency.stats});
my $reset_at = $primary->safe_psql('other', 'SELECT DISTINCT stats_reset FROM consistency.stats WHERE datname = current_database()');
$primary->restart;	# fast shutdown: clean
is($primary->safe_psql('postgres', q{
	SELECT string_agg(datname || '.' || capability || '.' || counter || '=' || value, ' '
					  ORDER BY datname, capability, counter)
	  FROM consistency.stats}), $before, 'every counter survives a clean restart');
is($primary->safe_psql('other', 'SELECT DISTINCT stats_reset FROM consistency.stats WHERE datname = current_database()'),
	$reset_at, 'and so does the reset time');
ok(!-e $primary->data_dir . '/pg_stat/consistency.stat', 'the file is removed once read');
$primary->stop('immediate');
$primary->start;
is($primary->safe_psql('postgres', 'SELECT count(DISTINCT datname) || \' \' || sum(value) FROM consistency.stats'),
	'1 0', 'after a crash (immediate stop) the counters start from zero (only the reader\'s database, at zero)');
$primary->safe_psql('postgres', q{SELECT consistency.reserve('lamp', 1, 'b-3')});
is(counter($primary, 'postgres', 'inventory', 'reserved'), '1', 'and count again');

$standby->stop;
$primary->stop;
done_testing();
