# examples/http_idempotency/app.py (Flask's threaded server, psycopg 3) on a throwaway cluster,
# driven over loopback HTTP by curl, as a role granted only consistency_user:
# - 400 for a missing or malformed Idempotency-Key and for a bad body, 413 for a large one (the
#   key stays unused);
# - the first request 201, its retries the stored status, Location and body byte for byte;
#   a reformatted body is the same request, another body 422;
# - concurrent duplicates while the first request is inside its transaction: 409 with
#   Retry-After (conflict mode), or they wait and replay (wait mode), or 409 after the wait
#   timeout; an unsynchronised burst: exactly one 201, the others 409 or the replay;
# - payments under a lease: a duplicate while the lease is live gets 409 with the lease's
#   Retry-After;
# - the service killed (SIGKILL, by pid) while a request is inside its transaction, and while
#   one is inside a lease after charging the provider: restarted, the retry succeeds once (the
#   lease's retry resumes from the checkpoint: the provider is not charged twice);
# then the database: one order and one payment per key, every key completed.
# Requests are held at a known point by a lock the test takes (LOCK TABLE), not by timing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Digest::SHA qw(sha256_hex);

my $app = "$ENV{TESTDIR}/examples/http_idempotency/app.py";
my $node = PostgreSQL::Test::Cluster->new('http');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE ROLE shop LOGIN;
	GRANT consistency_user TO shop;
	GRANT CREATE ON DATABASE postgres TO shop;
});
$node->safe_psql('postgres', slurp_file("$ENV{TESTDIR}/examples/http_idempotency/schema.sql"),
	extra_params => [ '-U', 'shop' ]);
my $dsn = sprintf('host=%s port=%d dbname=postgres user=shop', $node->host, $node->port);
my $tmp = PostgreSQL::Test::Utils::tempdir;

# ---- the service: start (waits until it listens), kill by pid, stop ----------------------------
my $nservices = 0;
sub start_service
{
	my (@opts) = @_;
	my $n = ++$nservices;
	my $pf = "$tmp/service$n.port";
	my $h = IPC::Run::start([ '/usr/bin/python3', $app, '--dsn', $dsn, '--port-file', $pf, @opts ],
		'>', "$PostgreSQL::Test::Utils::log_path/http_service$n.log", '2>&1');
	for (my $i = 0; !-e $pf; $i++)
	{
		die("service $n did not start: "
			  . slurp_file("$PostgreSQL::Test::Utils::log_path/http_service$n.log")) if $i > 600;
		select(undef, undef, undef, 0.1);
	}
	my ($port, $pid) = split ' ', slurp_file($pf);
	return { h => $h, port => $port, pid => $pid, app => "http_idempotency:$port" };
}

sub kill_service
{
	my ($s) = @_;
	kill 'KILL', $s->{pid};
	$s->{h}->finish;
	# its database sessions end once they notice the client is gone
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = '$s->{app}'")
	  or die "the killed service's sessions did not end";
}

sub stop_service
{
	my ($s) = @_;
	kill 'TERM', $s->{pid};
	$s->{h}->finish;
}

# ---- HTTP with curl: start, finish -> {status, headers (lower case), body, raw} -------------
sub req_start
{
	my ($s, $path, $key_header, $body) = @_;
	my @cmd = ('curl', '-sS', '-i', '-X', 'POST', '-H', 'Content-Type: application/json',
		'-H', 'Expect:', '--data-binary', $body);
	push @cmd, '-H', "Idempotency-Key: $key_header" if defined $key_header;
	my $r = { out => '', err => '' };
	$r->{h} = IPC::Run::start([ @cmd, "http://127.0.0.1:$s->{port}$path" ], '>', \$r->{out},
		'2>', \$r->{err});
	return $r;
}

sub req_finish
{
	my ($r) = @_;
	$r->{h}->finish;
	$r->{curl_exit} = $r->{h}->result(0);
	return $r if $r->{out} eq '';
	my ($head, $body) = split /\r\n\r\n/, $r->{out}, 2;
	my ($status_line, @lines) = split /\r\n/, $head;
	($r->{status}) = $status_line =~ m{^HTTP/\S+ (\d+)};
	$r->{headers} = { map { /^([^:]+):\s*(.*)$/ ? (lc $1, $2) : () } @lines };
	$r->{body} = $body;
	return $r;
}

