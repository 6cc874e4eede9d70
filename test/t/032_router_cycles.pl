# The C router (src/client/, driven by test/router_example) on a primary and two streaming
# standbys, one delayed (recovery_min_apply_delay) and one paused:
# - 10,000 write -> read cycles: zero stale reads;
# - while the paused standby is paused, no standby is ready and every read goes to the
#   primary; once it resumes, every read is served by it (waiting within the budget),
#   and the delayed standby is never used;
# - tokens come from the ParameterStatus message (no extra query per write);
# - libpq pipeline mode: three pipelined write transactions, the token reported before
#   the last ReadyForQuery equals write_token(), and a routed read sees the last write;
# - a write that commits and then fails (a procedure's COMMIT, then an error) still moves
#   the token: a standby paused before it does not answer the next read;
# - on a primary that does not preload the library: when the token of an acknowledged write
#   cannot be read (write_token() not executable), or a failed write may have committed,
#   reads go to the primary (crouter_error() says why) until a later write's token arrives;
# - another cluster's token is refused by a router that knows its primary's cluster; one
#   merged before the router knew it is replaced by the primary's own token, or dropped at the
#   first reconnection; after a failover the router reconnects once, not at every call.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsistencyCluster;
use RouterSteps;

my $example = "$ENV{TESTDIR}/test/router_example";
-x $example or BAIL_OUT("$example is not built");

# rw_items and commit_then_fail(): a write that commits, then fails.
my $items_sql = q{
	CREATE TABLE rw_items (id int PRIMARY KEY);
	CREATE PROCEDURE commit_then_fail(i int) LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO rw_items VALUES (i);
		COMMIT;
		RAISE EXCEPTION 'failed after its commit';
	END $$;
};
my $primary = start_primary('primary', q{
	CREATE TABLE rw_counter (id int PRIMARY KEY, v bigint NOT NULL);
	INSERT INTO rw_counter VALUES (1, 0);
} . $items_sql);
my $delayed = PostgreSQL::Test::Cluster->new('delayed');
$delayed->init_from_backup($primary, 'base', has_streaming => 1);
$delayed->start;
my $paused = PostgreSQL::Test::Cluster->new('paused');
$paused->init_from_backup($primary, 'base', has_streaming => 1);
$paused->start;
$primary->wait_for_catchup($_, 'replay') for ($delayed, $paused);

$delayed->append_conf('postgresql.conf', "recovery_min_apply_delay = '1h'");
$delayed->reload;
$delayed->poll_query_until('postgres', q{SELECT current_setting('recovery_min_apply_delay') = '1h'})
  or die 'delay not applied';
$paused->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$paused->poll_query_until('postgres', q{SELECT pg_get_wal_replay_pause_state() = 'paused'})
  or die 'not paused';

my @args = ('--primary', $primary->connstr('postgres'),
	'--standby', $delayed->connstr('postgres'),
	'--standby', $paused->connstr('postgres'));

sub run_example
{
	my @cmd = ($example, @args, @_);
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(\@cmd, '>', \$stdout, '2>', \$stderr);
	diag($stderr) if $stderr ne '';
	return ($ok, $stdout);
}

sub pause_replay
{
	my ($standby) = @_;
	$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
	$standby->poll_query_until('postgres', q{SELECT pg_get_wal_replay_pause_state() = 'paused'})
	  or die 'not paused';
}

sub field
{
	my ($line, $name) = @_;
	return $line =~ /\b$name=(\d+)/ ? $1 : undef;
}

# Phase 1: both standbys unusable for fresh tokens.
my ($ok, $out) = run_example('--cycles', 2000, '--budget-ms', 0);
ok($ok, 'phase 1: the example ran (exit 0 means no stale and no failed read)');
note($out);
is(field($out, 'stale'), 0, 'phase 1: zero stale reads in 2000 cycles');
is(field($out, 'failed'), 0, 'phase 1: no failed read');
is(field($out, 'primary'), 2000, 'phase 1: no standby was ready, every read went to the primary');
is(field($out, 'tokens_from_parameter_status'), 2000, 'phase 1: every token came from ParameterStatus');
is(field($out, 'tokens_from_query'), 0, 'phase 1: no extra query for the token');

# Phase 2: the paused standby resumes; with a wait budget it serves every read.
$paused->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
($ok, $out) = run_example('--cycles', 8000, '--budget-ms', 5000);
ok($ok, 'phase 2: the example ran');
note($out);
is(field($out, 'stale'), 0, 'phase 2: zero stale reads in 8000 cycles');
is(field($out, 'failed'), 0, 'phase 2: no failed read');
is(field($out, 'standby1'), 8000, 'phase 2: every read was served by the resumed standby');
is(field($out, 'standby0'), 0, 'phase 2: the delayed standby never served a read');
is(field($out, 'primary'), 0, 'phase 2: no read needed the primary');
# For the log: how the resumed standby's waits went (a nudge means its WAL receiver had to
# wake the primary's walsender, see 035_token_receive_nudge.pl).
note($paused->safe_psql('postgres', q{
	SELECT string_agg(counter || '=' || value, ' ' ORDER BY counter) FROM consistency.stats
	WHERE datname = 'postgres' AND capability = 'tokens'}));

