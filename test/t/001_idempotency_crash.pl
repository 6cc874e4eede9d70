# Crash safety of idempotency keys on a real server:
# - a completed key survives an immediate shutdown (no checkpoint) and replays the same
#   response after restart;
# - a transaction killed midway (backend terminated, or the whole server crashed) leaves
#   neither its key nor its business write, so the retry runs afresh.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# What a retry would be told, without keeping the claim (a claim may not commit unanswered).
sub status_of
{
	my ($node, $key) = @_;
	return $node->safe_psql('postgres', qq{
		BEGIN;
		SELECT status || coalesce(' ' || response::text, '')
		  FROM consistency.idem_begin('$key', 'fp');
		ROLLBACK;
	});
}

my $node = PostgreSQL::Test::Cluster->new('idem');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE TABLE orders (id serial PRIMARY KEY, key text NOT NULL);
});

# A completed key, then a crash before any checkpoint could write it out.
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT * FROM consistency.idem_begin('order-1', 'fp');
	INSERT INTO orders (key) VALUES ('order-1');
	SELECT consistency.idem_complete('order-1', '{"order_id": 1, "total": 42.50}');
	COMMIT;
});
$node->stop('immediate');
$node->start;
is(status_of($node, 'order-1'),
	'replay {"total": 42.50, "order_id": 1}',
	'completed key replays the same response after an immediate shutdown');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'),
	'1', 'the business write survived exactly once');

# A transaction killed midway by pg_terminate_backend.
my $victim = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
$victim->query_safe(q{BEGIN});
$victim->query_safe(q{SELECT status FROM consistency.idem_begin('order-2', 'fp')});
$victim->query_safe(q{INSERT INTO orders (key) VALUES ('order-2')});
# a duplicate that does not wait sees the claim in progress
is( $node->safe_psql('postgres',
		q{BEGIN; SELECT status FROM consistency.idem_begin('order-2', 'fp', wait => false); ROLLBACK;}),
	'in_progress', 'claim of the running transaction is seen as in_progress');
# a duplicate that waits gives up at lock_timeout with 55P03, and writes nothing
my ($ret, $out, $err) = $node->psql('postgres', q{
	SET lock_timeout = '200ms';
	BEGIN;
	SELECT status FROM consistency.idem_begin('order-2', 'fp');
	ROLLBACK;
}, extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/55P03.*lock timeout/s, 'a waiting duplicate honours lock_timeout');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid, 10000)");
$victim->quit;
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM consistency.idempotency_keys WHERE key = 'order-2'}),
	'0', 'terminated transaction left no key');
is($node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE key = 'order-2'}),
	'0', 'terminated transaction left no business write');

# A transaction in flight when the whole server crashes.
$victim = $node->background_psql('postgres', on_error_stop => 0);
$victim->query_safe(q{BEGIN});
$victim->query_safe(q{SELECT status FROM consistency.idem_begin('order-3', 'fp')});
$victim->query_safe(q{INSERT INTO orders (key) VALUES ('order-3')});
$victim->query_safe(q{SELECT consistency.idem_complete('order-3', '{"order_id": 3}')});
$node->stop('immediate');
$victim->quit;
$node->start;
is(status_of($node, 'order-3'),
	'new', 'uncommitted claim vanished with the crash: the retry runs afresh');
is($node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE key = 'order-3'}),
	'0', 'and its business write is gone too');

# A lease committed before the crash is still there, with its recovery point.
$node->safe_psql('postgres', q{
	SELECT status FROM consistency.idem_lease('pay-1', 'fp', lease => '1 hour');
	SELECT consistency.idem_checkpoint('pay-1', 'card charged');
});
$node->stop('immediate');
$node->start;
is( $node->safe_psql('postgres',
		q{SELECT status || ' ' || recovery_point || ' ' || attempt FROM consistency.idem_lease('pay-1', 'fp')}),
	'in_progress card charged 1', 'a live lease and its recovery point survive a crash');

$node->stop;
done_testing();