# a key as the draft sends it: a Structured Field string
sub req
{
	my ($s, $path, $key, $body) = @_;
	return req_finish(req_start($s, $path, defined $key ? "\"$key\"" : undef, $body));
}

sub replayed
{
	my ($r) = @_;
	return ($r->{headers}{'idempotent-replayed'} // '') eq 'true';
}

sub is_problem
{
	my ($r, $status, $type, $name) = @_;
	is($r->{status}, $status, "$name: $status");
	is($r->{headers}{'content-type'}, 'application/problem+json', "$name: a problem details body");
	like($r->{body}, qr{"type": "/problems/\Q$type\E".*"status": $status}, "$name: type $type");
}

sub sql { return $node->safe_psql('postgres', $_[0]); }

# a session of the test's own, to hold a request at a known point
my $locker = $node->background_psql('postgres');
sub waiting_on
{
	my ($s, $rel) = @_;
	$node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		 WHERE a.application_name = '$s->{app}' AND l.relation = '$rel'::regclass AND NOT l.granted})
	  or die "no request of $s->{app} waits on $rel";
}

my %order_keys;		# every key a POST /orders got 201 for
my $svc = start_service('--lease', '1 hour');

# ---- 400: the header is required and is a Structured Field string; a bad body uses no key ----
my $body1 = '{"customer":"alice","item":"espresso machine","qty":1}';
is_problem(req($svc, '/orders', undef, $body1), 400, 'idempotency-key-missing', 'no Idempotency-Key');
is_problem(req_finish(req_start($svc, '/orders', 'k-bare-token', $body1)), 400,
	'idempotency-key-malformed', 'a key that is not a quoted string');
is_problem(req($svc, '/orders', '', $body1), 400, 'idempotency-key-malformed', 'an empty key');
is_problem(req($svc, '/orders', 'k-1', '{"customer":"alice"'), 400, 'invalid-body', 'a body that is not JSON');
is_problem(req($svc, '/orders', 'k-1', '{"customer":"alice","item":"mug","qty":0}'), 400, 'invalid-body',
	'a quantity of 0');
is_problem(req($svc, '/orders', 'k-1', '{"customer":"alice","item":"mug","qty":2147483648}'), 400, 'invalid-body',
	'a quantity past the int4 column');
is_problem(req($svc, '/orders', 'k-1', '{"customer":"al\\u0000ice","item":"mug","qty":1}'), 400, 'invalid-body',
	'a NUL character, which text cannot hold');
is_problem(req($svc, '/orders', 'k-1', '{"customer":"' . ('a' x 70000) . '","item":"mug","qty":1}'), 413, 'body-too-large',
	'a body over 64 kB');
is(sql('SELECT count(*) FROM shop.orders') . '/' . sql('SELECT count(*) FROM consistency.idempotency_keys'),
	'0/0', 'the refused requests stored nothing');

# ---- first request, retries, another body ------------------------------------------------------
my $first = req($svc, '/orders', 'k-1', $body1);
is($first->{status}, 201, 'the first request creates the order (201)');
ok(!replayed($first), 'and is not a replay');
like($first->{headers}{location}, qr{^/orders/\d+$}, 'with a Location');
like($first->{body}, qr/^\{"id": \d+, "customer": "alice", "item": "espresso machine", "qty": 1, "status": "created"\}$/,
	'and the order as JSON');
$order_keys{'k-1'} = 1;
for my $i (1 .. 3)
{
	my $retry = req($svc, '/orders', 'k-1', $body1);
	ok($retry->{status} == 201 && replayed($retry), "retry $i: the stored 201, marked Idempotent-Replayed");
	ok($retry->{body} eq $first->{body} && $retry->{headers}{location} eq $first->{headers}{location},
		"retry $i: body and Location byte for byte");
}
my $reformatted = req($svc, '/orders', 'k-1', qq{{ "qty": 1,\n  "item": "espresso machine", "customer": "alice" }});
ok(replayed($reformatted) && $reformatted->{body} eq $first->{body},
	'the same body reformatted (key order, whitespace) is the same request: replayed');
