# Optimistic versioning used through a real ORM, and versioning across the 1.0 -> 1.1 update.
# - test/orm/sqlalchemy_versioning.py (Debian python3-sqlalchemy 1.4 on psycopg2), logged in
#   as an application role granted only consistency_user and its table privileges:
#   SQLAlchemy's client-side counter (version_id_col) on a strict 'increment' table and its
#   server-side counter (version_id_generator=False) on a 'read' table both work; a stale
#   object raises StaleDataError and writes nothing; a raw bulk UPDATE omitting the version,
#   and the ORM's own bulk update, are refused on the strict table (YC102) while the ORM's
#   unit of work passes; the client-side counter on a 'read' table is refused (the issue's
#   report); six threads of ORM sessions lose no update, in either mode.
# - A database created at 1.0: its enable_versioning (the 1.0 C entry point) works on the
#   new library, and after ALTER EXTENSION ... UPDATE its triggers keep mode 'read' while
#   the 1.1 function takes the mode.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $python = '/usr/bin/python3';
my $script = "$ENV{TESTDIR}/test/orm/sqlalchemy_versioning.py";

my $node = PostgreSQL::Test::Cluster->new('orm');
$node->init;
$node->append_conf('postgresql.conf', 'max_connections = 40');
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE ROLE orm_app LOGIN;
	GRANT consistency_user TO orm_app;
	CREATE TABLE doc_inc (id int PRIMARY KEY, body text NOT NULL, n int NOT NULL DEFAULT 0);
	CREATE TABLE doc_read (LIKE doc_inc INCLUDING ALL);
	CREATE TABLE doc_plain (id int PRIMARY KEY, body text NOT NULL);
	SELECT consistency.enable_versioning('doc_inc', strict => true, mode => 'increment');
	SELECT consistency.enable_versioning('doc_read');
	SELECT consistency.enable_versioning('doc_plain');
	GRANT SELECT, INSERT, UPDATE ON doc_inc, doc_read, doc_plain TO orm_app;
});

my $dsn = sprintf('host=%s port=%d dbname=postgres user=orm_app', $node->host, $node->port);
my ($out, $err) = ('', '');
my $ok = IPC::Run::run([ $python, $script, $dsn ], '>', \$out, '2>', \$err);
note($out);
diag($err) if $err ne '';
ok($ok, 'the SQLAlchemy script exits 0');

# Every check the script makes, by name: a check that did not run fails here too.
my @checks = (
	'increment: the ORM inserts version 1',
	'increment: ORM updates pass and count 1, 2, 3',
	'increment: the database agrees',
	'read: server-side counter updates pass and count 1, 2, 3',
	'read: the database agrees',
	'increment: a stale object raises StaleDataError',
	'increment: the stale write changed nothing',
	'read: a stale object raises StaleDataError',
	'read: the stale write changed nothing',
	'strict: a raw bulk UPDATE without the version is refused',
	'strict: the ORM\'s bulk update without the version is refused',
	'strict: the ORM\'s update still passes',
	'read: the client-side counter is refused',
	'read: the refused update changed nothing',
	'increment: concurrent sessions raised nothing but StaleDataError',
	'increment: concurrent sessions lost no update',
	'increment: one version per update',
	'read: concurrent sessions raised nothing but StaleDataError',
	'read: concurrent sessions lost no update',
	'read: one version per update');
for my $c (@checks)
{
	like($out, qr/^ok \Q$c\E$/m, "python: $c");
}
unlike($out, qr/^not ok/m, 'the script reports no failed check');
like($out, qr/^figures: /m, 'the script reports its figures');

# The database, seen by the server: 150 ORM updates of row 1 on each table, none lost.
is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s %s %s', t, n, version), ', ' ORDER BY t) FROM (
		SELECT 'inc' AS t, n, version FROM doc_inc WHERE id = 1
		UNION ALL SELECT 'read', n, version FROM doc_read WHERE id = 1) s}),
	'inc 150 154, read 150 153', 'every concurrent update is in the rows, one version each');

# ---- 1.0 -> 1.1 ----
$node->safe_psql('postgres', 'CREATE DATABASE legacy');
$node->safe_psql('legacy', q{
	CREATE EXTENSION consistency VERSION '1.0';
	CREATE TABLE t (id int PRIMARY KEY, note text);
	INSERT INTO t VALUES (1, 'a');
	SELECT consistency.enable_versioning('t', 'version', true);
});
is($node->safe_psql('legacy', q{UPDATE t SET note = 'b', version = 1 WHERE id = 1 RETURNING version}),
	'2', '1.0 database on the new library: the 1.0 enable_versioning installed mode read');
$node->safe_psql('legacy', 'ALTER EXTENSION consistency UPDATE');
is($node->safe_psql('legacy', q{SELECT extversion FROM pg_extension WHERE extname = 'consistency'}),
	'1.1', 'updated to 1.1');
is($node->safe_psql('legacy', q{SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 't'::regclass}),
	q{CREATE TRIGGER consistency_version_guard BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION consistency.version_guard('version', 'strict')},
	'the update leaves the 1.0 trigger as it was');
is($node->safe_psql('legacy', q{UPDATE t SET note = 'c', version = 2 WHERE id = 1 RETURNING version}),
	'3', 'the 1.0 trigger keeps mode read after the update');
my ($rc, $stdout, $stderr) = $node->psql('legacy',
	q{UPDATE t SET note = 'x', version = 4 WHERE id = 1});
like($stderr, qr/version conflict on table "t"/, 'and refuses the increment convention');
is($node->safe_psql('legacy', q{
	SELECT count(*) FROM pg_proc WHERE proname = 'enable_versioning'
	   AND pronamespace = 'consistency'::regnamespace}),
	'1', 'one enable_versioning after the update: calls are not ambiguous');
$node->safe_psql('legacy', q{SELECT consistency.enable_versioning('t', 'version', true)});
is($node->safe_psql('legacy', q{UPDATE t SET note = 'd', version = 3 WHERE id = 1 RETURNING version}),
	'4', 'a three-argument call still means mode read');
$node->safe_psql('legacy', q{SELECT consistency.enable_versioning('t', 'version', true, 'increment')});
is($node->safe_psql('legacy', q{UPDATE t SET note = 'e', version = 5 WHERE id = 1 RETURNING version}),
	'5', 'the 1.1 function switches the table to mode increment');
is($node->safe_psql('legacy', q{
	SELECT has_function_privilege('consistency_user',
		'consistency.enable_versioning(regclass, name, boolean, text)', 'EXECUTE')::text
	    || ' ' || has_function_privilege('public',
		'consistency.enable_versioning(regclass, name, boolean, text)', 'EXECUTE')::text}),
	'true false', 'the updated function keeps the grants: consistency_user, not PUBLIC');

$node->stop;
done_testing();
