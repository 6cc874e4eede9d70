# In-doubt two-phase commit: the resolver's log writer, and what may keep it from writing.
# - settings of the calling role (ALTER ROLE ... SET) reach the resolver's workers as they
#   connect; none keeps the log writer from recording an action: lock_timeout, and
#   transaction_timeout (PostgreSQL 17 and later), with the log writer waiting for the log's
#   lock (sql/twophase.sql has a read-only default);
# - pg_consistency --decisions-from does not take a gid whose xid8 has a non-normal 32-bit
#   xid (2^32 + 1 is the bootstrap transaction's, which pg_xact_status() calls committed) for
#   a gid of tpc_gid(): its verdict is unknown, not presumed abort;
# - once the log writer has exited, no other database's action is started: a worker waits for
#   a synchronous standby in db1 while the log writer is terminated; db2's transaction is left
#   prepared and reported failed (YC406), not committed unrecorded.
use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SyncRepStall;

my $node = PostgreSQL::Test::Cluster->new('tpc_log_writer');
$node->init(allows_streaming => 1);		# max_wal_senders > 0: synchronous commit can wait
$node->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE DATABASE ops; CREATE DATABASE db1; CREATE DATABASE db2;
	CREATE ROLE alice LOGIN;
});
$node->safe_psql('ops', q{
	CREATE EXTENSION consistency;
	GRANT consistency_admin TO alice;
});
for my $db ('db1', 'db2')
{
	$node->safe_psql($db, q{
		CREATE TABLE stock (item text PRIMARY KEY, qty int NOT NULL);
		INSERT INTO stock VALUES ('apple', 10), ('pear', 10);
		GRANT ALL ON stock TO alice;
	});
}
my $v17 = $node->safe_psql('postgres', 'SHOW server_version_num') >= 170000;

# alice prepares a transaction under $gid in $db.
sub prepare_as_alice
{
	my ($db, $gid, $item) = @_;
	$node->safe_psql($db, qq{
		SET ROLE alice;
		BEGIN;
		UPDATE stock SET qty = qty - 1 WHERE item = '$item';
		PREPARE TRANSACTION '$gid';
	});
}

# Start psql as alice in ops running @sql (one -c each); returns the harness and its outputs.
sub start_alice
{
	my (@sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-U', 'alice',
		  '-d', $node->connstr('ops'), map { ('-c', $_) } @sql ],
		'>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# Settings of the calling role.  The log writer must wait for the log's lock (another session
# holds it); with the role's lock_timeout or transaction_timeout it would give up, and the
# action, taken in db1 meanwhile, would go unrecorded.  The caller's own session resets them.
my @settings = ([ 'lock_timeout', '10ms' ]);
push @settings, [ 'transaction_timeout', '100ms' ] if $v17;
my $n = 0;
for my $s (@settings)
{
	my ($name, $value) = @$s;
	my $gid = 'cy1:1:1:' . (2000 + $n++);	# another cluster's coordinator: the caller decides
	prepare_as_alice('db1', $gid, 'pear');
	$node->safe_psql('postgres', "ALTER ROLE alice SET $name = '$value'");
	my $locker = $node->background_psql('ops');
	$locker->query_safe('BEGIN');
	$locker->query_safe('LOCK TABLE consistency.tpc_resolution_log IN SHARE MODE');
	my ($h, $out, $err) = start_alice("SET $name = 0",
		"SELECT planned || ' ' || outcome FROM consistency.resolve_prepared('$gid', 'rollback', dry_run => false)");
	# Until the log writer waits for the lock, or the caller is done (the log writer gave up).
	my $seen = '';
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		$seen = 'waits' if $node->safe_psql('ops',
			q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'consistency resolver'
			   AND datname = 'ops' AND wait_event_type = 'Lock'}) eq '1';
		$h->pump_nb;
		$seen = 'done' if $seen eq '' && !$h->pumpable;
		last if $seen ne '';
		usleep(100_000);
	}
	$locker->query_safe('COMMIT');
	$locker->quit;
	$h->finish;
	is($seen, 'waits', "role $name: the log writer waits for the log's lock");
	is($$out, "rollback rolled_back\n", "role $name: the transaction is rolled back");
	unlike($$err, qr/WARNING/, "role $name: no warning") or diag($$err);
	is( $node->safe_psql('ops',
			"SELECT action || ' ' || outcome FROM consistency.tpc_resolution_log WHERE gid = '$gid'"),
		'rollback rolled_back', "role $name: the action is logged");
	$node->safe_psql('postgres', "ALTER ROLE alice RESET $name");
}

