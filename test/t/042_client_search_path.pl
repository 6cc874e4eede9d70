# The client programs never run code a database user planted in their search_path.
#
# - pg_consistency, run by a superuser DBA: a role with CREATE on the database creates a schema
#   named after the DBA (so it is "$user" in the DBA's default search_path) holding
#   array_to_string(text[], text) and array_to_string(int[], text), better matches than
#   pg_catalog's anyarray version.  With one prepared transaction in the cluster,
#   `pg_consistency in-doubt` used to call them as the DBA; the planted function makes its
#   author a superuser.  The tool now empties search_path right after connecting (as pg_dump
#   does) and qualifies every name.
# - the router library: its connections serve the application's own SQL, so their search_path
#   is the application's to choose; when it lists a schema another role can write to before
#   pg_catalog, that role's pg_last_wal_replay_lsn(), pg_get_wal_replay_pause_state() and
#   current_setting() used to be called by the router's own probe.  Every name the router
#   sends is now schema-qualified, so no search_path changes what it runs.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $example = "$ENV{TESTDIR}/test/router_example";
-x $example or BAIL_OUT("$example is not built");

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', "max_prepared_transactions = 5\n");
$node->start;
my $dba = $node->safe_psql('postgres', 'SELECT current_user');
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE TABLE rw_counter (id int PRIMARY KEY, v bigint NOT NULL);
	INSERT INTO rw_counter VALUES (1, 0);
	CREATE ROLE mallory LOGIN;
	GRANT CREATE ON DATABASE postgres TO mallory;
	CREATE ROLE eve LOGIN;
	CREATE SCHEMA eve AUTHORIZATION eve;
	GRANT USAGE ON SCHEMA eve TO PUBLIC;
});

# mallory plants the functions, as herself.
$node->safe_psql('postgres', qq{
	CREATE SCHEMA "$dba";
	GRANT USAGE ON SCHEMA "$dba" TO PUBLIC;
	CREATE FUNCTION "$dba".array_to_string(text[], text) RETURNS text LANGUAGE plpgsql AS \$\$
		BEGIN
			ALTER ROLE mallory SUPERUSER;
			RETURN pg_catalog.array_to_string(\$1, \$2);
		END \$\$;
	CREATE FUNCTION "$dba".array_to_string(int[], text) RETURNS text LANGUAGE plpgsql AS \$\$
		BEGIN
			ALTER ROLE mallory SUPERUSER;
			RETURN pg_catalog.array_to_string(\$1, \$2);
		END \$\$;
}, extra_params => ['-U', 'mallory']);
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
	'f', 'mallory is not a superuser');
$node->safe_psql('postgres', q{
	CREATE TABLE public.held (x int);
	BEGIN;
	LOCK TABLE public.held;
	PREPARE TRANSACTION 'held-by-hand';
});

my ($out, $err) = ('', '');
IPC::Run::run(['pg_consistency', 'in-doubt', $node->connstr('postgres')], '>', \$out, '2>', \$err);
is($? >> 8, 0, 'pg_consistency in-doubt runs (exit 0: nothing old)');
like($out, qr/^held-by-hand\s+postgres\s.*; relations public\.held/m,
	'and lists the prepared transaction with its relations');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
	'f', 'pg_consistency in-doubt did not run the planted function');
$node->safe_psql('postgres', 'ALTER ROLE mallory NOSUPERUSER');	# in case it did
IPC::Run::run(['pg_consistency', 'resolve', '--older-than', '0', $node->connstr('postgres')],
	'>', \$out, '2>', \$err);
is($? >> 8, 1, 'pg_consistency resolve runs (exit 1: a hand-made gid is left in doubt)');
IPC::Run::run(['pg_consistency', 'resolve', '--older-than', '0', '--decisions-from', $node->connstr('postgres'),
		$node->connstr('postgres')], '>', \$out, '2>', \$err);
is($? >> 8, 1, 'so does pg_consistency resolve --decisions-from');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
	'f', 'pg_consistency resolve did not run the planted function either');
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'held-by-hand'});

# The router: eve's functions in a schema listed before pg_catalog in the standby
# connection's search_path.  Each leaves a line in the standby's log when called.
$node->safe_psql('postgres', q{
	CREATE FUNCTION eve.pg_last_wal_replay_lsn() RETURNS pg_lsn LANGUAGE plpgsql AS $$
		BEGIN
			RAISE WARNING 'planted function called: pg_last_wal_replay_lsn';
			RETURN pg_catalog.pg_last_wal_replay_lsn();
		END $$;
	CREATE FUNCTION eve.pg_get_wal_replay_pause_state() RETURNS text LANGUAGE plpgsql AS $$
		BEGIN
			RAISE WARNING 'planted function called: pg_get_wal_replay_pause_state';
			RETURN pg_catalog.pg_get_wal_replay_pause_state();
		END $$;
	CREATE FUNCTION eve.current_setting(text) RETURNS text LANGUAGE plpgsql AS $$
		BEGIN
			RAISE WARNING 'planted function called: current_setting';
			RETURN pg_catalog.current_setting($1);
		END $$;
}, extra_params => ['-U', 'eve']);
$node->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'base', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby, 'replay');
# Paused: a routed read finds it behind and, with a wait budget, asks it how far it got.
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$standby->poll_query_until('postgres', q{SELECT pg_get_wal_replay_pause_state() = 'paused'})
  or die 'not paused';

my $standby_conn = $standby->connstr('postgres') . q{ options='-csearch_path=eve,pg_catalog'};
my $log_offset = -s $standby->logfile;
IPC::Run::run([$example, '--primary', $node->connstr('postgres'), '--standby', $standby_conn,
		'--cycles', '3', '--budget-ms', '100'], '>', \$out, '2>', \$err);
is($? >> 8, 0, 'the router example runs');
like($out, qr/^cycles=3 stale=0 failed=0 primary=3 standby=0 /m,
	'the paused standby is never used: every read goes to the primary');
my $log = slurp_file($standby->logfile, $log_offset);
unlike($log, qr/planted function called/, 'the router did not call the functions planted in its search_path');

$standby->stop;
$node->stop;
done_testing();
