# The consistency.last_commit_token report never waits for the client at commit:
# a client that stops reading cannot keep a committed transaction's locks held, nor make
# its backend deaf to pg_terminate_backend().
#
# The report is a ParameterStatus message put into the backend's 8 kB output buffer from
# the commit callback, which runs with interrupts held and the transaction's locks not yet
# released.  If the buffer is within the message's size of full at that moment and the
# message were sent with pq_putmessage(), the buffer would be flushed right there; with the
# kernel's socket buffer full (the client reads nothing), that flush waits for ever: the
# locks stay held and pg_terminate_backend() is not heard.
#
# A client speaking the protocol by hand (a Unix socket, trust authentication) loads the
# library, sends one Query, an INSERT ... RETURNING whose output is exactly k full 8 kB
# buffers plus a tail 40 bytes short of a full buffer, and never reads the answer.  The
# backend flushes the k full buffers while it executes, so it stops in a write (wait event
# ClientWrite): during the statement when the kernel takes fewer than k buffers, after the
# commit (CommandComplete or ReadyForQuery) when it takes all k but not the last, partial
# one, or not at all when everything fits.  k goes up from 1 until the backend stops during
# the statement, a fresh connection each time; at the k where the kernel takes the k
# buffers and no more, the last flush is the first after the commit record: this is the
# moment the report used to wait in.  For each k:
# - a backend stopped after its transaction committed holds no lock;
# - a stopped backend ends on pg_terminate_backend(), and its locks go with it;
# and the sweep must have met the after-commit stop, or it tested nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE TABLE out_rows (k int NOT NULL, v text NOT NULL);
});
my $user = $node->safe_psql('postgres', 'SELECT current_user');
my $socket_path = $node->host . '/.s.PGSQL.' . $node->port;

# --- a protocol 3.0 client ------------------------------------------------------------

sub read_exact
{
	my ($sock, $n) = @_;
	my $buf = '';
	my $sel = IO::Select->new($sock);
	while (length($buf) < $n)
	{
		die "timed out reading from the server\n"
		  unless $sel->can_read($PostgreSQL::Test::Utils::timeout_default);
		my $r = sysread($sock, $buf, $n - length($buf), length($buf));
		die "read from the server failed: $!\n" unless defined $r;
		die "the server closed the connection\n" if $r == 0;
	}
	return $buf;
}

# One message: (type, body).
sub read_message
{
	my ($sock) = @_;
	my ($type, $len) = unpack('a N', read_exact($sock, 5));
	return ($type, $len > 4 ? read_exact($sock, $len - 4) : '');
}

sub send_all
{
	my ($sock, $data) = @_;
	while (length($data) > 0)
	{
		my $w = syswrite($sock, $data);
		die "write to the server failed: $!\n" unless defined $w;
		substr($data, 0, $w, '');
	}
}

sub send_query
{
	my ($sock, $sql) = @_;
	send_all($sock, 'Q' . pack('N', 4 + length($sql) + 1) . $sql . "\0");
}

# Read up to ReadyForQuery; dies on an ErrorResponse.
sub read_until_ready
{
	my ($sock) = @_;
	my $pid;
	while (1)
	{
		my ($type, $body) = read_message($sock);
		die 'error from the server: ' . join(' ', split(/\0/, $body)) . "\n" if $type eq 'E';
		die "authentication other than trust asked for\n"
		  if $type eq 'R' && unpack('N', $body) != 0;
		$pid = unpack('N', $body) if $type eq 'K';
		return $pid if $type eq 'Z';
	}
}

# A connection that has loaded the library and is idle, and its backend's pid.
sub connect_raw
{
	my $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $socket_path)
	  or die "cannot connect to $socket_path: $!\n";
	my $params = "user\0$user\0database\0postgres\0\0";
	send_all($sock, pack('N N', 8 + length($params), 196608) . $params);
	my $pid = read_until_ready($sock);
	# In the plain configuration, the session loads the library itself (as with
	# session_preload_libraries); preloaded, this does nothing.
	send_query($sock, "LOAD 'consistency'");
	read_until_ready($sock);
	return ($sock, $pid);
}

