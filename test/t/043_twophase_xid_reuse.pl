# A coordinator restored from an older base backup (what a failover to a standby that had not
# received the latest WAL, or a point-in-time recovery, does) hands out the xids of the lost
# history again.  A participant prepared for a lost coordinator transaction must not take the
# decision of the new transaction that got the same xid:
# - coordinator transaction T1 (xid N) makes gids, participant P prepares one, T1 never
#   decides (its WAL is lost with the coordinator);
# - the coordinator is restored from a backup taken before T1; a new transaction T2 gets xid N
#   again, makes its own gids, its participant prepares, and it logs commit and commits;
# - pg_consistency resolve --decisions-from the restored coordinator commits T2's participant
#   and rolls T1's back: the gids carry a random nonce that the decision must match, so T2's
#   decision is not a sibling of T1's gid.
# Also: a gid in 1.0's format (no nonce), still prepared when the extension is updated,
# resolves by 1.0's rule; and tpc_gid() waits for a synchronous standby where one is configured.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sub pg_consistency
{
	my ($out, $err) = ('', '');
	IPC::Run::run(['pg_consistency', @_], '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

my $coord = PostgreSQL::Test::Cluster->new('coordinator');
$coord->init(allows_streaming => 1);
$coord->append_conf('postgresql.conf', "autovacuum = off\n");
$coord->start;
$coord->safe_psql('postgres', 'CREATE EXTENSION consistency');

my $part = PostgreSQL::Test::Cluster->new('participant');
$part->init;
$part->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
$part->start;
$part->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE TABLE transfers (txn text PRIMARY KEY);
});

sub prepare_on_participant
{
	my ($txn, $gid) = @_;
	$part->safe_psql('postgres',
		"BEGIN; INSERT INTO transfers VALUES ('$txn'); PREPARE TRANSACTION '$gid'");
}

$coord->backup('before_t1');

# T1: gids made, participant prepared, no decision; then the coordinator's history is lost.
my $t1 = $coord->background_psql('postgres');
$t1->query_safe('BEGIN');
my $xid = $t1->query_safe('SELECT pg_current_xact_id()');
my $gid1 = $t1->query_safe(q{SELECT consistency.tpc_gid('p')});
prepare_on_participant('t1', $gid1);
$coord->stop('immediate');
$t1->quit;

my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($coord, 'before_t1');
$restored->start;

# Consume xids up to N - 1, then T2 gets N.
my $next = $restored->safe_psql('postgres', 'SELECT pg_snapshot_xmax(pg_current_snapshot())');
ok($next <= $xid, 'the restored coordinator has not seen xid N');
$restored->safe_psql('postgres', 'SELECT pg_current_xact_id()') for ($next .. $xid - 1);
my $t2 = $restored->background_psql('postgres');
$t2->query_safe('BEGIN');
is($t2->query_safe('SELECT pg_current_xact_id()'), $xid, 'the new transaction T2 gets xid N again');
my $gid2 = $t2->query_safe(q{SELECT consistency.tpc_gid('q')});
isnt($gid2, $gid1 =~ s/:p$/:q/r, 'its gid is not the one T1 would have made for the same label');
prepare_on_participant('t2', $gid2);
$t2->query_safe("SELECT consistency.tpc_log_decision('$gid2')");
$t2->query_safe('COMMIT');
$t2->quit;

my ($code, $out) = pg_consistency('resolve', '--execute', '--older-than', '0',
	'--decisions-from', $restored->connstr('postgres'), $part->connstr('postgres'));
is($code, 0, 'pg_consistency resolve --decisions-from the restored coordinator exits 0') or diag($out);
like($out, qr/^\Q$gid1\E\s+postgres\s+rollback\s+t\s+rolled_back/m, "T1's participant is rolled back");
like($out, qr/^\Q$gid2\E\s+postgres\s+commit\s+t\s+committed/m, "T2's participant is committed");
is($part->safe_psql('postgres', q{SELECT string_agg(txn, ',' ORDER BY txn) FROM transfers}),
	't2', 'the participant holds T2 only');
is($part->safe_psql('postgres', q{SELECT count(*) FROM pg_prepared_xacts}), '0', 'nothing left prepared');

