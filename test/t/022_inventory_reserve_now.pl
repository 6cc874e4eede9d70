# reserve_now() under load: 32 buyers (pgbench, autocommit) on a pinned 16-slot SKU with 3000
# units, 6400 calls (about twice the stock), while another client keeps sending a reused
# reservation id (YC202), so that batches keep failing and their callers keep reserving
# alone; 8 buyers on a one-slot SKU; and 8 callers sending ids that several send at once (a
# batch may hold one id twice) for a SKU a restocker keeps near empty.  Every call answers for
# itself: no failure, every
# YC202 reaches its own caller and no other, the SKUs sell out exactly,
# every 'reserved' answer has its row and every row a 'reserved' answer, check_inventory() is
# empty.  With the library preloaded, calls shared transactions (a batch's rows share its
# transaction id: far fewer ids than rows); without it every call is its own.  Then a lock
# held for long on one SKU holds up only that SKU's buyers, two leaders whose statements go
# on after their batches hold up nobody for long, and neither do 16 such leaders of other
# roles, whose batches fill the leaders table.  Last, in a pipeline: first, the call commits
# before a later statement fails; after another statement, it is refused (25001).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('reserve_now');
$node->init;
$node->append_conf('postgresql.conf', "max_connections = 100\n");
$node->start;
my $preloaded = $node->safe_psql('postgres', 'SHOW shared_preload_libraries') =~ /consistency/;
diag('shared_preload_libraries ' . ($preloaded ? 'includes' : 'does not include') . ' consistency');

$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	SELECT consistency.stock_set('now', 3000, slots => 16);
	SELECT consistency.stock_set('now-one', 500, slots => 1);
	SELECT consistency.stock_set('side', 1000000, slots => 4);
	SELECT consistency.stock_set('race-now', 20, slots => 16);
	SELECT consistency.reserve('side', 1, 'dup');
	CREATE TABLE answers (id text NOT NULL, sku text NOT NULL, answer text NOT NULL);
});

my $dir = PostgreSQL::Test::Utils::tempdir();
PostgreSQL::Test::Utils::append_to_file("$dir/buy.sql", q{
\set r random(1, 1000000000000)
SELECT consistency.reserve_now('now', 1, 'b' || :client_id || '-' || :r) AS a \gset
INSERT INTO answers VALUES ('b' || :client_id || '-' || :r, 'now', :a);
});
# ids that several callers send at once (a retry racing its original): 3 ids per 20 ms
PostgreSQL::Test::Utils::append_to_file("$dir/same_id.sql", q{
\set n random(1, 3)
SELECT 's' || (extract(epoch FROM clock_timestamp()) * 50)::bigint || '-' || :n AS id \gset
SELECT consistency.reserve_now('race-now', 1, :id) AS a \gset
INSERT INTO answers VALUES (:id, 'race-now', :a);
});
# a restocker keeps the raced SKU near empty, so that batches keep selling it out
PostgreSQL::Test::Utils::append_to_file("$dir/restock.sql", q{
SELECT consistency.stock_add('race-now', 1);
\sleep 20 ms
});
PostgreSQL::Test::Utils::append_to_file("$dir/buy_one.sql", q{
\set r random(1, 1000000000000)
SELECT consistency.reserve_now('now-one', 1, 'o' || :client_id || '-' || :r) AS a \gset
INSERT INTO answers VALUES ('o' || :client_id || '-' || :r, 'now-one', :a);
});
sub pgbench
{
	my ($script, $clients, $calls) = @_;
	my %h = (out => '', err => '');
	$h{run} = IPC::Run::start([ 'pgbench', '-n', '-M', 'prepared', '-c', $clients, '-j', '2',
			'-t', $calls, '--failures-detailed', '--verbose-errors', '-f', "$dir/$script",
			'-h', $node->host, '-p', $node->port, 'postgres' ], '>', \$h{out}, '2>', \$h{err});
	return \%h;
}

# The reused id: 200 calls, one connection each, meanwhile (a statement of its own each:
# reserve_now() refuses a PL/pgSQL EXCEPTION block, a subtransaction).
my ($reuse_out, $reuse_err) = ('', '');
my $reuse = IPC::Run::start([ 'bash', '-c', q{
	for i in $(seq 1 200); do
		psql -X -At -v VERBOSITY=verbose -h "$1" -p "$2" -d postgres \
			-c "SELECT consistency.reserve_now('side', 2, 'dup')" 2>&1
	done }, 'reuse', $node->host, $node->port ], '>', \$reuse_out, '2>', \$reuse_err);
