# Crash under mixed load: 32 pgbench clients mix idempotent orders, leases, versioned updates,
# reservations (reserve, reserve_all, confirm, release, retries, expiry) and two-phase commits
# over two participant databases with the decision log, on a primary with a streaming standby.
# Five times, at a random moment of the load, the primary is stopped with `pg_ctl stop -m
# immediate`.  After each restart:
# - the load saw no error but the loss of its connections (pgbench's errors and the server
#   log's, by SQLSTATE: nothing but 57P0x and 08xxx);
# - every completed idempotency key has exactly its order (or payment, with the lease's
#   attempt), and every order and payment its completed key; an unfinished lease has none;
# - every accepted versioned update is logged once (version - 1 = balance = log rows, the log
#   holds versions 2..version), and no version or lease attempt went down since the last round;
# - check_inventory() is empty and stock is conserved: initial = sold + reserved + available,
#   every sale is one confirmed reservation and every stored reservation one intent;
# - resolve_stale (dry_run => false) leaves nothing prepared, and exactly the participant
#   transactions whose coordinator logged commit are committed; two in-doubt transactions
#   made on purpose before every crash (decided, and still deciding) end as decided;
# - every lease cut by the crash (one is cut on purpose) resumes with the next attempt from its
#   last recovery point, and the cut attempt is fenced out;
# - every COMMIT/ROLLBACK PREPARED the resolver reported doing has its tpc_resolution_log row;
# - after catching up, the standby agrees with the primary row for row on the extension's
#   tables and the workload's.
# Then each check is shown to fail on a violation made on purpose (rolled back).
# The crash moments (and pgbench's random choices) come from a seed printed at the start;
# CONSISTENCY_CRASH_SEED=<seed> repeats them, as far as scheduling allows.  The workload is in 060_crash_mixed_load/.  max_worker_processes stays at its
# default (8), which the resolvers of the load share; shared_preload_libraries is left to
# TEMP_CONFIG, the test works with and without it.
use strict;
use warnings;
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

my $rounds  = 5;
my $clients = 32;
my $dir     = dirname(__FILE__) . '/060_crash_mixed_load';
my $seed    = $ENV{CONSISTENCY_CRASH_SEED} // (time() ^ $$) % 1000000;
srand($seed);
diag("crash moments and pgbench from seed $seed (CONSISTENCY_CRASH_SEED=$seed repeats them)");

my $password = 'crash-test';

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
max_connections = 160
max_prepared_transactions = 100
shared_buffers = 32MB
log_statement = none
log_line_prefix = '%m [%p] %e %q%a '
});
# The participants are reached through dblink as app, which dblink allows a non-superuser only
# with a password: SCRAM for app on the participant databases, trust for everything else.
my $hba = $primary->data_dir . '/pg_hba.conf';
my $hba_rest = slurp_file($hba);
open my $fh, '>', $hba or die "could not write $hba: $!";
print $fh "local ledger,warehouse app,straggler scram-sha-256\n$hba_rest";
close $fh;
$primary->start;

my $dsn = sprintf("host=%s port=%d user=%%s password=$password dbname=%%s",
	$primary->host, $primary->port);
$primary->safe_psql('postgres', qq{
	CREATE ROLE app LOGIN PASSWORD '$password';
	CREATE ROLE straggler LOGIN PASSWORD '$password';
	CREATE DATABASE shop;
	CREATE DATABASE ledger;
	CREATE DATABASE warehouse;
});
$primary->safe_psql('shop', 'CREATE EXTENSION consistency');
$primary->safe_psql('shop', slurp_file("$dir/workload.sql"));
$primary->safe_psql($_, slurp_file("$dir/participant.sql")) for ('ledger', 'warehouse');
for my $role ('app', 'straggler')
{
	for my $db ('ledger', 'warehouse')
	{
		$primary->safe_psql('postgres',
			"ALTER ROLE $role IN DATABASE shop SET mix.${db}_dsn = '" . sprintf($dsn, $role, $db) . "'");
	}
}

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf', "wal_retrieve_retry_interval = '100ms'");
$standby->start;