is_problem(req($svc, '/orders', 'k-1', '{"customer":"alice","item":"espresso machine","qty":2}'), 422,
	'idempotency-key-reused', 'the same key with another body');
my $escaped = req($svc, '/orders', 'k-\\"quoted\\"', '{"customer":"bob","item":"mug","qty":1}');
is($escaped->{status}, 201, 'a key with escaped quotes in its sf-string is accepted');
is(sql(q{SELECT idempotency_key FROM shop.orders WHERE customer = 'bob'}), 'k-"quoted"',
	'and unescaped');
$order_keys{'k-"quoted"'} = 1;
is(sql('SELECT count(*) FROM shop.orders'), '2', 'two orders so far');

# ---- concurrent duplicates, conflict mode: 409 + Retry-After while the first is running ---------
my $body2 = '{"customer":"carol","item":"grinder","qty":2}';
$locker->query_safe('BEGIN; LOCK TABLE shop.orders IN SHARE MODE');
my $held = req_start($svc, '/orders', '"k-2"', $body2);
waiting_on($svc, 'shop.orders');
is(sql(qq{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	WHERE a.application_name = '$svc->{app}' AND l.locktype = 'advisory' AND l.objsubid = 18755 AND l.granted}),
	'1', 'the first request holds the key inside its transaction');
my @dups = map { req_start($svc, '/orders', '"k-2"', $body2) } 1 .. 6;
my @answers = map { req_finish($_) } @dups;
is(scalar(grep { $_->{status} == 409 && ($_->{headers}{'retry-after'} // '') eq '1' } @answers), 6,
	'6 concurrent duplicates: each 409 with Retry-After: 1');
is_problem($answers[0], 409, 'request-in-progress', 'a concurrent duplicate');
is_problem(req($svc, '/orders', 'k-2', '{"customer":"carol","item":"grinder","qty":3}'), 422,
	'idempotency-key-reused', 'another body while the first request is still running');
$locker->query_safe('ROLLBACK');
$held = req_finish($held);
ok($held->{status} == 201 && !replayed($held), 'the first request then creates its order');
my $after = req($svc, '/orders', 'k-2', $body2);
ok(replayed($after) && $after->{body} eq $held->{body}, 'a duplicate retried afterwards gets its response');
$order_keys{'k-2'} = 1;

# an unsynchronised burst of 8 with a fresh key
my $body3 = '{"customer":"dave","item":"kettle","qty":1}';
@answers = map { req_finish($_) } map { req_start($svc, '/orders', '"k-3"', $body3) } 1 .. 8;
my @created = grep { $_->{status} == 201 && !replayed($_) } @answers;
is(scalar(@created), 1, 'a burst of 8 duplicates: exactly one 201 that is not a replay');
is(scalar(grep { $_->{status} == 409 || ($_->{status} == 201 && replayed($_)) } @answers), 7,
	'the 7 others 409 or the replay');
is(scalar(grep { $_->{status} == 201 && $_->{body} ne $created[0]{body} } @answers), 0,
	'every 201 of the burst has the same body');
$order_keys{'k-3'} = 1;

# ---- wait mode: duplicates wait for the first request and replay it -----------------------------
my $waiting = start_service('--on-concurrent', 'wait', '--wait-timeout', '5min');
my $body4 = '{"customer":"erin","item":"scale","qty":4}';
$locker->query_safe('BEGIN; LOCK TABLE shop.orders IN SHARE MODE');
$held = req_start($waiting, '/orders', '"k-4"', $body4);
waiting_on($waiting, 'shop.orders');
@dups = map { req_start($waiting, '/orders', '"k-4"', $body4) } 1 .. 4;
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 4 FROM pg_stat_activity
	 WHERE application_name = '$waiting->{app}' AND wait_event_type = 'Lock' AND wait_event = 'advisory'}),
	'wait mode: 4 duplicates wait for the first request (on its key or fingerprint lock)');
