# In-doubt two-phase commit on a real server, across databases:
# - distributed transactions whose participants are prepared in two databases (db1, db2, which do
#   not even have the extension), coordinated from and resolved from a third (ops);
# - the listing names the relations and the pids a prepared transaction blocks, and resolving it
#   releases the waiter;
# - a consistency_admin that did not prepare the transaction is refused by PostgreSQL's own rule,
#   and the attempt is logged; the owner may resolve it; `pg_consistency resolve` run by such a
#   role reports what it may not finish as left in doubt (exit 1), not as done;
# - a gid that another session is finishing right now is reported busy and left alone;
# - a caller cancelled while its worker runs in another database still gets the resolution logged,
#   and so does one terminated (pg_terminate_backend: a FATAL exit, no error handler runs);
# - prepared transactions and their verdicts survive a restart;
# - evidence longer than the log keeps is cut on a character boundary in a UTF-8 database, so
#   the resolution log dumps and restores;
# - a transaction prepared after a statement began is found by that statement: listed by
#   prepared_xacts() (min_age 0) and by resolve_prepared(), not "not found".
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SyncRepStall;

my $node = PostgreSQL::Test::Cluster->new('tpc');
$node->init(allows_streaming => 1);		# max_wal_senders > 0: synchronous commit can wait
$node->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE DATABASE ops; CREATE DATABASE db1; CREATE DATABASE db2;
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
});
$node->safe_psql('ops', q{
	CREATE EXTENSION consistency;
	GRANT consistency_admin TO alice, bob;
});
for my $db ('db1', 'db2')
{
	$node->safe_psql($db, q{
		CREATE TABLE stock (item text PRIMARY KEY, qty int NOT NULL);
		INSERT INTO stock VALUES ('apple', 10), ('pear', 10);
		GRANT ALL ON stock TO alice;
	});
}

# A coordinator transaction in ops: gids for both participants, each prepared in its database.
# $decide: 'commit' logs the decision and commits; 'crash' leaves the coordinator aborted.
sub distributed
{
	my ($item, $decide) = @_;
	my $coord = $node->background_psql('ops');
	$coord->query_safe('BEGIN');
	my %gid;
	for my $db ('db1', 'db2')
	{
		$gid{$db} = $coord->query_safe("SELECT consistency.tpc_gid('$db')");
		$node->safe_psql($db, qq{
			BEGIN;
			UPDATE stock SET qty = qty - 1 WHERE item = '$item';
			PREPARE TRANSACTION '$gid{$db}';
		});
	}
	if ($decide eq 'commit')
	{
		$coord->query_safe("SELECT consistency.tpc_log_decision('$gid{db1}')");
		$coord->query_safe("SELECT consistency.tpc_log_decision('$gid{db2}')");
		$coord->query_safe('COMMIT');
	}
	else
	{
		$coord->query_safe('ROLLBACK');
	}
	$coord->quit;
	return \%gid;
}

my $committed = distributed('apple', 'commit');
my $aborted = distributed('pear', 'crash');

like( $node->safe_psql('ops', q{
		SELECT string_agg(database || ':' || verdict || ':' || array_to_string(relations, ','), ' '
						  ORDER BY prepared_at)
		  FROM consistency.prepared_xacts()}),
	qr/^db1:commit:db1\/\d+,db1\/\d+ db2:commit:db2\/\d+,db2\/\d+ db1:rollback:db1\/\d+,db1\/\d+ db2:rollback:db2\/\d+,db2\/\d+$/,
	'listing from ops shows both databases, their relations by oid, and the verdicts');

# A session in db1 waits for the row the committed participant holds.
my $waiter = $node->background_psql('db1');
my $waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, "\\echo waiting\nUPDATE stock SET qty = qty + 100 WHERE item = 'apple';\n");
$node->poll_query_until('db1',
	"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $waiter_pid")
  or die 'the waiter never waited';
is( $node->safe_psql('ops',
		"SELECT blocked_pids FROM consistency.prepared_xacts() WHERE gid = '$committed->{db1}'"),
	"{$waiter_pid}", 'the listing shows the pid the prepared transaction blocks');
is( $node->safe_psql('ops',
		"SELECT blocked_pids FROM consistency.prepared_xacts() WHERE gid = '$committed->{db2}'"),
	'{}', 'and no pid for the participant in the other database');
is($node->safe_psql('db1', "SELECT pg_blocking_pids($waiter_pid)"),
	'{0}', 'pg_blocking_pids only says "a prepared transaction" (pid 0)');