# --- the output of the INSERT ... RETURNING, byte for byte ------------------------------
# RowDescription of one text column "v": type, length, field count, "v\0", table oid,
# column number, type oid, type length, type modifier, format code.
my $row_description = 1 + 4 + 2 + 2 + 4 + 2 + 4 + 2 + 4 + 2;
# A DataRow of one value of L bytes: type, length, column count, value length, value.
my $data_row = 1 + 4 + 2 + 4;
my $send_buffer = 8192;    # PQ_SEND_BUFFER_SIZE
my $tail = $send_buffer - 40;    # less room than any ParameterStatus of the token needs
my $width = 1000;

# The query whose output before its commit is k full send buffers and the tail: rows of
# $width bytes and a first row that takes the rest (between $width and 2 * $width + 10).
sub insert_sql
{
	my ($k) = @_;
	my $total = $send_buffer * $k + $tail;
	my $n = int(($total - $row_description) / ($data_row + $width));
	my $first = $total - $row_description - $n * ($data_row + $width) + $width;
	die "bad arithmetic" if $row_description + ($n - 1) * ($data_row + $width) + $data_row + $first != $total;
	return "INSERT INTO out_rows (k, v) SELECT $k, repeat('x', CASE WHEN g = 1 THEN $first ELSE $width END) "
	  . "FROM generate_series(1, $n) g RETURNING v";
}