# pgbench: every script, weighted; a bound far beyond any round (the crash ends it).
my @scripts = (
	'orders@30', 'leases@15', 'versions@20', 'reservations@20',
	'tpc@10',    'expire@3',  'resolve@2');
my @pgbench = (
	'pgbench', '-n', '-c', $clients, '-j', '2', '-T', '300', '--verbose-errors',
	(map { my ($f, $w) = split /\@/; ('-f', "$dir/$f.pgbench\@$w") } @scripts),
	'-h', $primary->host, '-p', $primary->port, '-U', 'app', 'shop');

# What the load has committed so far, one count per kind of operation.
my @kinds = qw(orders payments versioned reservations sales expired tpc_commit tpc_abort tpc_none);
my $progress_sql = q{
	SELECT concat_ws(' ',
		(SELECT count(*) FROM mix.orders),
		(SELECT count(*) FROM mix.payments),
		(SELECT count(*) FROM mix.account_log),
		(SELECT count(*) FROM mix.reservation_intents),
		(SELECT count(*) FROM mix.sales),
		(SELECT count(*) FROM consistency.reservations WHERE status = 'expired'),
		(SELECT count(*) FROM mix.tpc_coordinated WHERE kind = 'commit'),
		(SELECT count(*) FROM mix.tpc_coordinated WHERE kind = 'abort'),
		(SELECT count(*) FROM mix.tpc_coordinated WHERE kind = 'none'))};

sub progress
{
	my %p;
	@p{@kinds} = split / /, $primary->safe_psql('shop', $progress_sql);
	return \%p;
}

# What the load may report when the server goes away under it: pgbench's messages, libpq's
# notices and errors, and the server log's lines by SQLSTATE.  Besides those, a participant's
# log shows phase 2 racing the resolver (which counts as done: see mix.tpc_finish).  The
# resolver's warning that its log was not written is left to the check of the log itself
# (below), which says what is missing.
my $log_not_written = 'the resolution was not written to consistency.tpc_resolution_log';
my $connection_lost = join '|', map { quotemeta } (
	'terminating connection due to immediate shutdown command',
	'terminating connection due to administrator command',
	'server closed the connection unexpectedly',
	'perhaps the backend died while processing',
	'could not receive data from server',
	'no connection to the server',
	'could not establish connection',
	'the database system is shutting down',
	'Run was aborted; the above results are incomplete',
	$log_not_written);
$connection_lost = qr/$connection_lost/;

