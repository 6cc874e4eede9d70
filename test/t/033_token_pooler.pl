# Session LSN tokens behind a transaction pooler (pgbouncer, pool_mode = transaction) in
# front of a primary and two streaming standbys, and the Python example:
# - the documented pooler pattern gives read-your-writes: the write and
#   write_token() go in one message ("BEGIN; ...; COMMIT; SELECT consistency.write_token()"),
#   so they run on the same server connection; the read sets the token with SET LOCAL inside
#   its transaction, so it neither waits with a snapshot nor leaks to the next client;
# - pgbouncer 1.18 forwards the consistency.last_commit_token ParameterStatus of the server
#   connection that ran the client's transaction: writes with the reported token are read
#   back through the pooler with zero stale reads;
# - libpq pipeline mode through the pooler: the reported token is right;
# - the Python example (test/router_example.py, python3-psycopg) reads its writes.
# pgbouncer listens on 127.0.0.1 only and is started here as the unprivileged test user.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsistencyCluster;
use IPC::Run;

my $pgbouncer = (grep { -x $_ } ('/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'))[0];
BAIL_OUT('pgbouncer is not installed (scripts/lib/common.sh PACKAGES has it)') unless $pgbouncer;
my $python = (grep { -x $_ } ('/usr/bin/python3'))[0] // 'python3';

my $primary = start_primary('primary', q{
	CREATE TABLE rw_counter (id int PRIMARY KEY, v bigint NOT NULL);
	INSERT INTO rw_counter VALUES (1, 0);
});
my @standbys = start_standbys($primary, 'standby_1', 'standby_2');
$primary->wait_for_catchup($_, 'replay') for @standbys;

# --- pgbouncer ------------------------------------------------------------------------
my $dir = PostgreSQL::Test::Utils::tempdir();
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $user = getpwuid($<);
my $ini = "$dir/pgbouncer.ini";
open(my $fh, '>', $ini) or die $!;
printf $fh <<'INI', $primary->host, $primary->port, $standbys[0]->host, $standbys[0]->port, $port, $dir, $dir, $dir;
[databases]
rw = host=%s port=%d dbname=postgres
ro = host=%s port=%d dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/users.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 100
server_reset_query =
server_round_robin = 0
logfile = %s/pgbouncer.log
pidfile = %s/pgbouncer.pid
INI
close($fh);
open($fh, '>', "$dir/users.txt") or die $!;
print $fh qq{"$user" ""\n};
close($fh);
# (its output goes to a file: an unread pipe would fill up and block pgbouncer)
my $bouncer = IPC::Run::start([ $pgbouncer, $ini ], '>', "$dir/pgbouncer.out", '2>&1');