# Resolving the prepared transaction releases the waiter.
is( $node->safe_psql('ops',
		"SELECT planned || ' ' || outcome FROM consistency.resolve_prepared('$committed->{db1}', dry_run => false)"),
	'commit committed', 'the db1 participant of the decided transaction is committed');
$node->poll_query_until('db1', "SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $waiter_pid")
  or die 'the waiter was not released';
$waiter->quit;

# The others survive a restart.
$node->restart;
is($node->safe_psql('ops', q{SELECT count(*) FROM consistency.prepared_xacts()}),
	'3', 'prepared transactions survive a restart');

# Resolve everything from ops.
my %expect = (
	$committed->{db2} => 'db2:commit:committed',
	$aborted->{db1} => 'db1:rollback:rolled_back', $aborted->{db2} => 'db2:rollback:rolled_back');
is( $node->safe_psql('ops', q{
		SELECT string_agg(database || ':' || planned || ':' || outcome, ' ' ORDER BY gid COLLATE "C")
		  FROM consistency.resolve_stale('0', dry_run => false)}),
	join(' ', map { $expect{$_} } sort keys %expect),
	'resolve_stale from a third database commits what was decided and rolls back the rest');
is($node->safe_psql('db1', q{SELECT string_agg(item || '=' || qty, ',' ORDER BY item) FROM stock}),
	'apple=109,pear=10', "db1: the committed transaction is there once (then the waiter's update), the aborted one is not");
is($node->safe_psql('db2', q{SELECT string_agg(item || '=' || qty, ',' ORDER BY item) FROM stock}),
	'apple=9,pear=10', "db2: the committed transaction is there once, the aborted one is not");
is($node->safe_psql('ops', q{SELECT count(*) FROM pg_prepared_xacts}), '0', 'nothing left prepared');
is( $node->safe_psql('ops', q{
		SELECT string_agg(database || ':' || action || ':' || outcome, ' ' ORDER BY gid COLLATE "C")
		  FROM consistency.tpc_resolution_log}),
	join(' ', map { $_ eq $committed->{db1} ? 'db1:commit:committed' : $expect{$_} }
		  sort (keys %expect, $committed->{db1})),
	'the four resolutions are logged in ops');

# alice prepares; bob (also consistency_admin) may not finish her transaction.
my $coord = $node->background_psql('ops');
$coord->query_safe('BEGIN');
my $gid = $coord->query_safe(q{SELECT consistency.tpc_gid('db1')});
$node->safe_psql('db1', qq{
	SET ROLE alice;
	BEGIN;
	UPDATE stock SET qty = qty - 5 WHERE item = 'pear';
	PREPARE TRANSACTION '$gid';
});
$coord->query_safe("SELECT consistency.tpc_log_decision('$gid')");
$coord->query_safe('COMMIT');
$coord->quit;

my ($ret, $out, $err) = $node->psql('ops',
	"SELECT * FROM consistency.resolve_prepared('$gid', dry_run => false)",
	extra_params => ['-U', 'bob', '-v', 'VERBOSITY=verbose']);
like($err, qr/42501: could not commit prepared transaction.*permission denied to finish prepared transaction/s,
	'a consistency_admin that is not the owner is refused by PostgreSQL');
is( $node->safe_psql('ops',
		"SELECT outcome || ' ' || resolved_by FROM consistency.tpc_resolution_log WHERE gid = '$gid'"),
	'failed bob', 'the refused attempt is logged');
is( $node->safe_psql('ops', "SELECT count(*) FROM consistency.resolve_stale('0')", extra_params => ['-U', 'bob']),
	'0', 'resolve_stale shows bob nothing he may not finish');
is( $node->safe_psql('ops',
		"SELECT planned || ' ' || outcome FROM consistency.resolve_prepared('$gid', dry_run => false)",
		extra_params => ['-U', 'alice']),
	'commit committed', 'the owner may resolve her own transaction');
is($node->safe_psql('db1', q{SELECT qty FROM stock WHERE item = 'pear'}), '5', 'and it committed');

# Busy: a COMMIT PREPARED that waits for a synchronous standby that never comes holds the gid.
# Everything else (the resolver's log writer included) commits with synchronous_commit = local.
ok(stall_synchronous_commits($node), 'synchronous commit waits for the missing standby');
my $second = distributed('apple', 'commit');
$gid = $second->{db1};
my $gid2 = $second->{db2};
my $finisher = $node->background_psql('db1');
my $finisher_pid = $finisher->query_safe('SELECT pg_backend_pid()');
$finisher->query_until(qr/finishing/,
	"SET synchronous_commit = on;\n\\echo finishing\nCOMMIT PREPARED '$gid';\n");
