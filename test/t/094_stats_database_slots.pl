# consistency.stats keeps the counters of at most 256 databases, one slot each; the slots of
# dropped databases are freed, so the cap counts databases that exist.  One server, whose
# slots 256 databases fill:
# - a 257th database: the view says so in a row with a reason (stats_reset() returns false,
#   pg_consistency stats prints it), and the exporter's consistency_stats_preloaded query
#   still answers 1;
# - one of the 256 dropped while the library was not loaded (its slot comes back from the
#   file at the next start): the 257th database gets that slot, freed on demand, and the count
#   of a transaction that aborted before that is not lost;
# - another dropped with the library loaded: DROP DATABASE frees its slot as it commits (a
#   clean shutdown does not save it), and a new database counts from zero in it (nothing
#   inherited from the dropped database), before and after a clean restart; a DROP DATABASE
#   that fails keeps the slot.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('slots');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'consistency'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION consistency; CREATE DATABASE tmpl');
$node->safe_psql('tmpl', 'CREATE EXTENSION consistency');

# Create databases NAMES from tmpl and, in each, reset the counters (a reset time in the slot)
# and take a new idempotency key (idempotency.new = 1): one psql session.
sub create_and_count
{
	my (@names) = @_;
	my $sql = join('', map { "CREATE DATABASE $_ TEMPLATE tmpl STRATEGY = FILE_COPY;\n" } @names);
	$sql .= join('', map { "\\c $_\nSELECT consistency.stats_reset();\nSELECT consistency.idem_lease('k');\n" } @names);
	$node->safe_psql('postgres', $sql);
}

sub drop_databases
{
	$node->safe_psql('postgres', join('', map { "DROP DATABASE $_ WITH (FORCE);\n" } @_));
}

# In database DB: "rows|value|never reset or reset" of its counter idempotency.new in the view.
sub new_counter
{
	my ($db) = @_;
	return $node->safe_psql($db, q{
		SELECT count(*) || '|' || COALESCE(sum(value), -1) || '|'
		       || CASE WHEN count(*) = 0 THEN 'no row' WHEN bool_and(stats_reset IS NULL) THEN 'never reset' ELSE 'reset' END
		  FROM consistency.stats
		 WHERE datname = current_database() AND capability = 'idempotency' AND counter = 'new'});
}

sub databases_in_view
{
	return $node->safe_psql('postgres', q{
		SELECT string_agg(DISTINCT datname, ',' ORDER BY datname) FROM consistency.stats
		 WHERE reason IS NULL AND datname !~ '^live_'}) . ' and '
	  . $node->safe_psql('postgres', q{
		SELECT count(DISTINCT datname) FROM consistency.stats WHERE reason IS NULL AND datname ~ '^live_'})
	  . ' live_';
}

# how many databases' counters pg_stat/consistency.stat holds (the server is stopped)
sub saved_databases
{
	my $file = $node->data_dir . '/pg_stat/consistency.stat';
	open(my $fh, '<:raw', $file) or die "could not open $file: $!";
	read($fh, my $header, 12) == 12 or die "$file: short header";
	close($fh);
	return (unpack('L3', $header))[2];
}

# --- every slot held by an existing database --------------------------------------------------
my $start = time;
$node->safe_psql('postgres', q{SELECT consistency.idem_lease('k')});
my @live = map { "live_$_" } 1 .. 255;	# and postgres: 256
create_and_count(@live);
note sprintf('255 databases created and counted in: %d s', time - $start);
is(databases_in_view(), 'postgres and 255 live_', '256 databases have counters');
$node->safe_psql('postgres', 'CREATE DATABASE late TEMPLATE tmpl STRATEGY = FILE_COPY');
$node->safe_psql('late', q{SELECT consistency.idem_lease('x')});
is($node->safe_psql('late', q{
	SELECT count(*) || '|' || bool_and(datid = (SELECT oid FROM pg_database WHERE datname = 'late'))
	       || '|' || bool_and(capability IS NULL AND counter IS NULL AND value IS NULL AND stats_reset IS NULL)
	  FROM consistency.stats WHERE datname = current_database()}),
	'1|true|true', 'a 257th database: one row in the view, with its datid and datname, every counter column NULL');