sub via_bouncer
{
	my ($db, $sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-Atq', '-v', 'VERBOSITY=verbose', '-h', '127.0.0.1',
			'-p', $port, '-U', $user, '-d', $db, '-c', $sql ], '>', \$out, '2>', \$err);
	chomp $out;
	return ($out, $err);
}
my $up = 0;
for (1 .. 100)
{
	my ($out) = via_bouncer('rw', 'SELECT 1');
	if ($out eq '1') { $up = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($up, "pgbouncer in transaction mode is up on 127.0.0.1:$port")
  or diag(slurp_file("$dir/pgbouncer.out"));

# The pattern, 300 times, with a concurrent client churning the pooled connections.
my $noise = IPC::Run::start([ 'psql', '-X', '-q', '-h', '127.0.0.1', '-p', $port, '-U', $user,
		'-d', 'rw', '-c', q{DO $$ BEGIN FOR i IN 1..400 LOOP UPDATE rw_counter SET v = v WHERE id = 1; PERFORM pg_sleep(0.005); COMMIT; END LOOP; END $$} ],
	'>', "$dir/noise.out", '2>&1');
my ($stale, $failed, $tokens_seen) = (0, 0, 0);
my %tokens;
for my $i (1 .. 300)
{
	my ($token, $err) = via_bouncer('rw',
		"BEGIN; UPDATE rw_counter SET v = $i WHERE id = 1; COMMIT; SELECT consistency.write_token();");
	if ($token !~ m{^v1:\d+:1:[0-9A-F]+/[0-9A-F]+$}) { $failed++; diag("write $i: $err"); next; }
	$tokens{$token} = 1;
	my ($v, $rerr) = via_bouncer('ro',
		"BEGIN; SET LOCAL consistency.read_after_timeout = '10s'; SET LOCAL consistency.read_after = '$token'; SELECT v FROM rw_counter WHERE id = 1; COMMIT;");
	if ($v eq '') { $failed++; diag("read $i: $rerr"); next; }
	$stale++ if $v != $i;
}
$noise->finish;
is($failed, 0, 'pooler pattern: every write returned a token and every read answered');
is($stale, 0, 'pooler pattern: zero stale reads in 300 write -> read cycles through pgbouncer');
is(scalar(keys %tokens), 300, 'every write got its own token');

# SET LOCAL does not leak into the next client's transaction on the same server connection.
my ($leak) = via_bouncer('ro', q{SELECT current_setting('consistency.read_after')});
is($leak, '', 'SET LOCAL read_after does not leak to the next pooled transaction');

# pgbouncer 1.18 forwards the ParameterStatus of the server connection that ran the
# client's transaction, so the token reported with the commit is the client's own:
# 200 writes through the pooler with the reported token, each read back through the pooler
# (SET LOCAL) while another client churns the pooled connections.
$noise = IPC::Run::start([ 'psql', '-X', '-q', '-h', '127.0.0.1', '-p', $port, '-U', $user,
		'-d', 'rw', '-c', q{DO $$ BEGIN FOR i IN 1..200 LOOP UPDATE rw_counter SET v = v WHERE id = 1; PERFORM pg_sleep(0.005); COMMIT; END LOOP; END $$} ],
	'>', "$dir/noise2.out", '2>&1');
my ($ps_out, $ps_err) = ('', '');
IPC::Run::run([ $python, '-c', qq{
import psycopg
from psycopg import sql
rw = psycopg.connect("host=127.0.0.1 port=$port user=$user dbname=rw", autocommit=True, prepare_threshold=None)
ro = psycopg.connect("host=127.0.0.1 port=$port user=$user dbname=ro", autocommit=True, prepare_threshold=None)
stale = missing = 0
for i in range(1, 201):
    rw.execute("UPDATE rw_counter SET v = %s WHERE id = 1", (i,))
    token = rw.info.parameter_status("consistency.last_commit_token")
    if not token:
        missing += 1
        continue
    with ro.transaction():
        ro.execute(sql.SQL("SET LOCAL consistency.read_after_timeout = '10s'; SET LOCAL consistency.read_after = {}").format(sql.Literal(token)))
        v = ro.execute("SELECT v FROM rw_counter WHERE id = 1").fetchone()[0]
    stale += v != i
print(f"missing={missing} stale={stale}")
} ], '>', \$ps_out, '2>', \$ps_err);
$noise->finish;
chomp $ps_out;
is($ps_out, 'missing=0 stale=0',
	'ParameterStatus through pgbouncer: every write reported its token, zero stale reads in 200 cycles')
  or diag($ps_err);

# libpq pipeline mode through pgbouncer: three pipelined write transactions, the token
# reported before the last ReadyForQuery equals write_token() (asked next, alone: with
# server_round_robin = 0 pgbouncer reuses the server connection that ran the last write),
# and a routed read (standby connected directly) sees the last write.
my ($pl_out, $pl_err) = ('', '');
my $pl_ok = IPC::Run::run([ "$ENV{TESTDIR}/test/router_example", '--pipeline', '--budget-ms', 5000,
		'--primary', "host=127.0.0.1 port=$port user=$user dbname=rw",
		'--standby', $standbys[0]->connstr('postgres') ], '>', \$pl_out, '2>', \$pl_err);
ok($pl_ok, 'pipeline mode through pgbouncer: token reported and equal to write_token()')
  or diag($pl_err);
like($pl_out, qr/^pipeline ok token=v1:\d+:1:\S+ value=1003 served_by=standby$/m,
	'pipeline mode through pgbouncer: the standby read sees the last pipelined write');

$bouncer->signal('TERM');
$bouncer->finish;

# --- the Python example, directly against the servers ------------------------------------
my ($py_out, $py_err) = ('', '');
my $py_ok = IPC::Run::run([ $python, "$ENV{TESTDIR}/test/router_example.py",
		'--primary', $primary->connstr('postgres'),
		(map { ('--standby', $_->connstr('postgres')) } @standbys),
		'--cycles', 300 ], '>', \$py_out, '2>', \$py_err);
chomp $py_out;
ok($py_ok, 'Python example ran') or diag($py_err);
like($py_out, qr/^cycles=300 stale=0 primary=\d+ standby=\d+$/, "Python example: zero stale reads ($py_out)");
my ($py_standby) = $py_out =~ /standby=(\d+)/;
cmp_ok($py_standby // 0, '>', 0, 'Python example: standbys served reads');

$_->stop for @standbys;
$primary->stop;
done_testing();