# The delayed standby is still behind: reads with a fresh token never went there.
my $token = $primary->safe_psql('postgres',
	'UPDATE rw_counter SET v = v WHERE id = 1; SELECT consistency.write_token()');
is($delayed->safe_psql('postgres', "SELECT consistency.token_status('$token')"),
	'behind', 'the delayed standby is indeed behind');

# Pipeline mode.
($ok, $out) = run_example('--pipeline', '--budget-ms', 5000);
ok($ok, 'pipeline mode: token reported, equal to write_token(), routed read sees the last write');
like($out, qr/^pipeline ok token=v1:\d+:1:[0-9A-F]+\/[0-9A-F]+ value=1003 served_by=standby$/m,
	'pipeline mode: the read was served by a standby');

my $sysid = $primary->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
my $foreign = 'v1:1:1:0/0';	# a token of another cluster (system identifier 1)

# A write that commits, then fails: the server reported the commit's token with the error.
# The paused standby has replayed the router's previous token, not the procedure's commit.
my $r = start_steps('--primary', $primary->connstr('postgres'), '--standby', $paused->connstr('postgres'));
like($r->{connect}, qr/^connect ok=1 /, 'steps: the router connected');
my $line = step($r, 'write INSERT INTO rw_items VALUES (1)');
like($line, qr/^write ok token=v1:$sysid:1:/, 'a write: its token');
my ($before) = $line =~ /token=(\S+)/;
$primary->wait_for_catchup($paused, 'replay');
pause_replay($paused);
$line = step($r, 'write CALL commit_then_fail(2)');
like($line, qr/^write error P0001 token=v1:$sysid:1:/, 'the procedure committed its insert, then failed');
my ($after) = $line =~ /token=(\S+)/;
isnt($after, $before, "and the router's token moved to its commit");
is(step($r, 'read SELECT count(*) FROM rw_items WHERE id = 2'), 'read ok 1 served_by=p',
	'the read sees the committed insert: the paused standby refuses the token, the primary answers');
finish_steps($r);
$paused->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');

# A primary that does not preload the library: the router asks write_token() after a write.
my $plain = PostgreSQL::Test::Cluster->new('plain_primary');
$plain->init(allows_streaming => 1);
$plain->append_conf('postgresql.conf',
	"shared_preload_libraries = ''\nsession_preload_libraries = ''\nlocal_preload_libraries = ''");
$plain->start;
$plain->safe_psql('postgres', qq{
	CREATE EXTENSION consistency;
	$items_sql
	CREATE ROLE app LOGIN;
	GRANT consistency_user TO app;
	GRANT SELECT, INSERT ON rw_items TO app;
});
$plain->backup('plain_base');
my $plain_standby = PostgreSQL::Test::Cluster->new('plain_standby');
$plain_standby->init_from_backup($plain, 'plain_base', has_streaming => 1);
$plain_standby->start;
$plain->wait_for_catchup($plain_standby, 'replay');
my @plain_args = ('--primary', $plain->connstr('postgres') . ' user=app',
	'--standby', $plain_standby->connstr('postgres') . ' user=app');

# The token of an acknowledged write cannot be read: write_token() is not executable.
$r = start_steps(@plain_args);
like($r->{connect}, qr/^connect ok=1 /, 'not preloaded: the router connected');
pause_replay($plain_standby);
$plain->safe_psql('postgres', 'REVOKE EXECUTE ON FUNCTION consistency.write_token() FROM consistency_user');
is(step($r, 'write INSERT INTO rw_items VALUES (1)'), 'write ok token=-',
	'not preloaded: the write is acknowledged, its token cannot be read');
is(step($r, 'read SELECT count(*) FROM rw_items WHERE id = 1'), 'read ok 1 served_by=p',
	'the read is not sent to the standby without a token covering the write: the primary answers');
like(step($r, 'state'), qr/error=primary: cannot read the token of an acknowledged write .*permission denied for function write_token/,
	'crouter_error() says why');
$plain->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION consistency.write_token() TO consistency_user');
like(step($r, 'write INSERT INTO rw_items VALUES (2)'), qr/^write ok token=v1:/, 'a later write: its token again');
$plain_standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$plain->wait_for_catchup($plain_standby, 'replay');
is(step($r, 'read SELECT count(*) FROM rw_items WHERE id IN (1, 2)'), 'read ok 2 served_by=0',
	'and once a token covers the writes, the standby that replayed it answers again');
finish_steps($r);

