# examples/read_your_writes/ryw.py (psycopg 3) against a throwaway primary (library
# preloaded) and streaming standby: the token arrives as a ParameterStatus, no read is stale,
# the standby serves reads; with its replay paused the read goes to the primary (and a
# standby read without the token would have been stale); after resuming, the standby again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use lib $ENV{TESTDIR} . '/test/t';
use ConsistencyCluster;

my $primary = start_primary('ryw_primary', q{
	CREATE ROLE app LOGIN;
	GRANT consistency_user TO app;
	GRANT CREATE ON SCHEMA public TO app;
});
my ($standby) = start_standbys($primary, 'ryw_standby');

my $conninfo = sub {
	my ($node, $user) = @_;
	return sprintf('host=%s port=%d dbname=postgres user=%s', $node->host, $node->port, $user);
};
my ($out, $err) = ('', '');
my $ok = IPC::Run::run([ '/usr/bin/python3', "$ENV{TESTDIR}/examples/read_your_writes/ryw.py",
	'--primary', $conninfo->($primary, 'app'), '--standby', $conninfo->($standby, 'app'),
	'--standby-admin', $conninfo->($standby, scalar getpwuid($<)) ],
	'>', \$out, '2>', \$err);
note($out);
diag($err) if $err ne '';
ok($ok, 'the example exits 0');
for my $c ('the commit\'s token arrives as a ParameterStatus', 'no read is stale',
	'the standby serves reads', 'a standby behind the token sends the read to the primary',
	'the primary\'s answer has the write',
	'a read on the standby without the token would have been stale',
	'once replay resumes the standby serves the read again')
{
	like($out, qr/^ok \Q$c\E$/m, "example: $c");
}
unlike($out, qr/^not ok/m, 'the example reports no failed check');
is($standby->safe_psql('postgres', 'SELECT pg_is_wal_replay_paused()'), 'f',
	'the example left replay running');

$standby->stop;
$primary->stop;
done_testing();