$locker->query_safe('ROLLBACK');
$held = req_finish($held);
ok($held->{status} == 201 && !replayed($held), 'wait mode: the first request creates its order');
@answers = map { req_finish($_) } @dups;
is(scalar(grep { $_->{status} == 201 && replayed($_) && $_->{body} eq $held->{body} } @answers), 4,
	'wait mode: each waiting duplicate gets the first response, byte for byte');
$order_keys{'k-4'} = 1;
stop_service($waiting);

# wait mode with a wait timeout: a key held by another transaction (here the test's) -> 409
my $impatient = start_service('--on-concurrent', 'wait', '--wait-timeout', '200ms');
my $body5 = '{"customer":"frank","item":"tray","qty":1}';
$locker->query_safe(sprintf(q{BEGIN; SELECT status FROM consistency.idem_begin('k-5', 'sha256:%s', scope => 'POST /orders')},
	sha256_hex($body5)));
my $timed_out = req($impatient, '/orders', 'k-5', $body5);
is_problem($timed_out, 409, 'request-in-progress', 'wait mode, past --wait-timeout');
is($timed_out->{headers}{'retry-after'}, '1', 'wait mode, past --wait-timeout: Retry-After: 1');
$locker->query_safe('ROLLBACK');
my $k5 = req($impatient, '/orders', 'k-5', $body5);
ok($k5->{status} == 201 && !replayed($k5), 'once the other transaction rolled back, the retry creates the order');
$order_keys{'k-5'} = 1;
stop_service($impatient);

# ---- payments under a lease: a duplicate while the lease is live --------------------------------
my ($order_id) = $first->{headers}{location} =~ m{/orders/(\d+)};
my $pay1 = qq({"order_id":$order_id,"amount_cents":4990});
$locker->query_safe('BEGIN; LOCK TABLE shop.payments IN SHARE MODE');
$held = req_start($svc, '/payments', '"p-1"', $pay1);
waiting_on($svc, 'shop.payments');
my $dup = req($svc, '/payments', 'p-1', $pay1);
is_problem($dup, 409, 'request-in-progress', 'a payment duplicate while the lease is live');
ok($dup->{headers}{'retry-after'} > 3000 && $dup->{headers}{'retry-after'} <= 3600,
	'its Retry-After is when the one-hour lease runs out') or diag($dup->{headers}{'retry-after'});
is_problem(req($svc, '/payments', 'p-1', qq({"order_id":$order_id,"amount_cents":1})), 422,
	'idempotency-key-reused', 'a payment with the same key and another amount');
$locker->query_safe('ROLLBACK');
$held = req_finish($held);
ok($held->{status} == 201 && !replayed($held), 'the payment completes (201)');
my $again = req($svc, '/payments', 'p-1', $pay1);
ok(replayed($again) && $again->{body} eq $held->{body}, 'its retry is the stored response');
is(sql(q{SELECT count(*) FROM shop.payments WHERE idempotency_key = 'p-1'}) . ' '
	  . sql(q{SELECT calls FROM provider.charges WHERE merchant_key = 'p-1'}),
	'1 1', 'one payment, and the provider was called once');
is_problem(req($svc, '/payments', 'p-2', '{"order_id":999999,"amount_cents":100}'), 404, 'not-found',
	'a payment for no order');
is(sql(q{SELECT count(*) FROM consistency.idempotency_keys WHERE key = 'p-2'}), '0',
	'releases its lease: nothing stored for the key');

# ---- the service killed while a request is inside its transaction -------------------------------
my $body6 = '{"customer":"grace","item":"dripper","qty":2}';
$locker->query_safe('BEGIN; LOCK TABLE shop.orders IN SHARE MODE');
$held = req_start($svc, '/orders', '"k-6"', $body6);
waiting_on($svc, 'shop.orders');
kill 'KILL', $svc->{pid};
$held = req_finish($held);
ok(!defined $held->{status}, 'killed inside its transaction: the client gets no response')
  or diag($held->{out});