my @runs = (pgbench('buy.sql', 32, 200), pgbench('buy_one.sql', 8, 100),
	pgbench('same_id.sql', 8, 200), pgbench('restock.sql', 1, 300));
for my $r (@runs)
{
	ok($r->{run}->finish, 'pgbench ran every call to completion') or diag($r->{err});
	like($r->{out}, qr/number of failed transactions: 0 \(/, 'no call failed') or diag($r->{err});
}
$reuse->finish;
is(scalar(() = $reuse_out =~ /ERROR:  YC202: reservation id "dup" was already used/g), 200,
	'each of the 200 calls with the reused id got its own YC202')
  or diag($reuse_out . $reuse_err);

is($node->safe_psql('postgres', q{SELECT count(*) FROM answers}), '8800', 'every call recorded its answer');
is($node->safe_psql('postgres', q{
	SELECT string_agg(answer || '=' || n, ',' ORDER BY answer)
	  FROM (SELECT answer, count(*) AS n FROM answers WHERE sku = 'now' GROUP BY answer) a}),
	'insufficient=3400,reserved=3000', 'the 16-slot SKU sold out exactly: 3000 reserved, the rest insufficient');
is($node->safe_psql('postgres', q{
	SELECT string_agg(answer || '=' || n, ',' ORDER BY answer)
	  FROM (SELECT answer, count(*) AS n FROM answers WHERE sku = 'now-one' GROUP BY answer) a}),
	'insufficient=300,reserved=500', 'the one-slot SKU sold out exactly: 500 reserved, the rest insufficient');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT answer, ',' ORDER BY answer) FROM answers WHERE sku = 'race-now'}),
	'insufficient,reserved', 'the raced SKU ran out and was restocked: both answers');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT id FROM answers WHERE sku = 'race-now' AND answer = 'reserved'
						  GROUP BY id HAVING count(*) > 1) m}) > 0 ? 'yes' : 'no',
	'yes', "some ids were answered 'reserved' to several callers");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM answers a
	 WHERE a.answer = 'reserved' AND NOT EXISTS
		(SELECT 1 FROM consistency.reservations r WHERE r.reservation_id = a.id AND r.sku = a.sku)}),
	'0', "every 'reserved' answer has its row");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM consistency.reservations r
	 WHERE r.sku <> 'side' AND NOT EXISTS
		(SELECT 1 FROM answers a WHERE a.id = r.reservation_id AND a.answer = 'reserved')}),
	'0', "every row was answered 'reserved'");
is($node->safe_psql('postgres', q{
	SELECT string_agg(sku || ':' || reserved || '/' || on_hand, ',' ORDER BY sku)
	  FROM (SELECT sku, sum(reserved) AS reserved, sum(on_hand) AS on_hand
			  FROM consistency.inventory WHERE sku <> 'race-now' GROUP BY sku) i}),
	'now:3000/3000,now-one:500/500,side:1/1000000', 'reserved stock: all of it, and one unit of the side SKU');
is($node->safe_psql('postgres', q{
	SELECT (SELECT sum(reserved) FROM consistency.inventory WHERE sku = 'race-now')
		 = (SELECT count(*) FROM consistency.reservations WHERE sku = 'race-now')}),
	't', 'the raced SKU reserved one unit per stored id');
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.check_inventory()}),
	'0', 'check_inventory() finds nothing');

my ($rows, $xids) = split /\|/, $node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT xmin::text) FROM consistency.reservations
	 WHERE sku IN ('now', 'now-one')});
diag("$rows reservations written by $xids transactions");
if ($preloaded)
{
	cmp_ok($xids, '<', $rows * 3 / 4, 'preloaded: calls shared transactions (a batch per transaction)');
}
else
{
	is($xids, $rows, 'not preloaded: every call is its own transaction');
}

