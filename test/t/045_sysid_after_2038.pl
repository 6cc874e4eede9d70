# A cluster initdb'd after January 2038 has a system identifier of 2^63 or more (initdb makes
# it from the time of day: seconds << 32), which pg_control_system() shows as a negative
# bigint while tokens and gids carry it unsigned.  Here initdb runs under libfaketime as if
# on 2040-01-01, and every place the identifier goes is checked on that cluster:
# - tokens: write_token(), token_status(), wait_for_token(), and the C router (its token, a
#   merged token, a routed read);
# - two-phase commit coordinated there: the verdict of a prepared transaction of the same
#   cluster (resolve_stale() commits it), and pg_consistency resolve --decisions-from it on a
#   participant cluster, which commits the participant's transaction.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use RouterSteps;

my $faketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
-e $faketime or BAIL_OUT("$faketime is missing: install Debian's faketime (scripts/test.sh does)");

my $coord = PostgreSQL::Test::Cluster->new('coord2040');
{
	local $ENV{LD_PRELOAD} = $faketime;
	local $ENV{FAKETIME} = '@2040-01-01 00:00:00';
	$coord->init(extra => []);		# (extra: a real initdb, never a copied template)
}
$coord->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
$coord->start;
$coord->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
	INSERT INTO t VALUES (1, 0);
});
my $signed = $coord->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
ok($signed < 0, "the system identifier is 2^63 or more (shown as $signed)");
my $sysid = $coord->safe_psql('postgres', "SELECT (${signed}::numeric + 18446744073709551616)::text");

# Tokens.
my $token = $coord->safe_psql('postgres',
	'UPDATE t SET v = 1 WHERE id = 1; SELECT consistency.write_token()');
like($token, qr/^v1:\Q$sysid\E:1:[0-9A-F]+\/[0-9A-F]+$/, 'write_token() carries it unsigned');
is($coord->safe_psql('postgres', "SELECT consistency.token_status('$token')"), 'primary',
	'token_status(): the primary has it');
is($coord->safe_psql('postgres', "SELECT consistency.wait_for_token('$token', '0')"), 't',
	'wait_for_token(): at once');
my $r = start_steps('--primary', $coord->connstr('postgres'));
like($r->{connect}, qr/^connect ok=1 error=-$/, 'the router knows the cluster');
like(step($r, 'write UPDATE public.t SET v = 2 WHERE id = 1'), qr/^write ok token=v1:\Q$sysid\E:1:/,
	'its token names it');
is(step($r, "merge $token"), 'merge rc=0 token=' . (step($r, 'state') =~ /token=(\S+)/)[0],
	"it takes a token of that cluster (the later one wins)");
is(step($r, 'read SELECT v FROM public.t WHERE id = 1'), 'read ok 2 served_by=p', 'and reads');
finish_steps($r);

# Two-phase commit coordinated on this cluster, participant on the same cluster.
my $gid = $coord->safe_psql('postgres', q{
	BEGIN;
	SELECT consistency.tpc_gid() \gset
	SELECT consistency.tpc_log_decision(:'tpc_gid');
	COMMIT;
	SELECT :'tpc_gid';
});
$gid =~ s/^\s+//;		# (the empty line \gset leaves)
like($gid, qr/^cy2:\Q$sysid\E:/, 'tpc_gid() carries it unsigned');
$coord->safe_psql('postgres', "BEGIN; UPDATE t SET v = 3 WHERE id = 1; PREPARE TRANSACTION '$gid'");
like($coord->safe_psql('postgres', "SELECT verdict || ': ' || evidence FROM consistency.prepared_xacts() WHERE gid = '$gid'"),
	qr/^commit: /, 'prepared_xacts(): the verdict comes from the decision log');
is($coord->safe_psql('postgres', "SELECT outcome FROM consistency.resolve_stale('0', dry_run => false) WHERE gid = '$gid'"),
	'committed', 'resolve_stale() commits it');
is($coord->safe_psql('postgres', 'SELECT v FROM t'), '3', 'its update is there');

# A participant in another cluster, resolved by pg_consistency --decisions-from this one.
my $part = PostgreSQL::Test::Cluster->new('participant');
$part->init;
$part->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
$part->start;
$part->safe_psql('postgres', 'CREATE EXTENSION consistency; CREATE TABLE p (i int)');
my $coord_session = $coord->background_psql('postgres');
$coord_session->query_safe('BEGIN');
my $xgid = $coord_session->query_safe('SELECT consistency.tpc_gid()');
$part->safe_psql('postgres', "BEGIN; INSERT INTO p VALUES (1); PREPARE TRANSACTION '$xgid'");
$coord_session->query_safe("SELECT consistency.tpc_log_decision('$xgid')");
$coord_session->query_safe('COMMIT');
$coord_session->quit;
my ($out, $err) = ('', '');
IPC::Run::run(['pg_consistency', 'resolve', '--execute', '--older-than', '0',
		'--decisions-from', $coord->connstr('postgres'), $part->connstr('postgres')], '>', \$out, '2>', \$err);
is($? >> 8, 0, 'pg_consistency resolve --decisions-from: nothing left in doubt') or diag($out . $err);
like($out, qr/^\Q$xgid\E\s+postgres\s+commit\s+t\s+committed\s+coordinator logged decision commit/m,
	'it read the decision on the coordinator and committed');
is($part->safe_psql('postgres', 'SELECT count(*) FROM p'), '1', "the participant's insert is there");

$part->stop;
$coord->stop;
done_testing();
