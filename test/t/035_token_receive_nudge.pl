# A standby that waits for WAL it has not received asks its WAL receiver to report to the
# primary, which wakes the primary's walsender (src/token_wait.c, nudge_if_stalled()).
# From PostgreSQL 16 on a walsender can miss the wake-up of a flush and then sleep on WAL the
# primary has, until the standby's next status reply (wal_receiver_status_interval); the
# nudge is that reply, sent at once.  The race itself cannot be forced from outside, so the
# test watches the nudges: a token beyond the primary's WAL, waited for on a standby with
# wal_receiver_status_interval = 60s, makes that standby's replies arrive at the primary
# while it waits:
# - with the library preloaded on the standby (waiters woken by the replay watcher), and the
#   receive_nudge counter counts them, backing off to one a second;
# - without it (waiters poll);
# - not when the WAL is there already and only replay lags (a paused standby): no nudge.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsistencyCluster;

my $primary = start_primary('primary', q{
	CREATE TABLE t (id int PRIMARY KEY);
	-- distinct reply_time values the primary sees from standby NAME over N samples 10 ms apart
	CREATE FUNCTION reply_times(name text, n int) RETURNS int LANGUAGE plpgsql AS $$
	DECLARE
		seen timestamptz[] := '{}';
		t timestamptz;
	BEGIN
		FOR i IN 1..n LOOP
			SELECT reply_time INTO t FROM pg_stat_replication WHERE application_name = name;
			IF t IS NOT NULL AND NOT t = ANY (seen) THEN
				seen := seen || t;
			END IF;
			PERFORM pg_sleep(0.01);
		END LOOP;
		RETURN cardinality(seen);
	END $$;
});

# Standby replies only every 60 s of their own accord; no feedback messages either.
my %standby;
for my $name ('watched', 'polling')
{
	my $s = PostgreSQL::Test::Cluster->new($name);
	$s->init_from_backup($primary, 'base', has_streaming => 1);
	$s->append_conf('postgresql.conf',
		"wal_receiver_status_interval = '60s'\nhot_standby_feedback = off");
	$s->append_conf('postgresql.conf', "shared_preload_libraries = ''") if $name eq 'polling';
	$s->start;
	$standby{$name} = $s;
}
$primary->safe_psql('postgres', 'INSERT INTO t VALUES (1)');
$primary->wait_for_catchup($_, 'replay') for values %standby;

my $sysid = $primary->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');

# A token 16 MB past the primary's WAL: no standby can receive it during the test.
sub future_token
{
	my $lsn = $primary->safe_psql('postgres',
		q{SELECT pg_current_wal_insert_lsn() + 16 * 1024 * 1024});
	return "v1:$sysid:1:$lsn";
}

sub nudges
{
	my ($node) = @_;
	return $node->safe_psql('postgres', q{
		SELECT value FROM consistency.stats
		WHERE capability = 'tokens' AND counter = 'receive_nudge'});
}

# Wait on standby NAME for TOKEN for 10 s in the background; meanwhile count the replies
# the primary sees from it over 5 s.  Nudges come 20, 60, 140, 300, 620 ms into the wait,
# then once a second: any 5 s window that starts in the first 4 s (the sample starts once
# the waiter's psql has echoed and the primary's psql has connected) holds at least 5.
sub replies_while_waiting
{
	my ($name, $token) = @_;
	my $waiter = $standby{$name}->background_psql('postgres');
	$waiter->query_until(qr/waiting/, qq{\\echo waiting
SELECT consistency.wait_for_token('$token', '10 s') AS replayed;
});
	my $replies = $primary->safe_psql('postgres', "SELECT reply_times('$name', 500)");
	$waiter->query_safe('SELECT 1');
	$waiter->quit;
	return $replies;
}

# The control: with nobody waiting, the reply time seen at first, plus at most the replies
# to one WAL record (written, flushed, and the startup process's once it is replayed; the
# bgwriter logs running transactions at most every 15 s), or a keepalive's (every 30 s).
my $idle = $primary->safe_psql('postgres', "SELECT reply_times('watched', 500)");
cmp_ok($idle, '<=', 4, "idle standby: at most 4 distinct reply times in 5 s (saw $idle)");

my $before = nudges($standby{watched});
my $replies = replies_while_waiting('watched', future_token());
cmp_ok($replies, '>=', 6,
	"preloaded standby waiting on WAL it has not received: its replies reach the primary ($replies distinct reply times in 5 s)");
my $after = nudges($standby{watched});
cmp_ok($after - $before, '>=', 5, 'and receive_nudge counts the nudges (' . ($after - $before) . ')');
# 14 in 10 s, and 5 more each time WAL arrives meanwhile (the schedule starts again at 20 ms);
# without the back-off, 500.
cmp_ok($after - $before, '<=', 40,
	'backing off to one a second: at most 40 nudges in a 10 s wait (' . ($after - $before) . ')');

$replies = replies_while_waiting('polling', future_token());
cmp_ok($replies, '>=', 6,
	"standby without the library preloaded (waiters poll): replies reach the primary ($replies in 5 s)");

# Received but not replayed: the WAL is here, nudging would not help.
$standby{watched}->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$standby{watched}->poll_query_until('postgres',
	q{SELECT pg_get_wal_replay_pause_state() = 'paused'})
  or die 'not paused';
my $token = $primary->safe_psql('postgres',
	'INSERT INTO t VALUES (2); SELECT consistency.write_token()');
$primary->wait_for_catchup($standby{watched}, 'write');
$before = nudges($standby{watched});
is($standby{watched}->safe_psql('postgres',
		"SELECT consistency.wait_for_token('$token', '1 s')"),
	'f', 'paused standby: the wait times out');
is(nudges($standby{watched}) - $before, 0, 'and nothing was nudged: the WAL had been received');
$standby{watched}->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
is($standby{watched}->safe_psql('postgres',
		"SELECT consistency.wait_for_token('$token', '10 s')"),
	't', 'resumed: the token is replayed');

done_testing();