# A DBA's transaction holds every slot of one SKU (stock_add); a buyer of that SKU waits
# (as with reserve()), and a buyer of another SKU is answered at once: a leader waits at
# most 50 ms for a lock, then the batch is made call by call.
$node->safe_psql('postgres', q{
	SELECT consistency.stock_set('held', 10, slots => 4);
	SELECT consistency.stock_set('free', 10);
});
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN});
$holder->query_safe(q{SELECT consistency.stock_add('held', 1)});
my ($w_out, $w_err) = ('', '');
my $waiter = IPC::Run::start([ 'psql', '-X', '-At', '-h', $node->host, '-p', $node->port,
		'-d', 'postgres', '-c', q{SELECT consistency.reserve_now('held', 1, 'w-1')} ],
	'>', \$w_out, '2>', \$w_err);
$node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM pg_stat_activity
	 WHERE query LIKE '%reserve_now(''held''%' AND wait_event_type = 'Lock'})
  or die 'the buyer of the held SKU did not wait for its lock';
is($node->safe_psql('postgres', q{
	SET statement_timeout = '20s';
	SELECT consistency.reserve_now('free', 1, 'f-1')}),
	'reserved', 'a buyer of another SKU is answered while the held SKU is still locked');
$holder->query_safe(q{COMMIT});
$holder->quit;
$waiter->finish;
is($w_out, "reserved\n", 'the buyer of the held SKU is answered once the lock is released')
  or diag($w_err);

# Leaders whose statements go on after their batches (a pg_sleep in the same statement) hold
# their commits.  sleeping_leaders(PREFIX, N, AS_ROLES) starts N of them, one after another,
# each buying SKU and id "PREFIX-i" (its transaction holds that SKU's slot), as role
# "PREFIX_i" if AS_ROLES; sleeping(PREFIX) counts those asleep; wake_leaders cancels them,
# and says how many were cancelled.
sub sleeping_sql
{
	my ($prefix, $what) = @_;
	return qq{SELECT $what FROM pg_stat_activity
		WHERE query LIKE '%reserve_now(''$prefix-%' AND wait_event = 'PgSleep'};
}
sub sleeping { return $node->safe_psql('postgres', sleeping_sql($_[0], 'count(*)')); }

sub sleeping_leaders
{
	my ($prefix, $n, $as_roles) = @_;
	my @runs;
	for my $i (1 .. $n)
	{
		my %run = (out => '', err => '');
		$run{h} = IPC::Run::start([ 'psql', '-X', '-At', '-h', $node->host, '-p', $node->port,
				($as_roles ? ('-U', "${prefix}_$i") : ()), '-d', 'postgres', '-c',
				qq{SELECT consistency.reserve_now('$prefix-$i', 1, '$prefix-$i'), pg_sleep(60)} ],
			'>', \$run{out}, '2>', \$run{err});
		push @runs, \%run;
		$node->poll_query_until('postgres', sleeping_sql($prefix, "count(*) = $i"))
		  or die "leader $prefix-$i did not reach its sleep";
	}
	return @runs;
}

sub wake_leaders
{
	my ($prefix, @runs) = @_;
	$node->safe_psql('postgres', qq{
		SELECT pg_cancel_backend(pid) FROM pg_stat_activity
		 WHERE query LIKE '%reserve_now(''$prefix-%' AND wait_event = 'PgSleep'});
	$_->{h}->finish for @runs;
	return scalar(grep { $_->{err} =~ /canceling statement due to user request/ } @runs);
}

# At most two batches wait for their commits at once: a caller behind two sleeping leaders
# waits for them only a moment, then leads its own batch, and is answered while they still
# sleep.  Cancelled, they roll back their own reservations.
$node->safe_psql('postgres', q{
	SELECT consistency.stock_set('slow-' || i, 10) FROM generate_series(1, 2) AS i});
my @slow = sleeping_leaders('slow', 2, 0);
is($node->safe_psql('postgres', q{
	SET statement_timeout = '50s';
	SELECT consistency.reserve_now('free', 1, 'after-slow')}),
	'reserved', 'a caller behind two leaders whose statements go on is answered');
is(sleeping('slow'), '2', '... while both leaders still sleep');
is(wake_leaders('slow', @slow), 2, 'both sleeping leaders were cancelled');
is($node->safe_psql('postgres', q{
	SELECT string_agg(reservation_id, ',' ORDER BY reservation_id) FROM consistency.reservations
	 WHERE reservation_id IN ('slow-1', 'slow-2', 'after-slow')}),
	'after-slow', 'the cancelled leaders committed nothing, the caller behind them did');