$locker->query_safe('ROLLBACK');
kill_service($svc);
$svc = start_service('--lease', '2s');
my $k6 = req($svc, '/orders', 'k-6', $body6);
ok($k6->{status} == 201 && !replayed($k6), 'after a restart the retry creates the order');
my $k6b = req($svc, '/orders', 'k-6', $body6);
ok(replayed($k6b) && $k6b->{body} eq $k6->{body}, 'once: the next retry replays it');
$order_keys{'k-6'} = 1;

# ---- the service killed inside a lease, after charging the provider -----------------------------
my $pay3 = qq({"order_id":$order_id,"amount_cents":1500});
$locker->query_safe('BEGIN; LOCK TABLE shop.payments IN SHARE MODE');
$held = req_start($svc, '/payments', '"p-3"', $pay3);
waiting_on($svc, 'shop.payments');
is(sql(q{SELECT state || ' ' || attempt || ' ' || (recovery_point = 'charged:' || c.charge_id) || ' ' || c.calls
	FROM consistency.idempotency_keys k JOIN provider.charges c ON c.merchant_key = k.key
	WHERE k.scope = 'POST /payments' AND k.key = 'p-3'}),
	'in_progress 1 true 1', 'inside the lease: attempt 1, the provider charged once, the charge checkpointed');
kill 'KILL', $svc->{pid};
$held = req_finish($held);
ok(!defined $held->{status}, 'killed inside the lease: the client gets no response');
$locker->query_safe('ROLLBACK');
kill_service($svc);
$svc = start_service('--lease', '2s');
my ($paid, @conflicts);
for my $try (1 .. 100)
{
	my $r = req($svc, '/payments', 'p-3', $pay3);
	if ($r->{status} == 409)
	{
		push @conflicts, $r;
		sleep($r->{headers}{'retry-after'} // 1);
		next;
	}
	$paid = $r;
	last;
}
note(scalar(@conflicts) . ' retries got 409 while the dead handler\'s lease was live');
is(scalar(grep { ($_->{headers}{'retry-after'} // '') !~ /^[12]$/ } @conflicts), 0,
	'each 409 before the lease ran out had a Retry-After within the 2 s lease');
ok($paid && $paid->{status} == 201 && !replayed($paid), 'the retry after the lease ran out pays (201)')
  or diag(explain($paid));
is(sql(q{SELECT p.attempt || ' ' || (p.charge_id = c.charge_id) || ' ' || c.calls
	FROM shop.payments p JOIN provider.charges c ON c.merchant_key = p.idempotency_key
	WHERE p.idempotency_key = 'p-3'}),
	'2 true 1', 'it resumed as attempt 2 from the checkpoint: the first charge, the provider called once');
my $paid2 = req($svc, '/payments', 'p-3', $pay3);
ok(replayed($paid2) && $paid2->{body} eq $paid->{body}, 'once: the next retry replays it');
stop_service($svc);

# ---- the database: one order and one payment per key --------------------------------------------
is(sql(q{SELECT string_agg(idempotency_key || '=' || n, ',' ORDER BY idempotency_key)
	FROM (SELECT idempotency_key, count(*) AS n FROM shop.orders GROUP BY 1) o}),
	join(',', map { "$_=1" } sort keys %order_keys), 'one order per key that got a 201, no other order');
is(sql(q{SELECT string_agg(idempotency_key || '=' || n, ',' ORDER BY idempotency_key)
	FROM (SELECT idempotency_key, count(*) AS n FROM shop.payments GROUP BY 1) p}),
	'p-1=1,p-3=1', 'one payment per key');
is(sql(q{SELECT string_agg(merchant_key || '=' || calls, ',' ORDER BY merchant_key) FROM provider.charges}),
	'p-1=1,p-3=1', 'the provider was charged once per key');
is(sql(q{SELECT string_agg(DISTINCT state::text, ',') FROM consistency.idempotency_keys}), 'completed',
	'every key is completed');

$locker->quit;
$node->stop;
done_testing();