# Sanity of the arithmetic, with a client that reads: the output up to CommandComplete
# is the computed size (the report, a ParameterStatus, is left out).
{
	my ($sock) = connect_raw();
	send_query($sock, insert_sql(3));
	my ($bytes, $report) = (0, undef);
	while (1)
	{
		my ($type, $body) = read_message($sock);
		die 'error from the server: ' . join(' ', split(/\0/, $body)) . "\n" if $type eq 'E';
		last if $type eq 'C';
		if ($type eq 'S') { $report = $body; next; }
		$bytes += 5 + length($body);
	}
	is($bytes, $send_buffer * 3 + $tail, 'the statement sends exactly 3 send buffers and the tail before its commit');
	ok(defined $report && $report =~ /^consistency\.last_commit_token\0v1:\d+:\d+:[0-9A-F]+\/[0-9A-F]+\0$/,
		'the commit is reported in a ParameterStatus message');
	cmp_ok(5 + length($report // ''), '>', $send_buffer - $tail, 'the report does not fit in the room the tail leaves');
	read_until_ready($sock);
	close($sock);
}

# --- the sweep ----------------------------------------------------------------------------
my %phases;
my $during_statement = 0;
for my $k (1 .. 400)
{
	my ($sock, $pid) = connect_raw();
	send_query($sock, insert_sql($k));
	# Until the backend waits to write, or is idle with everything sent.
	$node->poll_query_until('postgres', qq{
		SELECT wait_event = 'ClientWrite' OR (state = 'idle' AND wait_event = 'ClientRead')
		FROM pg_catalog.pg_stat_activity WHERE pid = $pid})
	  or die "backend $pid neither waits to write nor is idle";
	my ($state, $wait, $committed, $locks) = split(/\|/, $node->safe_psql('postgres', qq{
		SELECT a.state, a.wait_event,
			EXISTS (SELECT FROM out_rows WHERE k = $k),
			(SELECT count(*) FROM pg_catalog.pg_locks l WHERE l.pid = $pid)
		FROM pg_catalog.pg_stat_activity a WHERE a.pid = $pid}));
	my $phase =
	    $wait ne 'ClientWrite' ? 'not stopped'
	  : $committed ne 't' ? 'stopped during the statement'
	  : $state eq 'active' ? 'stopped after the commit, before ReadyForQuery'
	  : 'stopped at ReadyForQuery';
	$phases{$phase}++;
	note("k = $k: $phase ($state, $locks locks)");
	if ($committed eq 't')
	{
		is($locks, 0, "k = $k, $phase: the committed transaction holds no lock")
		  or diag($node->safe_psql('postgres', qq{
			SELECT a.pid, a.state, a.wait_event, a.backend_xid, a.query
			FROM pg_catalog.pg_stat_activity a WHERE a.pid = $pid;
			SELECT l.locktype, l.relation::pg_catalog.regclass, l.transactionid, l.mode, l.granted
			FROM pg_catalog.pg_locks l WHERE l.pid = $pid}));
	}
	if ($wait eq 'ClientWrite')
	{
		my $gone = $node->safe_psql('postgres', "SELECT pg_catalog.pg_terminate_backend($pid, 30000)");
		is($gone, 't', "k = $k, $phase: pg_terminate_backend() ends the backend");
		# Nothing of the backend's is left to conflict with the strongest lock.
		my ($ret, $out, $err) = (0, '', '');
		$ret = $node->psql('postgres', qq{
			BEGIN;
			LOCK TABLE out_rows IN ACCESS EXCLUSIVE MODE NOWAIT;
			SELECT count(*) FROM pg_catalog.pg_locks WHERE pid = $pid;
			COMMIT}, stdout => \$out, stderr => \$err);
		is("$ret $out", '0 0', "k = $k, $phase: its locks are released") or diag($err);
	}
	close($sock);    # a backend that did not die sees the connection closed and ends
	$node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_stat_activity WHERE pid = $pid)")
	  or die "backend $pid did not end";
	# Past the k where the kernel stops taking buffers during the statement, every larger k
	# stops there too.
	last if $phase eq 'stopped during the statement' && ++$during_statement == 3;
}
ok($phases{'stopped after the commit, before ReadyForQuery'},
	'the sweep met the backend stopped after its commit, before ReadyForQuery (where the report used to wait)')
  or diag(explain(\%phases));
is($during_statement, 3, 'the sweep went on to where the backend stops during the statement');

# --- a procedure that commits many times ----------------------------------------------
# Nothing flushes the output buffer while a CALL runs, so a report per COMMIT would grow
# the buffer by a message per commit (and past what it can hold, a PANIC after the commit
# record, for a procedure that commits millions of times).  A CALL or DO reports once, when
# it ends, the last write it committed; also when it fails after committing.
$node->safe_psql('postgres', q{
	CREATE PROCEDURE commit_each(n int, fail bool) LANGUAGE plpgsql AS $$
	BEGIN
		FOR i IN 1 .. n LOOP
			INSERT INTO out_rows VALUES (-1, 'procedure');
			COMMIT;
		END LOOP;
		IF fail THEN
			RAISE EXCEPTION 'failed after % commits', n;
		END IF;
	END $$;
});

# Every ParameterStatus of the token up to ReadyForQuery, and the SQLSTATE of an error.
sub reports_until_ready
{
	my ($sock) = @_;
	my (@reports, $sqlstate);
	while (1)
	{
		my ($type, $body) = read_message($sock);
		push @reports, $1 if $type eq 'S' && $body =~ /^consistency\.last_commit_token\0([^\0]*)\0$/;
		($sqlstate) = $body =~ /(?:^|\0)C([^\0]*)/ if $type eq 'E';
		return (\@reports, $sqlstate) if $type eq 'Z';
	}
}

for my $case (['CALL commit_each(1000, false)', undef, 'a CALL'],
	['CALL commit_each(1000, true)', 'P0001', 'a CALL that fails after committing'],
	['DO $$ BEGIN CALL commit_each(1000, false); END $$', undef, 'a DO calling a procedure'])
{
	my ($sql, $want_error, $what) = @$case;
	my ($sock) = connect_raw();
	send_query($sock, $sql);
	my ($reports, $sqlstate) = reports_until_ready($sock);
	is($sqlstate, $want_error, "$what: " . ($want_error ? "fails with $want_error" : 'succeeds'));
	is(scalar(@$reports), 1, "$what: one report for its 1000 commits");
	send_query($sock, 'SELECT consistency.write_token()');
	my $token;
	while (1)
	{
		my ($type, $body) = read_message($sock);
		$token = substr($body, 6, unpack('N', substr($body, 2, 4))) if $type eq 'D';
		last if $type eq 'Z';
	}
	is($reports->[0], $token, "$what: the report names its last commit");
	close($sock);
}

done_testing();