# The leaders table has a slot for each database and role with batches (16): with every slot
# held by a sleeping leader of another role, a caller of a 17th role reserves alone at once
# rather than waiting for room.
$node->safe_psql('postgres', q{
	SELECT consistency.stock_set('full-' || i, 10) FROM generate_series(1, 17) AS i;
	SELECT format('CREATE ROLE full_%s LOGIN IN ROLE consistency_user', i)
	  FROM generate_series(1, 17) AS i \gexec
});
my @full = sleeping_leaders('full', 16, 1);
is($node->safe_psql('postgres', q{
	SET ROLE full_17;
	SET statement_timeout = '50s';
	SELECT consistency.reserve_now('full-17', 1, 'full-17')}),
	'reserved', 'a caller of a 17th role is answered while 16 roles have batches');
is(sleeping('full'), '16', '... while all 16 leaders still sleep');
is(wake_leaders('full', @full), 16, 'the 16 sleeping leaders were cancelled');
is($node->safe_psql('postgres', q{
	SELECT string_agg(reservation_id, ',' ORDER BY reservation_id) FROM consistency.reservations
	 WHERE reservation_id LIKE 'full-%'}),
	'full-17', 'only the 17th role\'s reservation was committed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.check_inventory()}),
	'0', 'check_inventory() finds nothing');

# A pipeline (extended protocol, several Executes before one Sync, pgbench \startpipeline):
# first in it, reserve_now() commits when it completes, so a later statement's failure does not
# take the reservation back (it would, at the Sync, with the implicit transaction); after
# another statement it is refused (25001: it would commit that statement's work, and a later
# failure would roll the reservation back), and nothing is reserved.
PostgreSQL::Test::Utils::append_to_file("$dir/pipe_first.sql", q{
\startpipeline
SELECT consistency.reserve_now('side', 1, 'pipe-first');
SELECT 1 / 0;
\endpipeline
});
PostgreSQL::Test::Utils::append_to_file("$dir/pipe_second.sql", q{
\startpipeline
SELECT consistency.reserve('side', 1, 'pipe-before');
SELECT consistency.reserve_now('side', 1, 'pipe-second');
\endpipeline
});
sub pipeline
{
	my ($script) = @_;
	my ($out, $err) = ('', '');
	# the server logs each error with its SQLSTATE
	local $ENV{PGOPTIONS} = '-c log_error_verbosity=verbose';
	IPC::Run::run([ 'pgbench', '-n', '-M', 'extended', '-t', '1', '-f', "$dir/$script",
			'-h', $node->host, '-p', $node->port, 'postgres' ], '>', \$out, '2>', \$err);
	return $err;
}
my $side_before = $node->safe_psql('postgres', q{
	SELECT sum(reserved) FROM consistency.inventory WHERE sku = 'side'});
my $log_offset = -s $node->logfile;
like(pipeline('pipe_first.sql'), qr/division by zero/, 'the pipeline failed after reserve_now()');
is($node->safe_psql('postgres', q{
	SELECT string_agg(reservation_id || ' ' || status, ',') FROM consistency.reservations
	 WHERE reservation_id LIKE 'pipe-%'}),
	'pipe-first active', 'reserve_now() first in a pipeline committed before the failure after it');
like(pipeline('pipe_second.sql'), qr/cannot run inside a pipeline after another statement/,
	'reserve_now() after another statement of a pipeline is refused');
ok($node->log_contains(qr/ERROR:  25001: consistency\.reserve_now\(\) cannot run inside a pipeline/,
		$log_offset), '... with SQLSTATE 25001');
is($node->safe_psql('postgres', q{
	SELECT string_agg(reservation_id, ',' ORDER BY reservation_id) FROM consistency.reservations
	 WHERE reservation_id LIKE 'pipe-%'}),
	'pipe-first', '... and neither it nor the statement before it reserved anything');
is($node->safe_psql('postgres', q{
	SELECT sum(reserved) FROM consistency.inventory WHERE sku = 'side'}),
	$side_before + 1, 'the SKU holds the one reservation committed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.check_inventory()}),
	'0', 'check_inventory() finds nothing');

$node->stop;
done_testing();
