# A flash sale on a real server: 500 units of one SKU, 64 concurrent clients (pgbench), more
# than twice the demand, random retries of the same reservation id, releases, confirms and
# expiries mixed in.  Afterwards: exactly 500 sold, nothing oversold, every buyer told
# 'insufficient' saw (under the locks the answer was based on) less stock than it asked for,
# no deadlock in the server log, check_inventory() empty.  Once with one slot, once with 16,
# once on an untuned (adaptive) SKU that splits itself under the crowd while maintenance()
# merges it back as soon as it is cool (inventory_merge_after = 0), and which a single client
# never splits.
# Then an immediate shutdown in the middle of a sale: after restart the invariants hold and
# the sale finishes at exactly 500.  And a waiting buyer honours lock_timeout.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('sale');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_connections = 100
deadlock_timeout = 100ms
});
$node->start;

# The shop's side: every answer is recorded with the stock available right after it, in the
# same transaction.  An 'insufficient' answer keeps every slot of the SKU locked to the end of
# the transaction, so that reading shows exactly the stock the answer was based on: a buyer
# wrongly turned away would show avail >= qty.
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE TABLE answers (id int NOT NULL, qty int NOT NULL, answer text NOT NULL,
						  avail bigint NOT NULL);
	-- Reservation id n always asks for the same quantity, so picking n again is a retry.
	CREATE FUNCTION qty_of(n int) RETURNS int IMMUTABLE LANGUAGE sql
		AS $$ SELECT 1 + (n % 3 = 0)::int $$;
	CREATE FUNCTION buy(n int) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		a text;
	BEGIN
		BEGIN
			a := consistency.reserve('sale', qty_of(n), 'r' || n,
									 CASE WHEN n % 5 = 0 THEN interval '200 ms' ELSE interval '1 hour' END);
		EXCEPTION
			WHEN SQLSTATE 'YC203' THEN a := 'expired';		-- retry of a lapsed hold
			WHEN SQLSTATE 'YC204' THEN a := 'released';
		END;
		INSERT INTO answers VALUES (n, qty_of(n), a, consistency.available('sale'));
	END $$;
	CREATE FUNCTION give_up(n int) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM consistency.release('r' || n);
	EXCEPTION WHEN SQLSTATE 'YC205' OR SQLSTATE 'YC206' THEN NULL;	-- sold, or never reserved
	END $$;
	CREATE FUNCTION pay(n int) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM consistency.confirm('r' || n);
	EXCEPTION WHEN SQLSTATE 'YC203' OR SQLSTATE 'YC204' OR SQLSTATE 'YC206' THEN NULL;
	END $$;
});

my $script = PostgreSQL::Test::Utils::tempdir() . '/sale.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
\set n random(1, 1500)
\set op random(1, 100)
\if :op <= 80
SELECT buy(:n);
\elif :op <= 90
SELECT give_up(:n);
\elif :op <= 97
SELECT pay(:n);
\else
SELECT consistency.expire_reservations(20);
\endif
});

sub pgbench_cmd
{
	my @extra = @_;
	return [
		'pgbench', '-n', '-c', '64', '-j', '4', @extra, '-f', $script,
		'-h', $node->host, '-p', $node->port, 'postgres'
	];
}

# After the crowd: expire what lapsed, let the last buyers (fresh ids) take what is left,
# and pay for every hold.  Returns the units sold.
sub finish_sale
{
	$node->safe_psql('postgres', q{SELECT pg_sleep(0.25)});
	$node->safe_psql('postgres',
		q{SELECT count(*) FROM (SELECT consistency.expire_reservations() FROM generate_series(1, 50)) e});
	for my $i (1 .. 600)
	{
		last if $node->safe_psql('postgres',
			"SELECT consistency.reserve('sale', 1, 'last-$i')") eq 'insufficient';
	}
	$node->safe_psql('postgres', q{
		SELECT count(consistency.confirm(reservation_id))
		  FROM (SELECT DISTINCT reservation_id FROM consistency.reservations
				 WHERE status = 'active') a});
	return $node->safe_psql('postgres',
		q{SELECT sum(qty) FROM consistency.reservations WHERE status = 'confirmed'});
}