# pg_consistency --decisions-from: gids of this cluster and database whose xid8 has a
# non-normal 32-bit xid (2^32 + 1: bootstrap, 2: frozen) were not made by tpc_gid().
my $sysid = $node->safe_psql('ops', 'SELECT system_identifier FROM pg_control_system()');
my $ops_oid = $node->safe_psql('ops', q{SELECT oid FROM pg_database WHERE datname = 'ops'});
my @nonnormal = map { "cy2:$sysid:$ops_oid:$_:0123456789abcdef" } ('4294967297', '2');
for my $i (0 .. $#nonnormal)
{
	$node->safe_psql('ops', "BEGIN; SELECT pg_advisory_xact_lock($i); PREPARE TRANSACTION '$nonnormal[$i]'");
}
my ($cli_out, $cli_err) = ('', '');
IPC::Run::run([ 'pg_consistency', 'in-doubt', '--decisions-from', $node->connstr('ops'), $node->connstr('ops') ],
	'>', \$cli_out, '2>', \$cli_err);
is($? >> 8, 0, 'pg_consistency in-doubt --decisions-from exits 0') or diag($cli_err);
for my $gid (@nonnormal)
{
	like($cli_out, qr/^\Q$gid\E\s.*\sunknown\s+gid not made by consistency\.tpc_gid\(\)/m,
		"pg_consistency: $gid is not a tpc_gid() gid, its verdict is unknown")
	  or diag($cli_out);
}
$node->safe_psql('ops', "ROLLBACK PREPARED '$_'") for @nonnormal;

# The log writer exits while another database's worker acts.  A COMMIT PREPARED that waits
# for a synchronous standby that never comes holds db1's worker; everything else (the
# coordinator, the participants' PREPARE) commits with synchronous_commit = local.
ok(stall_synchronous_commits($node), 'synchronous commit waits for the missing standby');

# A distributed transaction decided commit in ops, prepared by alice in db1, then in db2
# (resolve_stale lists the oldest first: db1's worker runs first).
my $coord = $node->background_psql('ops');
$coord->query_safe('BEGIN');
my %gid;
for my $db ('db1', 'db2')
{
	$gid{$db} = $coord->query_safe("SELECT consistency.tpc_gid('$db')");
	prepare_as_alice($db, $gid{$db}, 'apple');
}
$coord->query_safe("SELECT consistency.tpc_log_decision('$gid{$_}')") for ('db1', 'db2');
$coord->query_safe('COMMIT');
$coord->quit;

my ($h, $out, $err) = start_alice(
	"SELECT gid || ' ' || outcome || ' ' || reason FROM consistency.resolve_stale('0', dry_run => false) ORDER BY database");
$node->poll_query_until('db1',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'consistency resolver' AND datname = 'db1' AND wait_event = 'SyncRep'")
  or die "db1's resolver worker never waited for the standby";
is( $node->safe_psql('ops',
		q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		   WHERE backend_type = 'consistency resolver' AND datname = 'ops'}),
	't', 'the log writer is terminated');
$node->poll_query_until('ops',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'consistency resolver' AND datname = 'ops'})
  or die 'the log writer did not exit';
$node->safe_psql('postgres', q{
	ALTER SYSTEM RESET synchronous_standby_names;
	SELECT pg_reload_conf();
});
$h->finish;
like($$out, qr/^\Q$gid{db1}\E committed /m,
	"db1's COMMIT PREPARED, under way as the log writer exited, completed (in the result)");
like($$out, qr/^\Q$gid{db2}\E failed YC406: the resolver worker writing consistency\.tpc_resolution_log in database ops exited; nothing done/m,
	"db2's transaction is failed with YC406: no action after the log writer exited")
  or diag($$out);
is($node->safe_psql('db2', "SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid{db2}'"),
	'1', "db2's transaction is still prepared");
is($node->safe_psql('db2', q{SELECT qty FROM stock WHERE item = 'apple'}), '10', 'and db2 is unchanged');
like($$err, qr/WARNING:  the resolution was not written to consistency\.tpc_resolution_log/,
	'the caller is warned that nothing was logged');
is($node->safe_psql('ops', q{SELECT count(*) FROM consistency.tpc_resolution_log WHERE gid LIKE 'cy2:%'}),
	'0', 'the log has no row for this resolution (its writer was gone)');

# Resolved again, db2's transaction is committed and logged.
is( $node->safe_psql('ops',
		"SELECT planned || ' ' || outcome FROM consistency.resolve_prepared('$gid{db2}', dry_run => false)",
		extra_params => [ '-U', 'alice' ]),
	'commit committed', "db2's transaction is committed by the next resolution");
is( $node->safe_psql('ops',
		"SELECT action || ' ' || outcome FROM consistency.tpc_resolution_log WHERE gid = '$gid{db2}'"),
	'commit committed', 'and logged');
is($node->safe_psql('db2', q{SELECT qty FROM stock WHERE item = 'apple'}), '9', 'db2 committed once');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'consistency resolver'}, '0'),
	'no resolver worker is left behind');

$node->stop;
done_testing();