$node->poll_query_until('db1',
	"SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $finisher_pid")
  or die 'COMMIT PREPARED never waited';
is( $node->safe_psql('ops',
		"SELECT planned || ' ' || executed || ' ' || outcome FROM consistency.resolve_prepared('$gid', dry_run => false)"),
	'commit false busy', 'a gid another session is finishing is reported busy');
like( $node->safe_psql('ops', "SELECT error FROM consistency.tpc_resolution_log WHERE gid = '$gid' AND outcome = 'busy'"),
	qr/^55000: prepared transaction with identifier .* is busy$/, 'the busy attempt is logged with PostgreSQL\'s error');

# Cancelled caller: alice's COMMIT PREPARED in db1 (her worker commits with
# synchronous_commit = on) waits for the missing standby; the caller, in ops, is cancelled
# while it waits for that worker.  The action goes on, and once the worker is done a log
# writer starts in ops by itself.
$coord = $node->background_psql('ops');
$coord->query_safe('BEGIN');
my $gid_cancel = $coord->query_safe(q{SELECT consistency.tpc_gid('cancel')});
$node->safe_psql('db1', qq{
	SET ROLE alice;
	BEGIN;
	UPDATE stock SET qty = qty - 1 WHERE item = 'pear';
	PREPARE TRANSACTION '$gid_cancel';
});
$coord->query_safe("SELECT consistency.tpc_log_decision('$gid_cancel')");
$coord->query_safe('COMMIT');
$coord->quit;
my $caller = $node->background_psql('ops', on_error_stop => 0, extra_params => ['-U', 'alice']);
my $caller_pid = $caller->query_safe('SELECT pg_backend_pid()');
$caller->query_until(qr/resolving/,
	"\\echo resolving\nSELECT * FROM consistency.resolve_prepared('$gid_cancel', dry_run => false);\n");
$node->poll_query_until('db1',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'consistency resolver' AND datname = 'db1' AND wait_event = 'SyncRep'")
  or die 'the resolver worker never waited for the standby';
$node->safe_psql('ops', "SELECT pg_cancel_backend($caller_pid)");
$node->poll_query_until('ops', "SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $caller_pid")
  or die 'the caller was not cancelled';
is($node->safe_psql('ops', "SELECT count(*) FROM consistency.tpc_resolution_log WHERE gid = '$gid_cancel'"),
	'0', 'cancelled caller: nothing is logged while the worker still waits');

# Terminated caller: the same, but the caller's backend exits (FATAL: no error handler runs)
# while its worker waits; the hand-over happens as the caller's segment is detached.
$coord = $node->background_psql('ops');
$coord->query_safe('BEGIN');
my $gid_term = $coord->query_safe(q{SELECT consistency.tpc_gid('terminate')});
$node->safe_psql('db1', qq{
	SET ROLE alice;
	BEGIN;
	INSERT INTO stock VALUES ('plum', 1);		-- apple and pear are held by the waiting commits
	PREPARE TRANSACTION '$gid_term';
});
$coord->query_safe("SELECT consistency.tpc_log_decision('$gid_term')");
$coord->query_safe('COMMIT');
$coord->quit;
my $doomed = $node->background_psql('ops', on_error_stop => 0, extra_params => ['-U', 'alice']);
my $doomed_pid = $doomed->query_safe('SELECT pg_backend_pid()');
$doomed->query_until(qr/resolving/,
	"\\echo resolving\nSELECT * FROM consistency.resolve_prepared('$gid_term', dry_run => false);\n");
$node->poll_query_until('db1',
	"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'consistency resolver' AND datname = 'db1' AND wait_event = 'SyncRep'")
  or die 'the second resolver worker never waited for the standby';
$node->safe_psql('ops', "SELECT pg_terminate_backend($doomed_pid)");
$node->poll_query_until('ops', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $doomed_pid")
  or die 'the caller was not terminated';
eval { $doomed->quit };		# its psql has exited with the connection: \q finds no reader
$node->safe_psql('postgres', q{
	ALTER SYSTEM RESET synchronous_standby_names;
	SELECT pg_reload_conf();
});
$node->poll_query_until('db1', "SELECT count(*) = 0 FROM pg_prepared_xacts WHERE gid = '$gid'")
  or die 'COMMIT PREPARED did not finish';
$finisher->quit;
ok( $node->poll_query_until('ops',
		"SELECT outcome || ' ' || resolved_by FROM consistency.tpc_resolution_log WHERE gid = '$gid_cancel'",
		'committed alice'),
	'cancelled caller: the worker\'s commit is logged in the caller\'s database all the same');
is($node->safe_psql('db1', "SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid_cancel'"), '0',
	'cancelled caller: the prepared transaction was committed');
ok( $node->poll_query_until('ops',
		"SELECT outcome || ' ' || resolved_by FROM consistency.tpc_resolution_log WHERE gid = '$gid_term'",
		'committed alice'),
	'terminated caller: the worker\'s commit is logged in the caller\'s database all the same');
is($node->safe_psql('db1', "SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid_term'")
	  . $node->safe_psql('db1', "SELECT qty FROM stock WHERE item = 'plum'"), '01',
	'terminated caller: the prepared transaction was committed');
is($caller->query('SELECT 1'), '1', 'the cancelled session is usable');
like($caller->{stderr}, qr/canceling statement due to user request/, 'and it was cancelled');
$caller->quit;
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'consistency resolver'}, '0'),
	'no resolver worker is left behind');