sub run_sale
{
	my ($slots) = @_;
	my $adaptive = $slots eq 'adaptive';
	my $log_offset = -s $node->logfile;
	$node->safe_psql('postgres', qq{
		TRUNCATE answers;
		DELETE FROM consistency.reservations;
		DELETE FROM consistency.inventory;
		SELECT consistency.stock_set('sale', 500@{[ $adaptive ? '' : ", $slots" ]});
	});

	my ($out, $err);
	my $ok;
	my $most_slots = 1;
	if ($adaptive)
	{
		# The answer a buyer gets in the short window after a slot-count change may be a
		# retryable 40001 (README); pgbench retries those, as an application would.
		my $crowd = IPC::Run::start(pgbench_cmd('-t', '40', '--max-tries', '10'),
			'>', \$out, '2>', \$err);
		while ($crowd->pumpable)
		{
			$crowd->pump_nb;
			my $n = $node->safe_psql('postgres', q{
				SET consistency.inventory_merge_after = 0;
				SET client_min_messages = warning;
				CALL consistency.maintenance();
				SELECT count(*) FROM consistency.inventory WHERE sku = 'sale';
			});
			$most_slots = $n if $n > $most_slots;
		}
		$ok = $crowd->finish;
	}
	else
	{
		$ok = IPC::Run::run(pgbench_cmd('-t', '40'), '>', \$out, '2>', \$err);
	}
	ok($ok, "slots=$slots: 64 clients ran the sale") or diag($err);
	like($out, qr/number of failed transactions: 0 /, "slots=$slots: no client failed");
	if ($adaptive)
	{
		note($out =~ /(number of transactions retried: .*)/ ? $1 : 'no retries reported');
		cmp_ok($most_slots, '>', 1, "slots=$slots: the SKU split itself under the crowd");
		like(slurp_file($node->logfile, $log_offset), qr/merged [1-9][0-9]* adaptive SKUs/,
			"slots=$slots: maintenance() merged it back during the sale");
	}

	my %a = split /[|\n]/, $node->safe_psql('postgres', q{
		SELECT 'buys', count(*) FROM answers
		UNION ALL SELECT 'demand', sum(qty) FROM (SELECT DISTINCT id, qty FROM answers) d
		UNION ALL SELECT 'retried', count(*) FROM (SELECT id FROM answers WHERE answer = 'reserved'
													GROUP BY id HAVING count(*) > 1) r
		UNION ALL SELECT 'turned_away', count(*) FROM answers WHERE answer = 'insufficient'
		UNION ALL SELECT 'wrongly_turned_away', count(*) FROM answers
				   WHERE answer = 'insufficient' AND avail >= qty
		UNION ALL SELECT 'released', count(*) FROM consistency.reservations WHERE status = 'released'
		UNION ALL SELECT 'expired', count(*) FROM consistency.reservations WHERE status = 'expired'
		UNION ALL SELECT 'held', coalesce(sum(qty), 0) FROM consistency.reservations
				   WHERE status IN ('active', 'confirmed')
		UNION ALL SELECT 'rows_per_id', max(c) FROM (SELECT count(*) AS c FROM consistency.reservations
													  GROUP BY reservation_id) c
	});
	note(join ', ', map { "$_=$a{$_}" } sort keys %a);
	cmp_ok($a{demand}, '>=', 1000, "slots=$slots: demand was at least twice the stock");
	cmp_ok($a{retried}, '>', 0, "slots=$slots: reservations were retried with the same id");
	cmp_ok($a{released} + $a{expired}, '>', 0, "slots=$slots: holds were released and expired");
	cmp_ok($a{turned_away}, '>', 0, "slots=$slots: the sale sold out while buyers kept coming");
	is($a{wrongly_turned_away}, 0,
		"slots=$slots: nobody was told 'insufficient' while enough stock was unreserved");
	cmp_ok($a{held}, '<=', 500, "slots=$slots: never more held or sold than the stock");
	is($a{rows_per_id}, 1, "slots=$slots: a retried reservation id never took stock twice");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.check_inventory()'),
		'0', "slots=$slots: check_inventory() is empty after the crowd");

	is(finish_sale(), 500, "slots=$slots: exactly 500 units sold");
	is($node->safe_psql('postgres',
			q{SELECT sum(on_hand) || '/' || sum(reserved) FROM consistency.inventory}),
		"0/0", "slots=$slots: nothing left on hand or reserved");
	is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.inventory}),
		$slots, "slots=$slots: the SKU kept its pinned slots") unless $adaptive;
	is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.check_inventory()'),
		'0', "slots=$slots: check_inventory() is empty at the end");
	my $log = slurp_file($node->logfile, $log_offset);
	unlike($log, qr/deadlock detected/, "slots=$slots: no deadlock in the server log");
}