sub expected_log_line
{
	my ($sqlstate, $severity, $message) = @_;
	return 1 if $sqlstate =~ /^(?:57P0[123]|08...)$/;
	return 1
	  if $severity eq 'ERROR'
	  && (($sqlstate eq '42704' && $message =~ /^prepared transaction with identifier "cy[12]:[^"]+" does not exist$/)
		|| ($sqlstate eq '55000' && $message =~ /^prepared transaction with identifier "cy[12]:[^"]+" is busy$/));
	return 1 if $sqlstate eq 'YC406' && $severity eq 'WARNING' && $message eq $log_not_written;
	return 0;
}

# pgbench's stderr, one message per pgbench line or libpq notice/error (with the lines that
# continue it), less those of a lost connection.
sub unexpected_pgbench_messages
{
	my ($err) = @_;
	return grep { /\S/ && !/$connection_lost/ && !/^pgbench: setting random seed to \d+\n?$/ }
	  split /^(?=pgbench: |WARNING: |ERROR: |FATAL: |NOTICE: )/m, $err;
}

# Every server log line of severity WARNING or worse since $offset that is not expected, with
# the DETAIL/CONTEXT/STATEMENT/HINT lines that follow it.
sub bad_log_lines
{
	my ($node, $offset) = @_;
	my (@bad, $keep);
	for my $line (split /\n/, slurp_file($node->logfile, $offset))
	{
		if ($line =~ /^\S+ \S+ \S+ \[\d+\] (\S{5}) .*?\b(WARNING|ERROR|FATAL|PANIC):  (.*)$/)
		{
			$keep = !expected_log_line($1, $2, $3);
			push @bad, $line if $keep;
		}
		elsif ($line =~ /^\S+ \S+ \S+ \[\d+\] \S{5} .*?\b(DETAIL|CONTEXT|STATEMENT|HINT):/)
		{
			push @bad, $line if $keep;
		}
		else
		{
			$keep = 0;
		}
	}
	return @bad;
}

# The filters let through what a crash causes, and nothing else.
is( scalar(unexpected_pgbench_messages(
			"WARNING:  terminating connection due to immediate shutdown command\n"
			  . "pgbench: error: client 4 aborted in command 2 (SQL) of script 1; perhaps the backend died while processing\n"
			  . "pgbench: error: Run was aborted; the above results are incomplete.\n"
			  . "pgbench: setting random seed to 12345\n")),
	0, 'the pgbench filter lets lost connections through');
is( scalar(unexpected_pgbench_messages(
			"pgbench: error: client 3 script 1 aborted in command 2 query 0: ERROR:  duplicate key value violates unique constraint \"x\"\n"
			  . "DETAIL:  Key (id)=(1) already exists.\n"
			  . "pgbench: error: client 5 got an error in command 1 (SQL) of script 2; ERROR:  deadlock detected\n")),
	2, 'the pgbench filter stops any other error');
is( join(',', map { expected_log_line(@$_) } (
		[ '57P01', 'FATAL', 'terminating connection due to administrator command' ],
		[ '08006', 'LOG', 'could not send data to client: Broken pipe' ],
		[ '42704', 'ERROR', 'prepared transaction with identifier "cy2:1:2:3:0123456789abcdef:ledger" does not exist' ],
		[ '42704', 'ERROR', 'relation "x" does not exist' ],
		[ '40P01', 'ERROR', 'deadlock detected' ],
		[ 'XX001', 'WARNING', 'reservation lines hold more than is reserved' ],
		[ 'XX000', 'PANIC', 'could not locate a valid checkpoint record' ])),
	'1,1,1,0,0,0,0', 'the server log filter lets only what a crash causes through');

# Two distributed transactions left in doubt on purpose, coordinated by role straggler (whose
# prepared transactions the load's resolver, running as app, may not finish): one decided
# commit whose phase 2 never comes, one still deciding when the server dies.
sub make_stragglers
{
	my $decided = $primary->safe_psql('shop', q{
		BEGIN;
		SELECT mix.tpc_begin(1, 1);
		SELECT array_to_string(gids, ' ') FROM mix.tpc_coordinated
		 WHERE coordinator_xid = pg_current_xact_id();
		COMMIT;
	}, extra_params => ['-U', 'straggler']);
	my $deciding = $primary->background_psql('shop', on_error_stop => 0,
		extra_params => ['-U', 'straggler']);
	$deciding->query_safe('BEGIN');
	$deciding->query_safe('SELECT mix.tpc_begin(1, 2)');
	my $undecided = $deciding->query_safe(q{
		SELECT array_to_string(gids, ' ') FROM mix.tpc_coordinated
		 WHERE coordinator_xid = pg_current_xact_id()});
	my @decided = split / /, (split /\n/, $decided)[-1];
	return ($deciding, \@decided, [ split / /, $undecided ]);
}

# Each check returns the rows that violate it (at most 5): none expected.
my @checks = (
	[ 'every completed order key has exactly one order', q{
		SELECT k.key || ': ' || k.state || ', ' || count(o.id) || ' orders'
		  FROM consistency.idempotency_keys k LEFT JOIN mix.orders o ON o.key = k.key
		 WHERE k.scope = 'orders'
		 GROUP BY k.key, k.state HAVING k.state <> 'completed' OR count(o.id) <> 1 LIMIT 5} ],
	[ 'every order has its completed key, whose response names it', q{
		SELECT o.id || ' ' || o.key FROM mix.orders o
		 WHERE NOT EXISTS (SELECT FROM consistency.idempotency_keys k
							WHERE k.scope = 'orders' AND k.key = o.key AND k.state = 'completed'
							  AND (k.response ->> 'order_id')::bigint = o.id) LIMIT 5} ],
	[ 'every completed lease has exactly one payment, by its last attempt', q{
		SELECT k.key || ' attempt ' || k.attempt || ': ' || count(p.id) || ' payments'
		  FROM consistency.idempotency_keys k LEFT JOIN mix.payments p ON p.key = k.key
		 WHERE k.scope = 'payments' AND k.state = 'completed'
		 GROUP BY k.key, k.attempt, k.response
		HAVING count(p.id) <> 1 OR min(p.attempt) <> k.attempt
			OR (k.response ->> 'attempt')::int <> k.attempt LIMIT 5} ],
	[ 'an unfinished lease has no payment', q{
		SELECT k.key FROM consistency.idempotency_keys k
		 WHERE k.scope = 'payments' AND k.state = 'in_progress'
		   AND EXISTS (SELECT FROM mix.payments p WHERE p.key = k.key) LIMIT 5} ],
	[ 'every payment has its completed lease', q{
		SELECT p.id || ' ' || p.key FROM mix.payments p
		 WHERE NOT EXISTS (SELECT FROM consistency.idempotency_keys k
							WHERE k.scope = 'payments' AND k.key = p.key AND k.state = 'completed')
		 LIMIT 5} ],
	[ 'every accepted versioned update is logged once: version - 1 = balance = log rows', q{
		SELECT a.id || ': version ' || a.version || ', balance ' || a.balance || ', '
			   || coalesce(l.n, 0) || ' log rows ' || coalesce(l.lo, 0) || '..' || coalesce(l.hi, 0)
		  FROM mix.accounts a
		  LEFT JOIN (SELECT account, count(*) AS n, min(version) AS lo, max(version) AS hi
					   FROM mix.account_log GROUP BY account) l ON l.account = a.id
		 WHERE a.version - 1 <> coalesce(l.n, 0) OR a.balance <> coalesce(l.n, 0)
			OR (l.n > 0 AND (l.lo <> 2 OR l.hi <> a.version)) LIMIT 5} ],
	[ 'check_inventory() is empty', q{
		SELECT sku || ': ' || problem FROM consistency.check_inventory() LIMIT 5} ],
	[ 'stock is conserved: initial = sold + reserved + available', q{
		SELECT format('%s: initial %s, sold %s, reserved %s (active lines %s), available %s (available() %s)',
					  s.sku, s.on_hand, sold, reserved, active, avail, consistency.available(s.sku))
		  FROM mix.initial_stock s,
			   LATERAL (SELECT coalesce(sum(qty) FILTER (WHERE status = 'confirmed'), 0) AS sold,
							   coalesce(sum(qty) FILTER (WHERE status = 'active'), 0) AS active
						  FROM consistency.reservations r WHERE r.sku = s.sku) r,
			   LATERAL (SELECT sum(i.reserved) AS reserved, sum(i.on_hand - i.reserved) AS avail
						  FROM consistency.inventory i WHERE i.sku = s.sku) i
		 WHERE s.on_hand IS DISTINCT FROM sold + reserved + avail OR reserved <> active
			OR avail IS DISTINCT FROM consistency.available(s.sku) LIMIT 5} ],
	[ 'every sale is one confirmed reservation and every confirmed reservation a sale', q{
		SELECT coalesce(s.reservation_id, c.reservation_id) || ': sold ' || coalesce(s.units, 0)
			   || ', confirmed ' || coalesce(c.units, 0)
		  FROM mix.sales s
		  FULL JOIN (SELECT reservation_id, sum(qty) AS units FROM consistency.reservations
					  WHERE status = 'confirmed' GROUP BY reservation_id) c
			ON c.reservation_id = s.reservation_id
		 WHERE s.units IS DISTINCT FROM c.units LIMIT 5} ],
	[ 'every stored reservation is one reserved request, line for line', q{
		SELECT coalesce(i.reservation_id, r.reservation_id) || ': asked ' || coalesce(i.asked, '-')
			   || ', stored ' || coalesce(r.stored, '-')
		  FROM (SELECT reservation_id,
					   string_agg(sku || '=' || qty, ',' ORDER BY sku) AS asked
				  FROM (SELECT reservation_id, sku, sum(qty) AS qty
						  FROM mix.reservation_intents, unnest(skus, qtys) AS u(sku, qty)
						 GROUP BY 1, 2) x GROUP BY 1) i
		  FULL JOIN (SELECT reservation_id, string_agg(sku || '=' || qty, ',' ORDER BY sku) AS stored
					   FROM consistency.reservations GROUP BY 1) r
			ON r.reservation_id = i.reservation_id
		 WHERE i.asked IS DISTINCT FROM r.stored LIMIT 5} ],
	[ 'each coordinator transaction logged exactly its decision for each of its gids', q{
		SELECT c.coordinator_xid || ' ' || c.kind || ': ' || coalesce(d.decisions, 'none')
		  FROM mix.tpc_coordinated c
		  LEFT JOIN (SELECT coordinator_xid, string_agg(gid || '=' || decision, ' ' ORDER BY gid) AS decisions
					   FROM consistency.tpc_decisions GROUP BY 1) d
			ON d.coordinator_xid = c.coordinator_xid
		 WHERE d.decisions IS DISTINCT FROM
			   CASE WHEN c.kind <> 'none' THEN
					(SELECT string_agg(g || '=' || c.kind, ' ' ORDER BY g) FROM unnest(c.gids) g) END
		 LIMIT 5} ],
	[ 'every COMMIT/ROLLBACK PREPARED the resolver reported is in tpc_resolution_log', q{
		SELECT r.gid || ' ' || r.outcome FROM mix.resolutions r
		 WHERE r.id > :resolutions_before AND r.outcome IN ('committed', 'rolled_back')
		   AND NOT EXISTS (SELECT FROM consistency.tpc_resolution_log l
							WHERE l.gid = r.gid AND l.outcome = r.outcome) LIMIT 5} ],
	[ 'every decision belongs to a committed coordinator transaction of the workload', q{
		SELECT d.gid FROM consistency.tpc_decisions d
		  LEFT JOIN (SELECT unnest(gids) AS gid FROM mix.tpc_coordinated) c ON c.gid = d.gid
		 WHERE c.gid IS NULL LIMIT 5} ],
);

# The tables compared between primary and standby, by database.
my %compared = (
	shop => [
		qw(consistency.idempotency_keys consistency.tpc_decisions consistency.tpc_resolution_log
		  consistency.inventory consistency.reservations mix.orders mix.payments mix.accounts
		  mix.account_log mix.reservation_intents mix.sales mix.tpc_coordinated mix.resolutions)
	],
	ledger    => ['public.transfers'],
	warehouse => ['public.transfers'],);

sub table_digests
{
	my ($node) = @_;
	my %d;
	for my $db (sort keys %compared)
	{
		my @sql = map {
			"SELECT '$_', count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '-') FROM $_ t"
		} @{ $compared{$db} };
		for my $row (split /\n/, $node->safe_psql($db, join("\nUNION ALL ", @sql)))
		{
			my ($t, $digest) = split /\|/, $row;
			$d{"$db $t"} = $digest;
		}
	}
	return \%d;
}

# gids committed on a participant, and gids whose commit was logged for it.
sub gid_set
{
	my ($db, $sql) = @_;
	return { map { $_ => 1 } split /\n/, $primary->safe_psql($db, $sql) };
}

my (%version_before, %attempt_before, %totals, @round_notes);
for my $round (1 .. $rounds)
{
	my $r = "round $round";
	my $log_offset = -s $primary->logfile;
	my $before = progress();
	my $resolutions_before = $primary->safe_psql('shop', 'SELECT coalesce(max(id), 0) FROM mix.resolutions');

	my ($out, $err) = ('', '');
	my $load = IPC::Run::start([ @pgbench, '--random-seed=' . ($seed + $round) ], '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));

	# Crash only once every kind of operation has committed a few times in this round (so each
	# is in flight at the crash), then after a random part of two more seconds.
	my $ready = join ' AND ', map {
		my ($i, $min) = ($_, $kinds[$_] =~ /^tpc_(abort|none)$/ ? 2 : 10);
		"(string_to_array(p, ' '))[" . ($i + 1) . "]::bigint >= " . ($before->{ $kinds[$i] } + $min)
	} grep { $kinds[$_] ne 'expired' } 0 .. $#kinds;
	ok($primary->poll_query_until('shop', "SELECT $ready FROM ($progress_sql) AS x(p)"),
		"$r: every kind of operation committed under the load") or diag($err);
	my ($deciding, $decided, $undecided) = make_stragglers();
	# and a lease taken and checkpointed, whose worker never comes back
	my $cut_lease = 100000 + $round;
	$primary->safe_psql('shop', "SELECT mix.lease_take($cut_lease); SELECT mix.lease_step($cut_lease, 1);",
		extra_params => ['-U', 'app']);
	my $delay = sprintf('%.2f', rand(2.0));
	sleep($delay);
	$primary->stop('immediate');
	$load->finish;
	$deciding->quit;

	# The load saw nothing but its connections being cut.
	is(join('', unexpected_pgbench_messages($err)), '', "$r: pgbench reported no error but lost connections");
	unlike($out, qr/number of failed transactions: [1-9]/, "$r: no transaction failed (serialization, deadlock)");

	$primary->start;
	is(join("\n", bad_log_lines($primary, $log_offset)), '',
		"$r: the server logged no error, warning or panic but those of the crash");

	# In doubt after the crash: the load's, and the two stragglers.
	my $in_doubt = $primary->safe_psql('shop', 'SELECT count(*) FROM pg_prepared_xacts');
	my %outcome;
	for my $role ('app', 'straggler')
	{
		for my $row (split /\n/, $primary->safe_psql('shop', qq{
			SET ROLE $role;
			INSERT INTO mix.resolutions (gid, outcome, reason)
			SELECT gid, outcome, reason FROM consistency.resolve_stale('0', dry_run => false)
			RETURNING gid || ' ' || outcome}))
		{
			my ($gid, $o) = split / /, $row;
			$outcome{$gid} = $o;
		}
	}
	my @odd = grep { $outcome{$_} !~ /^(committed|rolled_back|already_resolved)$/ } sort keys %outcome;
	is(join(', ', map { "$_ $outcome{$_}" } @odd), '', "$r: resolve_stale resolved every transaction it listed");
	is($primary->safe_psql('shop', 'SELECT count(*) FROM pg_prepared_xacts'),
		'0', "$r: nothing is left prepared");
	is(join(' ', map { $outcome{$_} // 'untouched' } @$decided, @$undecided),
		'committed committed rolled_back rolled_back',
		"$r: the straggler decided commit was committed, the one still deciding rolled back");

	# Leases cut by the crash (the load's, and the one left on purpose): once expired, a new
	# worker resumes each with the next attempt from its last recovery point and finishes it;
	# the cut attempt is fenced out.
	my %cut = split /[|\n]/, $primary->safe_psql('shop', q{
		SELECT substr(key, 5), attempt || ' ' || coalesce(recovery_point, '-')
		  FROM consistency.idempotency_keys WHERE scope = 'payments' AND state = 'in_progress'});
	$primary->poll_query_until('shop', q{
		SELECT count(*) = 0 FROM consistency.idempotency_keys
		 WHERE scope = 'payments' AND state = 'in_progress' AND lease_expires_at >= now()});
	my @not_resumed;
	for my $k (sort { $a <=> $b } keys %cut)
	{
		my ($att, $rp) = split / /, $cut{$k}, 2;
		my $got = $primary->safe_psql('shop', qq{
			SELECT l.status || ' ' || l.attempt || ' ' || coalesce(l.recovery_point, '-')
			  FROM consistency.idem_lease('pay-$k', 'fp', lease => '1 minute', scope => 'payments') AS l;
			SELECT mix.lease_finish($k, $att);
			SELECT mix.lease_finish($k, $att + 1);}, extra_params => ['-U', 'app']);
		my $want = 'resume ' . ($att + 1) . " $rp\nlost\ncompleted";
		push @not_resumed, "pay-$k: [$got] instead of [$want]" if $got ne $want;
	}
	ok(defined $cut{$cut_lease}, "$r: the lease left on purpose was cut by the crash");
	is(join("\n", @not_resumed), '',
		"$r: every cut lease resumed with the next attempt from its last recovery point, and the cut attempt is fenced");

	# Exactly the participant transactions whose commit was logged are committed.
	for my $db ('ledger', 'warehouse')
	{
		my $have = gid_set($db, 'SELECT gid FROM public.transfers');
		my $logged = gid_set('shop', qq{
			SELECT gid FROM consistency.tpc_decisions WHERE decision = 'commit' AND gid LIKE '%:$db'});
		my @missing = grep { !$have->{$_} } sort keys %$logged;
		my @extra   = grep { !$logged->{$_} } sort keys %$have;
		is(join(' ', @missing[0 .. ($#missing < 4 ? $#missing : 4)]), '',
			"$r: $db committed every transaction whose commit was logged");
		is(join(' ', @extra[0 .. ($#extra < 4 ? $#extra : 4)]), '',
			"$r: $db committed no transaction without a logged commit");
	}

	for my $c (@checks)
	{
		(my $sql = $c->[1]) =~ s/:resolutions_before/$resolutions_before/g;
		next if is($primary->safe_psql('shop', $sql), '', "$r: $c->[0]");
		my @warnings = grep { /YC406/ } split /^/, slurp_file($primary->logfile, $log_offset);
		diag("resolve_stale executed these actions but its log-writing worker never ran: with every\n",
			"max_worker_processes slot taken (other resolvers), only the worker in the caller's database\n",
			"could not start, after the other databases' workers had acted.  The resolver's warnings:\n",
			@warnings)
		  if $c->[0] =~ /tpc_resolution_log/ && @warnings;
	}

	# Versions and lease attempts never go down across a crash.
	my %version = split /[|\n]/, $primary->safe_psql('shop', 'SELECT id, version FROM mix.accounts');
	my @down = grep { $version{$_} < ($version_before{$_} // 1) } sort { $a <=> $b } keys %version;
	is(join(' ', @down), '', "$r: no account's version went down");
	%version_before = %version;
	my %attempt = split /[|\n]/, $primary->safe_psql('shop',
		q{SELECT key, attempt FROM consistency.idempotency_keys WHERE scope = 'payments'});
	my @lost = grep { ($attempt{$_} // 0) < $attempt_before{$_} } sort keys %attempt_before;
	is(join(' ', @lost[0 .. ($#lost < 4 ? $#lost : 4)]), '', "$r: no lease vanished or lost an attempt");
	%attempt_before = %attempt;

	# The standby, caught up, has the same rows.
	$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
	my ($p, $s) = (table_digests($primary), table_digests($standby));
	my @differ = grep { $p->{$_} ne ($s->{$_} // '') } sort keys %$p;
	is(join(', ', @differ), '', "$r: the standby agrees with the primary on every table");
	is($standby->safe_psql('shop', 'SELECT count(*) FROM pg_prepared_xacts'),
		'0', "$r: the standby has nothing prepared either");

	my $after = progress();
	my %done = map { $_ => $after->{$_} - $before->{$_} } @kinds;
	$totals{$_} += $done{$_} for @kinds;
	my $resolved = grep { $outcome{$_} =~ /^(committed|rolled_back)$/ } keys %outcome;
	push @round_notes, sprintf('%s: crash %.2f s after the load was warm; %s; %d prepared at the crash, %d resolved; %d leases cut and resumed',
		$r, $delay, join(', ', map { "$_ $done{$_}" } @kinds), $in_doubt, $resolved, scalar(keys %cut));
	note($round_notes[-1]);
}

# Each check can fail: it finds a violation made on purpose (rolled back).
my %check_sql = map { $_->[0] => $_->[1] } @checks;
for my $m (
	[ 'every completed order key has exactly one order',
		q{INSERT INTO mix.orders (key, amount) SELECT key, 1 FROM mix.orders LIMIT 1} ],
	[ 'every order has its completed key, whose response names it',
		q{INSERT INTO mix.orders (key, amount) VALUES ('order-never-claimed', 1)} ],
	[ 'every completed lease has exactly one payment, by its last attempt',
		q{DELETE FROM mix.payments WHERE id = (SELECT min(id) FROM mix.payments)} ],
	[ 'an unfinished lease has no payment', q{
		UPDATE consistency.idempotency_keys SET state = 'in_progress', response = NULL
		 WHERE scope = 'payments' AND key = (SELECT min(key) FROM mix.payments)} ],
	[ 'every payment has its completed lease',
		q{INSERT INTO mix.payments (key, attempt) VALUES ('pay-never-leased', 1)} ],
	[ 'every accepted versioned update is logged once: version - 1 = balance = log rows',
		q{UPDATE mix.accounts SET balance = balance + 1 WHERE id = 1} ],
	[ 'check_inventory() is empty',
		q{UPDATE consistency.inventory SET reserved = reserved + 1 WHERE sku = 'sku-2'} ],
	[ 'stock is conserved: initial = sold + reserved + available',
		q{UPDATE consistency.inventory SET on_hand = on_hand + 1 WHERE sku = 'sku-2'} ],
	[ 'every sale is one confirmed reservation and every confirmed reservation a sale',
		q{DELETE FROM mix.sales WHERE reservation_id = (SELECT min(reservation_id) FROM mix.sales)} ],
	[ 'every stored reservation is one reserved request, line for line', q{
		DELETE FROM mix.reservation_intents
		 WHERE reservation_id = (SELECT min(reservation_id) FROM mix.reservation_intents)} ],
	[ 'each coordinator transaction logged exactly its decision for each of its gids',
		q{DELETE FROM consistency.tpc_decisions WHERE gid = (SELECT min(gid) FROM consistency.tpc_decisions)} ],
	[ 'every COMMIT/ROLLBACK PREPARED the resolver reported is in tpc_resolution_log',
		q{INSERT INTO mix.resolutions (gid, outcome) VALUES ('cy1:never-resolved', 'committed')} ],
	[ 'every decision belongs to a committed coordinator transaction of the workload', q{
		DELETE FROM mix.tpc_coordinated
		 WHERE coordinator_xid = (SELECT min(coordinator_xid) FROM mix.tpc_coordinated WHERE kind = 'commit')} ])
{
	my ($name, $mutation) = @$m;
	die "no check named '$name'" unless defined $check_sql{$name};
	(my $sql = $check_sql{$name}) =~ s/:resolutions_before/0/g;
	isnt($primary->safe_psql('shop', "BEGIN;\n$mutation;\n$sql;\nROLLBACK;"),
		'', "the check '$name' finds a violation made on purpose");
}

note($_) for @round_notes;
note('in all: ' . join(', ', map { "$_ $totals{$_}" } @kinds));

$standby->stop;
$primary->stop;
done_testing();