is( $node->safe_psql('ops',
		"SELECT planned || ' ' || executed || ' ' || outcome FROM consistency.resolve_prepared('$gid', dry_run => false)"),
	'none false not_found', 'once finished, the gid is gone');
is( $node->safe_psql('ops',
		"SELECT planned || ' ' || outcome FROM consistency.resolve_prepared('$gid2', dry_run => false)"),
	'commit committed', 'its sibling in db2 is committed by the resolver');
is($node->safe_psql('db1', q{SELECT qty FROM stock WHERE item = 'apple'}),
	'108', 'db1: the second distributed commit applied exactly once');
is($node->safe_psql('db2', q{SELECT qty FROM stock WHERE item = 'apple'}),
	'8', 'db2: the second distributed commit applied exactly once');
is($node->safe_psql('ops', q{SELECT count(*) FROM pg_prepared_xacts}), '0', 'nothing left prepared');

# pg_consistency against this cluster: no --decisions-from needed, the coordinator is here.
$gid = distributed('pear', 'commit')->{db1};
my ($cli_out, $cerr) = ('', '');
IPC::Run::run(['pg_consistency', 'in-doubt', $node->connstr('ops')], '>', \$cli_out, '2>', \$cerr);
is($? >> 8, 0, 'pg_consistency in-doubt: fresh prepared transactions are ok (exit 0)');
like($cli_out, qr/^\Q$gid\E\s+db1\s.*\scommit\s+decision commit logged/m, 'and it prints the listing');
# bob (consistency_admin, not a superuser) may not finish the superuser's transactions:
# resolve_stale() leaves them out, and they are still in doubt afterwards.
IPC::Run::run(['pg_consistency', 'resolve', '--execute', '--older-than', '0', $node->connstr('ops') . ' user=bob'],
	'>', \$cli_out, '2>', \$cerr);
is($? >> 8, 1, "pg_consistency resolve --execute as a role that may not finish them exits 1 (some left)")
  or diag($cli_out . $cerr);
like($cli_out, qr/^\Q$gid\E\s+db1\s+skip\s+f\s+skipped\s+not the caller's to finish: prepared by \S+/m,
	'and prints each as skipped, with the reason');
is($node->safe_psql('ops', q{SELECT count(*) FROM pg_prepared_xacts}), '2', 'and they are indeed left prepared');
IPC::Run::run(['pg_consistency', 'resolve', '--older-than', '0', $node->connstr('ops')], '>', \$cli_out, '2>', \$cerr);
is($? >> 8, 0, 'pg_consistency resolve (dry run) exits 0');
is($node->safe_psql('ops', q{SELECT count(*) FROM pg_prepared_xacts}), '2', 'and changes nothing');
IPC::Run::run(['pg_consistency', 'resolve', '--execute', '--older-than', '0', $node->connstr('ops')],
	'>', \$cli_out, '2>', \$cerr);
is($? >> 8, 0, 'pg_consistency resolve --execute exits 0');
like($cli_out, qr/^\Q$gid\E\s+db1\s+commit\s+t\s+committed/m, 'and reports each resolution');
is($node->safe_psql('ops', q{SELECT count(*) FROM pg_prepared_xacts}), '0', 'nothing left prepared');
IPC::Run::run(['pg_consistency', 'in-doubt', '--bogus'], '>', \$cli_out, '2>', \$cerr);
is($? >> 8, 3, 'an unknown option exits 3 (unknown)');
IPC::Run::run(['pg_consistency', 'in-doubt', 'host=/nonexistent port=1'], '>', \$cli_out, '2>', \$cerr);
is($? >> 8, 3, 'so does a failed connection');
like($cerr, qr/could not connect/, 'with the reason');