# The check above can see the violation it looks for: a naive reservation that looks at one
# slot only, recorded the same way, is caught turning buyers away while stock is left.
$node->safe_psql('postgres', q{
	SELECT consistency.stock_set('naive', 32, 16);
	CREATE TABLE naive_answers (LIKE answers);
	CREATE FUNCTION naive_buy(n int) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		a text := 'insufficient';
	BEGIN
		UPDATE consistency.inventory SET reserved = reserved + 3
		 WHERE sku = 'naive' AND slot = n % 16 AND on_hand - reserved >= 3;
		IF FOUND THEN
			a := 'reserved';
		END IF;
		INSERT INTO naive_answers VALUES (n, 3, a, consistency.available('naive'));
	END $$;
	SELECT naive_buy(n) FROM generate_series(1, 4) n;
});
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM naive_answers WHERE answer = 'insufficient' AND avail >= qty}),
	'4', 'the check catches a reservation that turns buyers away while stock is left');
is($node->safe_psql('postgres', q{SELECT consistency.reserve('naive', 3, 'whole-sku')}),
	'reserved', 'reserve() serves the same request from the SKU as a whole');

run_sale(1);
run_sale(16);
run_sale('adaptive');

# One client alone never contends with anyone: an adaptive SKU it buys from stays at one slot.
{
	$node->safe_psql('postgres', q{
		TRUNCATE answers;
		DELETE FROM consistency.reservations;
		DELETE FROM consistency.inventory;
		SELECT consistency.stock_set('sale', 500);
	});
	my ($out, $err);
	ok(IPC::Run::run(
			[
				'pgbench', '-n', '-c', '1', '-t', '400', '-f', $script,
				'-h', $node->host, '-p', $node->port, 'postgres'
			],
			'>', \$out, '2>', \$err),
		'adaptive, one client: ran') or diag($err);
	cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM answers WHERE answer = 'reserved'}),
		'>', 100, 'adaptive, one client: it reserved');
	is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.inventory WHERE sku = 'sale'}),
		'1', 'adaptive, one client: the SKU never split');
}

# Baskets: 32 clients reserve three of five SKUs (some with 4 slots) at once, listing them in
# random order, and confirm or release other baskets meanwhile: no deadlock, invariants hold.
$node->safe_psql('postgres', q{
	DELETE FROM consistency.reservations;
	DELETE FROM consistency.inventory;
	SELECT consistency.stock_set('item-' || i, 300, CASE WHEN i % 2 = 0 THEN 4 ELSE 1 END)
	  FROM generate_series(1, 5) i;
	CREATE FUNCTION basket(n int) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		skus text[] := ARRAY(SELECT 'item-' || i FROM generate_series(1, 5) i
							  ORDER BY random() LIMIT 3);
	BEGIN
		PERFORM consistency.reserve_all('basket-' || n || '-' || md5(skus::text),
										skus, ARRAY[1 + n % 2, 1, 2]);
	EXCEPTION WHEN SQLSTATE 'YC204' THEN NULL;	-- a retry of a basket released meanwhile
	END $$;
	CREATE FUNCTION settle(n int) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		r text := (SELECT reservation_id FROM consistency.reservations
					WHERE reservation_id LIKE 'basket-' || n || '-%' AND status = 'active' LIMIT 1);
	BEGIN
		IF r IS NOT NULL THEN
			IF n % 2 = 0 THEN PERFORM consistency.confirm(r); ELSE PERFORM consistency.release(r); END IF;
		END IF;
	END $$;
});
my $baskets = PostgreSQL::Test::Utils::tempdir() . '/baskets.sql';
PostgreSQL::Test::Utils::append_to_file($baskets, q{
\set n random(1, 400)
\set op random(1, 10)
\if :op <= 7
SELECT basket(:n);
\else
SELECT settle(:n);
\endif
});
my $log_offset = -s $node->logfile;
my ($bout, $berr);
ok( IPC::Run::run(
		[
			'pgbench', '-n', '-c', '32', '-j', '4', '-t', '40', '-f', $baskets,
			'-h', $node->host, '-p', $node->port, 'postgres'
		],
		'>', \$bout, '2>', \$berr),
	'baskets: 32 clients ran') or diag($berr);
