# The C router (src/client/, driven by test/router_example) on a primary and two streaming
# standbys, one delayed (recovery_min_apply_delay) and one paused:
# - 10,000 write -> read cycles: zero stale reads;
# - while the paused standby is paused, no standby is ready and every read goes to the
#   primary; once it resumes, every read is served by it (waiting within the budget),
#   and the delayed standby is never used;
# - tokens come from the ParameterStatus message (no extra query per write);
# - libpq pipeline mode: three pipelined write transactions, the token reported before
#   the last ReadyForQuery equals write_token(), and a routed read sees the last write.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsistencyCluster;

my $example = "$ENV{TESTDIR}/test/router_example";
-x $example or BAIL_OUT("$example is not built");

my $primary = start_primary('primary', q{
	CREATE TABLE rw_counter (id int PRIMARY KEY, v bigint NOT NULL);
	INSERT INTO rw_counter VALUES (1, 0);
});
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

$delayed->stop;
$paused->stop;
$primary->stop;
done_testing();