# Evidence longer than the log keeps, in a UTF-8 database: it is cut on a character boundary,
# so the log dumps and restores.  Three cuts, one, two and three bytes into a run of
# three-byte characters: at least one falls inside a character.
$node->safe_psql('postgres', q{
	CREATE DATABASE utf8 ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0;
	CREATE DATABASE utf8_restored ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0;
});
$node->safe_psql('utf8', q{
	CREATE EXTENSION consistency;
	BEGIN;
	SELECT consistency.tpc_log_decision(consistency.tpc_gid('dumped'));
	COMMIT;
});
for my $pad ('', 'x', 'xx')
{
	my $foreign = 'cy1:1:1:' . (1000 + length $pad);		# another cluster's coordinator
	$node->safe_psql('utf8', qq{BEGIN; SELECT pg_advisory_xact_lock(1); PREPARE TRANSACTION '$foreign'});
	$node->safe_psql('utf8', qq{
		SELECT set_config('consistency.tpc_caller_evidence', '$pad' || repeat(chr(8364), 400), false) IS NULL;
		SELECT outcome FROM consistency.resolve_prepared('$foreign', 'rollback', dry_run => false);
	});
}
is( $node->safe_psql('utf8', q{
		SELECT count(*), bool_and(octet_length(evidence) < 1024), bool_and(evidence LIKE '%' || chr(8364))
		  FROM consistency.tpc_resolution_log}),
	"3|t|t", 'three resolutions logged, their evidence clipped on a character boundary');
my ($dump, $restore_err) = ('', '');
IPC::Run::run(['pg_dump', '--no-owner', $node->connstr('utf8')], '>', \$dump, '2>', \$restore_err);
is($? >> 8, 0, 'the log dumps');
IPC::Run::run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('utf8_restored')],
	'<', \$dump, '>', \my $restore_out, '2>', \$restore_err);
is($? >> 8, 0, 'and restores') or diag($restore_err);
is( $node->safe_psql('utf8_restored', q{SELECT count(*), string_agg(evidence, '' ORDER BY id) FROM consistency.tpc_resolution_log}),
	$node->safe_psql('utf8', q{SELECT count(*), string_agg(evidence, '' ORDER BY id) FROM consistency.tpc_resolution_log}),
	'with every row as it was');
is( $node->safe_psql('utf8_restored', q{SELECT gid, decision, coordinator_nonce FROM consistency.tpc_decisions}),
	$node->safe_psql('utf8', q{SELECT gid, decision, coordinator_nonce FROM consistency.tpc_decisions}),
	'the decision log restores too (its guard accepts a consistent row of another database)');

# A statement (here a DO block) that began before a transaction was prepared: made certain by
# a row lock the block waits for while the transaction is prepared in another session.
$node->safe_psql('ops', 'CREATE TABLE gate (i int); INSERT INTO gate VALUES (1)');
my $gate = $node->background_psql('ops');
$gate->query_safe('BEGIN; SELECT * FROM gate FOR UPDATE');
my ($do_out, $do_err) = ('', '');
my $do = IPC::Run::start(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('ops'), '-c', q{
	DO $$
	DECLARE n bigint; o text;
	BEGIN
		PERFORM 1 FROM gate FOR UPDATE;
		SELECT count(*) INTO n FROM consistency.prepared_xacts() WHERE gid = 'prepared-later';
		SELECT outcome INTO o FROM consistency.resolve_prepared('prepared-later');
		RAISE NOTICE 'listed %, resolve_prepared: %', n, o;
	END $$}], '>', \$do_out, '2>', \$do_err);
$node->poll_query_until('ops', q{SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted})
  or die 'the DO block does not wait for the row lock';
$node->safe_psql('db1', q{BEGIN; SELECT pg_advisory_xact_lock(2); PREPARE TRANSACTION 'prepared-later'});
$gate->query_safe('COMMIT');
$gate->quit;
$do->finish;
is($? >> 8, 0, 'the DO block ran') or diag($do_err);
like($do_err, qr/NOTICE:  listed 1, resolve_prepared: skipped/,
	'a transaction prepared after the statement began is listed, and resolve_prepared() finds it (no verdict: skipped)');
$node->safe_psql('db1', q{ROLLBACK PREPARED 'prepared-later'});

$node->stop;
done_testing();