# A 1.0 gid (no nonce), prepared before the update, with a decision logged for a sibling gid:
# 1.0's rule (same coordinator transaction, any label) still commits it.  The 1.0 library's
# tpc_gid() and tpc_log_decision() made the gid and the row; this library makes format 2 and
# logs only the gids it made, so the owner writes the row 1.0 wrote, in the transaction it
# names (the guard accepts that).
$restored->safe_psql('postgres', q{
	DROP EXTENSION consistency;
	CREATE EXTENSION consistency VERSION '1.0';
});
my $t3 = $restored->background_psql('postgres');
$t3->query_safe('BEGIN');
my $old_gid = $t3->query_safe(q{
	SELECT format('cy1:%s:%s:%s:p', (SELECT system_identifier FROM pg_control_system()),
		(SELECT oid FROM pg_database WHERE datname = current_database()), pg_current_xact_id())});
prepare_on_participant('t3', $old_gid);
$t3->query_safe(q{INSERT INTO consistency.tpc_decisions (gid, decision, coordinator_sysid, coordinator_xid, decided_at)
	SELECT replace(} . qq{'$old_gid'} . q{, ':p', ':q'), 'commit', system_identifier, pg_current_xact_id(), now()
	  FROM pg_control_system()});
$t3->query_safe('COMMIT');
$t3->quit;
$restored->safe_psql('postgres', q{ALTER EXTENSION consistency UPDATE});
is($restored->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'consistency'}),
	'1.1', 'the coordinator is updated');
($code, $out) = pg_consistency('resolve', '--execute', '--older-than', '0',
	'--decisions-from', $restored->connstr('postgres'), $part->connstr('postgres'));
like($out, qr/^\Q$old_gid\E\s+postgres\s+commit\s+t\s+committed/m,
	"a 1.0 gid prepared before the update follows its sibling's decision");
is($part->safe_psql('postgres', q{SELECT string_agg(txn, ',' ORDER BY txn) FROM transfers}),
	't2,t3', 'and is committed');

# Synchronous replication configured: tpc_gid() waits until the standby has its xid record, so
# a standby promoted after the participants prepared cannot hand the xid out again.
$restored->safe_psql('postgres', q{
	CREATE TABLE sync_probe (x int);
	ALTER SYSTEM SET synchronous_standby_names = 'nobody';
	SELECT pg_reload_conf();
});
# The checkpointer publishes the setting when it sees the reload: probe until a commit waits.
my $syncrep = 0;
for my $try (1 .. 50)
{
	my $probe = $restored->background_psql('postgres');
	my $probe_pid = $probe->query_safe('SELECT pg_backend_pid()');
	$probe->query_until(qr/probing/, "\\echo probing\nINSERT INTO sync_probe VALUES (1);\n");
	my $state = '';
	$state = $restored->safe_psql('postgres',
		"SELECT CASE WHEN wait_event = 'SyncRep' THEN 'SyncRep' WHEN state = 'idle' AND query LIKE 'INSERT INTO sync_probe%' THEN 'idle' END FROM pg_stat_activity WHERE pid = $probe_pid")
	  until $state eq 'SyncRep' || $state eq 'idle';
	if ($state eq 'SyncRep')
	{
		$restored->safe_psql('postgres', "SELECT pg_cancel_backend($probe_pid)");
		$syncrep = 1;
	}
	$probe->quit;
	last if $syncrep;
}
ok($syncrep, 'synchronous replication is in force: a commit waits for the missing standby');
my $waiter = $restored->background_psql('postgres');
my $waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/making/, "\\echo making\nBEGIN;\nSELECT consistency.tpc_gid('s');\n");
ok( $restored->poll_query_until('postgres',
		"SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $waiter_pid"),
	'tpc_gid() waits for the synchronous standby');
$restored->safe_psql('postgres', q{
	ALTER SYSTEM RESET synchronous_standby_names;
	SELECT pg_reload_conf();
});
like($waiter->query_safe('COMMIT; SELECT 1'), qr/1$/, 'and returns once it is no longer required');
$waiter->quit;

$restored->stop;
$part->stop;
done_testing();