like($bout, qr/number of failed transactions: 0 /, 'baskets: no client failed');
unlike(slurp_file($node->logfile, $log_offset), qr/deadlock detected/,
	'baskets in any order never deadlock');
cmp_ok($node->safe_psql('postgres',
		q{SELECT count(DISTINCT reservation_id) FROM consistency.reservations}),
	'>', 100, 'baskets: many baskets were reserved');
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.check_inventory()'),
	'0', 'baskets: check_inventory() is empty');

# An immediate shutdown in the middle of a sale.
$node->safe_psql('postgres', q{
	TRUNCATE answers;
	DELETE FROM consistency.reservations;
	DELETE FROM consistency.inventory;
	SELECT consistency.stock_set('sale', 500, 16);
});
my ($out, $err);
my $crowd = IPC::Run::start(pgbench_cmd('-T', '60'), '>', \$out, '2>', \$err);
$node->poll_query_until('postgres', 'SELECT count(*) >= 300 FROM answers')
  or die 'the sale did not get going';
$node->stop('immediate');
$crowd->finish;
$node->start;
my ($held, $on_hand, $confirmed) = split /\|/, $node->safe_psql('postgres', q{
	SELECT (SELECT sum(qty) FROM consistency.reservations WHERE status = 'active'),
		   (SELECT sum(on_hand) FROM consistency.inventory),
		   (SELECT coalesce(sum(qty), 0) FROM consistency.reservations WHERE status = 'confirmed')});
cmp_ok($held, '>', 0, 'the crash hit a sale in progress');
is($on_hand + $confirmed, 500, 'after the crash: stock on hand plus units sold is still 500');
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.check_inventory()'),
	'0', 'after the crash: check_inventory() is empty');
is(finish_sale(), 500, 'after the crash: the sale finishes at exactly 500 units');

# A buyer waiting for a slot (the row of a one-slot SKU, or the slot locks of a 16-slot SKU)
# gives up at lock_timeout with 55P03, and nothing is stored.
for my $slots (1, 16)
{
	$node->safe_psql('postgres', qq{SELECT consistency.stock_set('slow-$slots', 32, $slots)});
	my $holder = $node->background_psql('postgres');
	$holder->query_safe(q{BEGIN});
	$holder->query_safe(qq{SELECT consistency.stock_add('slow-$slots', 1)});
	my ($ret, $stdout, $stderr) = $node->psql('postgres', qq{
		SET lock_timeout = '200ms';
		SELECT consistency.reserve('slow-$slots', 1, 'patient-$slots');
	}, extra_params => ['-v', 'VERBOSITY=verbose']);
	like($stderr, qr/55P03.*lock timeout/s, "slots=$slots: a waiting buyer honours lock_timeout");
	$holder->query_safe(q{COMMIT});
	$holder->quit;
	is($node->safe_psql('postgres',
			qq{SELECT count(*) FROM consistency.reservations WHERE reservation_id = 'patient-$slots'}),
		'0', "slots=$slots: the buyer that gave up stored nothing");
}

$node->stop;
done_testing();