# A write that commits, then fails, in a session that reports no token (nothing loaded the
# library in it yet): the router cannot know what it committed.
pause_replay($plain_standby);
$r = start_steps(@plain_args);
like(step($r, 'write CALL commit_then_fail(3)'), qr/^write error P0001 token=-$/,
	'not preloaded: the procedure committed, then failed');
is(step($r, 'read SELECT count(*) FROM rw_items WHERE id = 3'), 'read ok 1 served_by=p',
	'the read sees the committed insert: the primary answers, not the paused standby');
like(step($r, 'state'), qr/error=primary: a failed write may have committed before it failed/,
	'crouter_error() says why');
finish_steps($r);
$plain_standby->stop;
$plain->stop;

# Another cluster's token: refused once the router knows its primary's cluster.
$r = start_steps('--primary', $primary->connstr('postgres'));
is(step($r, "merge $foreign"), 'merge rc=-1 token=-', "a fresh router refuses another cluster's token");
is(step($r, "merge v1:$sysid:1:0/0"), "merge rc=0 token=v1:$sysid:1:0/0", "and takes its own cluster's");
finish_steps($r);

# A router that cannot read its primary's system identifier (pg_control_system() revoked,
# no right on the extension) keeps a token merged before it knows the cluster, until the
# primary reports its own: that replaces it.
$primary->safe_psql('postgres', q{
	CREATE ROLE nosys LOGIN;
	GRANT INSERT ON rw_items TO nosys;
	REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC;
});
$r = start_steps('--primary', $primary->connstr('postgres') . ' user=nosys');
like($r->{connect}, qr/^connect ok=1 error=primary: cannot read its system identifier/,
	'a router that cannot read the system identifier');
is(step($r, "merge $foreign"), "merge rc=0 token=$foreign", 'keeps a token merged before it knows the cluster');
like(step($r, 'write INSERT INTO rw_items VALUES (30)'), qr/^write ok token=v1:$sysid:1:/,
	"the primary's own token replaces it at the next write");
like(step($r, 'state'), qr/error=token \Q$foreign\E is from another cluster than the primary's; replaced/,
	'crouter_error() says so');
finish_steps($r);
$primary->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC');

# A failover: the paused standby (replaying again) is promoted.  Router b was connected
# before (it knows the cluster); router a connects while there is no primary, and is given
# another cluster's token then.
my $nodes = sprintf('host=%s,%s port=%d,%d dbname=postgres target_session_attrs=read-write',
	$primary->host, $paused->host, $primary->port, $paused->port);
my @follow = ('--primary', $nodes, '--standby', $paused->connstr('postgres'), '--failover-ms', 60000);
my $rb = start_steps(@follow);
like($rb->{connect}, qr/^connect ok=1 /, 'failover: router b connected');
is(step($rb, "merge $foreign"), 'merge rc=-1 token=-', "router b refuses another cluster's token");
like(step($rb, 'write INSERT INTO rw_items VALUES (40)'), qr/^write ok token=v1:$sysid:1:/, 'router b wrote');
$primary->wait_for_catchup($paused, 'replay');
$primary->stop;
my $ra = start_steps(@follow);
like($ra->{connect}, qr/^connect ok=0 /, 'router a connected while there is no primary');
is(step($ra, "merge $foreign"), "merge rc=0 token=$foreign",
	"router a keeps another cluster's token: it does not know the cluster yet");
$paused->promote;
$paused->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'not promoted';

like(step($ra, 'write INSERT INTO rw_items VALUES (41)'), qr/^write ok token=v1:$sysid:2:/,
	'router a reached the new primary; its token is of the new timeline');
like(step($ra, 'state'), qr/ reconnects=1 lost_writes=0 error=token \Q$foreign\E is from another cluster than the primary's; dropped/,
	"router a dropped the other cluster's token at the reconnection, and did not count it a lost write");
like(step($rb, 'write INSERT INTO rw_items VALUES (42)'), qr/^write error /,
	"router b's write on the stopped primary's connection fails (its outcome is unknown)");
my %router = (a => $ra, b => $rb);
my $id = 100;
for my $round (1 .. 3)
{
	for my $name ('a', 'b')
	{
		$id++;
		like(step($router{$name}, "write INSERT INTO rw_items VALUES ($id)"), qr/^write ok token=v1:$sysid:2:/,
			"router $name: write $id on the new primary");
		like(step($router{$name}, "read SELECT count(*) FROM rw_items WHERE id = $id"), qr/^read ok 1 /,
			"router $name: and read it back");
	}
}
like(step($ra, 'state'), qr/ reconnects=1 lost_writes=0 /, 'router a reconnected once, not at every call');
like(step($rb, 'state'), qr/ reconnects=1 lost_writes=0 /, 'so did router b, and it lost no write');
finish_steps($_) for ($ra, $rb);

$delayed->stop;
$paused->stop;
done_testing();