like($node->safe_psql('late', q{SELECT reason FROM consistency.stats WHERE datname = current_database()}),
	qr/at most 256 databases.*nothing is counted in this one/, 'whose reason says why');
is($node->safe_psql('late', 'SELECT consistency.stats_reset()'), 'f', 'stats_reset() there returns false');
my ($cli_out, $cli_err) = ('', '');
IPC::Run::run([ 'pg_consistency', 'stats', $node->connstr('late') ], '>', \$cli_out, '2>', \$cli_err);
# (ok, not like: the output has 256 databases' counters)
ok($cli_out =~ /^database late: no counters: consistency keeps the counters of at most 256 databases/m,
	'pg_consistency stats says so too');
ok($cli_out =~ /^database postgres \(counters never reset\)$/m, 'and prints the other databases\' counters');
my $queries = slurp_file("$ENV{TESTDIR}/monitoring/consistency-queries.yaml");
my ($preloaded_query) = $queries =~ /^consistency:\n  query: \|\n(.*?)\n  metrics:/ms
  or die 'no consistency query in the queries file';
is($node->safe_psql('late', $preloaded_query), '1',
	'the exporter\'s consistency_stats_preloaded query still answers 1 there');

# --- the slot of a database dropped while the library was not loaded -------------------------
$node->stop;
is(saved_databases(), 256, 'a clean shutdown saves the 256 slots');
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->start;
drop_databases('live_1');
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'consistency'");
$node->start;
# live_1's slot came back from the file: no slot is free.  A transaction that counts and
# aborts cannot read the catalog as it ends, to find that live_1 is gone: its count waits
# for the next transaction, whose commit frees the slot and takes it.
$node->safe_psql('late', q{
	BEGIN; SELECT consistency.idem_lease('y'); ROLLBACK;
	SELECT consistency.idem_lease('z');});
is(new_counter('late'), '1|2|never reset',
	'the 257th database now has a slot, freed from a dropped database: both counts, the aborted one too');
is(databases_in_view(), 'late,postgres and 254 live_', 'the view lists the databases that exist');

# --- DROP DATABASE frees the slot --------------------------------------------------------------
drop_databases('live_2');
# (no read of the view in between: it would free the slots of dropped databases too)
$node->stop;
is(saved_databases(), 255, 'DROP DATABASE freed the slot: a clean shutdown saves 255');
$node->start;
is(new_counter('late'), '1|2|never reset', 'and the others\' counters came back');

$node->safe_psql('postgres', 'CREATE DATABASE fresh TEMPLATE tmpl STRATEGY = FILE_COPY');
$node->safe_psql('fresh', q{SELECT consistency.idem_lease('a'); SELECT consistency.idem_lease('b')});
is(new_counter('fresh'), '1|2|never reset',
	'a new database counts: one row, its own 2, never reset (its slot was a dropped database\'s)');
is($node->safe_psql('fresh', 'SELECT sum(value) FROM consistency.stats WHERE datname = current_database()'),
	'2', 'and nothing else: no counter inherited');

# A drop that fails after the object access hook keeps the slot (and the session's next
# transaction does not free it either).
$node->safe_psql('postgres', 'ALTER DATABASE fresh IS_TEMPLATE true');
my ($ret, $out, $err) = $node->psql('postgres', "DROP DATABASE fresh;\nSELECT 1;");
like($err, qr/cannot drop a template database/, 'DROP DATABASE of a template database fails');
$node->safe_psql('postgres', 'ALTER DATABASE fresh IS_TEMPLATE false');
is(new_counter('fresh'), '1|2|never reset', 'and the database keeps its counters');

$node->restart;
is(new_counter('fresh'), '1|2|never reset', 'after a clean restart the new database has its counters');
$node->safe_psql('fresh', q{SELECT consistency.idem_lease('c')});
is(new_counter('fresh'), '1|3|never reset', 'and counts on');
is(databases_in_view(), 'fresh,late,postgres and 253 live_', 'the view lists the databases that exist');

$node->stop;
note sprintf('total %d s', time - $start);
done_testing();
