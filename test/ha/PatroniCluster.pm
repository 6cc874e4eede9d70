# test/ha/PatroniCluster.pm: a real Patroni cluster on loopback for the HA TAP tests.
#
# Owns: one etcd member (Debian etcd-server) and N Patroni nodes (Debian patroni), each running
# the PostgreSQL under test (bin_dir: the pg_config on PATH, which the TAP harness puts first)
# with shared_preload_libraries = 'consistency', wal_log_hints and use_pg_rewind, ports picked
# free; leader and replica discovery through Patroni's REST API (/cluster, /leader, /replica);
# a switchover through patronictl; a hard failover by SIGKILL of the leader's postmaster (pid
# from postmaster.pid).  Every process it starts is stopped at the end, also when the test
# dies: Patroni and etcd by pid, a PostgreSQL left behind by its data directory.
# Everything runs as the invoking (unprivileged) user.
#
#   my $ha = PatroniCluster->new('rw', synchronous_mode => 1, sql => 'CREATE TABLE ...');
#   my $leader = $ha->leader;                  # {name, port, data, rest, ...}
#   $ha->sql($leader, 'SELECT 1');
#   $ha->switchover($leader, $candidate);     # patronictl, waits for the new leader
#   $ha->kill_postmaster($leader);            # SIGKILL; $ha->wait_for_leader(not => $leader)
package PatroniCluster;

use strict;
use warnings;
use Carp;
use File::Path qw(make_path);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

my @clusters;	# every cluster made, stopped by the END block

my $http = HTTP::Tiny->new(timeout => 2);

sub bindir
{
	my $bindir = `pg_config --bindir`;
	chomp $bindir;
	-x "$bindir/postgres" or croak "no postgres in '$bindir' (pg_config --bindir)";
	return $bindir;
}

# A command's process, its output appended to $log, in a session of its own.
sub spawn
{
	my ($log, @cmd) = @_;
	my $pid = fork();
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $log) or POSIX::_exit(126);
		open(STDERR, '>&', \*STDOUT);
		POSIX::setsid();
		exec(@cmd) or POSIX::_exit(127);
	}
	return $pid;
}

sub alive
{
	my ($pid) = @_;
	return 0 unless $pid;
	return 0 if waitpid($pid, POSIX::WNOHANG()) == $pid;
	return kill(0, $pid);
}

# Stop a process we started: $sig, then SIGKILL after $timeout seconds.
sub stop_pid
{
	my ($pid, $sig, $timeout) = @_;
	return unless alive($pid);
	kill($sig, $pid);
	my $until = time + $timeout;
	while (time < $until)
	{
		return unless alive($pid);
		sleep 0.1;
	}
	kill('KILL', $pid);
	waitpid($pid, 0);
}

sub wait_until
{
	my ($what, $timeout, $cond) = @_;
	my $until = time + $timeout;
	while (time < $until)
	{
		my $v = eval { $cond->() };
		return $v if $v;
		sleep 0.2;
	}
	croak "timed out after ${timeout}s waiting for $what";
}

# new(NAME, nodes => 3, synchronous_mode => 0|1, sql => SQL run on the first leader after
# CREATE EXTENSION consistency, parameters => {name => value} for every node)
sub new
{
	my ($class, $name, %opt) = @_;
	my $self = bless {
		name => $name,
		scope => "consistency_$name",
		base => "$PostgreSQL::Test::Utils::tmp_check/patroni_$name",
		bindir => bindir(),
		nodes => [],
		sync => $opt{synchronous_mode} ? 1 : 0,
		user => scalar(getpwuid($<)),
	}, $class;
	push @clusters, $self;
	my $base = $self->{base};
	File::Path::rmtree($base);
	make_path($base);
	my $start = time;

	# etcd: one member, v3 API (what Patroni's etcd3 section speaks).
	my ($client, $peer) = (PostgreSQL::Test::Cluster::get_free_port(),
		PostgreSQL::Test::Cluster::get_free_port());
	$self->{etcd_url} = "http://127.0.0.1:$client";
	$self->{etcd_pid} = spawn("$base/etcd.log", 'etcd', '--name', 'e1',
		'--data-dir', "$base/etcd", '--listen-client-urls', "http://127.0.0.1:$client",
		'--advertise-client-urls', "http://127.0.0.1:$client",
		'--listen-peer-urls', "http://127.0.0.1:$peer",
		'--initial-advertise-peer-urls', "http://127.0.0.1:$peer",
		'--initial-cluster', "e1=http://127.0.0.1:$peer",
		'--initial-cluster-state', 'new', '--initial-cluster-token', $self->{scope});
	wait_until('etcd', 30, sub {
		my $r = $http->get("$self->{etcd_url}/health");
		$r->{success} && $r->{content} =~ /"health":\s*"true"/;
	});

	my %params = (
		shared_preload_libraries => 'consistency',
		wal_log_hints => 'on',
		hot_standby => 'on',
		hot_standby_feedback => 'on',
		wal_keep_size => '256MB',
		max_wal_senders => 10,
		max_replication_slots => 10,
		max_connections => 50,
		max_prepared_transactions => 20,
		fsync => 'off',
		unix_socket_directories => "'$base'",
		log_line_prefix => "'%m [%p] %q%a '",
		%{ $opt{parameters} // {} });
	for my $i (1 .. ($opt{nodes} // 3))
	{
		my $node = {
			name => "node$i",
			dir => "$base/node$i",
			data => "$base/node$i/data",
			port => PostgreSQL::Test::Cluster::get_free_port(),
			restport => PostgreSQL::Test::Cluster::get_free_port(),
		};
		$node->{rest} = "http://127.0.0.1:$node->{restport}";
		make_path($node->{dir});
		chmod 0700, $node->{dir};
		$node->{config} = "$node->{dir}/patroni.yml";
		$self->write_config($node, \%params);
		push @{ $self->{nodes} }, $node;
	}
	# The first node bootstraps alone, then the others clone it.
	$self->start_node($self->{nodes}[0]);
	my $leader = $self->wait_for_leader(timeout => 60);
	$self->sql($leader, "CREATE EXTENSION consistency;\n" . ($opt{sql} // ''));
	$self->start_node($_) for @{ $self->{nodes} }[ 1 .. $#{ $self->{nodes} } ];
	$self->wait_for_replicas(scalar(@{ $self->{nodes} }) - 1);
	$self->{startup_seconds} = time - $start;
	return $self;
}

sub write_config
{
	my ($self, $node, $params) = @_;
	my $p = join('', map { "        $_: $params->{$_}\n" } sort keys %$params);
	my $sync = $self->{sync} ? 'true' : 'false';
	open(my $fh, '>', $node->{config}) or croak "$node->{config}: $!";
	print $fh <<"EOF";
scope: $self->{scope}
namespace: /consistency-test/
name: $node->{name}
restapi:
  listen: 127.0.0.1:$node->{restport}
  connect_address: 127.0.0.1:$node->{restport}
etcd3:
  hosts: 127.0.0.1:@{[ $self->{etcd_url} =~ /:(\d+)$/ ]}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1073741824
    primary_start_timeout: 0
    synchronous_mode: $sync
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
$p
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$node->{port}
  connect_address: 127.0.0.1:$node->{port}
  data_dir: $node->{data}
  bin_dir: $self->{bindir}
  pgpass: $node->{dir}/pgpass
  authentication:
    superuser:
      username: $self->{user}
      password: unused
    replication:
      username: replicator
      password: unused
    rewind:
      username: $self->{user}
      password: unused
  parameters:
    unix_socket_directories: '$self->{base}'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
EOF
	close($fh);
}

sub start_node
{
	my ($self, $node) = @_;
	$node->{pid} = spawn("$node->{dir}/patroni.log", 'patroni', $node->{config});
}

sub nodes { return @{ $_[0]{nodes} } }
sub node_by_name { my ($self, $n) = @_; return (grep { $_->{name} eq $n } $self->nodes)[0] }

# Patroni's view of the cluster (GET /cluster from the first node that answers).
sub cluster
{
	my ($self) = @_;
	for my $node ($self->nodes)
	{
		next unless alive($node->{pid});
		my $r = $http->get("$node->{rest}/cluster");
		return decode_json($r->{content}) if $r->{success};
	}
	return undef;
}

# GET path on the node's REST API: the HTTP status (Patroni answers /leader, /replica,
# /sync with 200 or 503).
sub rest_status
{
	my ($self, $node, $path) = @_;
	return $http->get("$node->{rest}$path")->{status};
}

# The leader by Patroni's REST API: the member /cluster calls leader, running, that also
# answers 200 on /leader and accepts writes.  undef while there is none.
sub leader
{
	my ($self) = @_;
	my $c = $self->cluster or return undef;
	for my $m (@{ $c->{members} })
	{
		next unless $m->{role} eq 'leader' && $m->{state} eq 'running';
		my $node = $self->node_by_name($m->{name});
		next unless $self->rest_status($node, '/leader') == 200;
		# not in recovery, and the timeline it writes on (what its tokens name)
		my $tli = $self->try_sql($node,
			q{SELECT CASE WHEN NOT pg_is_in_recovery()
			  THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END})
		  // '';
		next unless $tli =~ /^\d+$/;
		$node->{timeline} = $tli;
		return $node;
	}
	return undef;
}

# Running replicas by /cluster and /replica (200), optionally only the synchronous one.
sub replicas
{
	my ($self, %opt) = @_;
	my $c = $self->cluster or return ();
	my @r;
	for my $m (@{ $c->{members} })
	{
		next if $m->{role} eq 'leader';
		next unless $m->{state} eq 'running' || $m->{state} eq 'streaming';
		next if $opt{sync} && $m->{role} ne 'sync_standby';
		my $node = $self->node_by_name($m->{name});
		next unless $self->rest_status($node, '/replica') == 200;
		push @r, $node;
	}
	return @r;
}

# wait_for_leader(not => NODE, timeout => SECONDS): the leader, once there is one (other
# than NODE).  Returns it; the seconds it took are in $self->{last_wait}.
sub wait_for_leader
{
	my ($self, %opt) = @_;
	my $start = time;
	my $leader = wait_until('a leader', $opt{timeout} // 60, sub {
		my $l = $self->leader;
		$l && (!$opt{not} || $l->{name} ne $opt{not}{name}) ? $l : undef;
	});
	$self->{last_wait} = time - $start;
	return $leader;
}

# wait_for_replicas(N): N replicas streaming from the leader (and, in synchronous mode, one
# of them synchronous).
sub wait_for_replicas
{
	my ($self, $n, $timeout) = @_;
	wait_until("$n replicas", $timeout // 90, sub {
		my $leader = $self->leader or return 0;
		my @r = $self->replicas;
		return 0 unless @r >= $n;
		return 0 if $self->{sync} && !$self->replicas(sync => 1);
		my $streaming = $self->try_sql($leader,
			q{SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'}) // 0;
		return $streaming >= $n;
	});
}

sub connstr
{
	my ($self, $node, $db) = @_;
	return "host=127.0.0.1 port=$node->{port} dbname=" . ($db // 'postgres');
}

# A libpq multi-host connection string over every node.
sub multihost_connstr
{
	my ($self, $attrs, $db) = @_;
	my @n = $self->nodes;
	return 'host=' . join(',', map { '127.0.0.1' } @n) . ' port=' . join(',', map { $_->{port} } @n)
	  . ' dbname=' . ($db // 'postgres') . " target_session_attrs=$attrs connect_timeout=2";
}

# try_sql(NODE, SQL): psql's output (SQL sent on its standard input, any length), or undef
# if it failed.
sub try_sql
{
	my ($self, $node, $sql, $db) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ "$self->{bindir}/psql", '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
			'-d', $self->connstr($node, $db), '-f', '-' ], '<', \$sql, '>', \$out, '2>', \$err);
	$self->{last_error} = $err;
	return undef unless $ok;
	chomp $out;
	return $out;
}

sub sql
{
	my ($self, $node, $sql, $db) = @_;
	my $out = $self->try_sql($node, $sql, $db);
	croak "SQL on $node->{name} failed: $self->{last_error}\n$sql" unless defined $out;
	return $out;
}

# A psql session on NODE kept open (PostgreSQL::Test::BackgroundPsql: query_safe, quit),
# for a transaction that must stay open across calls.
sub session
{
	my ($self, $node, $db) = @_;
	return PatroniCluster::Endpoint->new($node->{port})->background_psql($db // 'postgres');
}

# patronictl switchover from LEADER to CANDIDATE; returns the new leader.
sub switchover
{
	my ($self, $leader, $candidate) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'patronictl', '-c', $leader->{config}, 'switchover', $self->{scope},
			'--leader', $leader->{name}, '--candidate', $candidate->{name}, '--force' ],
		'>', \$out, '2>', \$err)
	  or croak "patronictl switchover failed: $out$err";
	$self->{switchover_output} = $out;
	return $self->wait_for_leader(not => $leader);
}

sub postmaster_pid
{
	my ($self, $node) = @_;
	open(my $fh, '<', "$node->{data}/postmaster.pid") or return undef;
	my $pid = <$fh>;
	close($fh);
	chomp $pid;
	return $pid =~ /^\d+$/ ? $pid : undef;
}

# Freeze the leader's walsenders (SIGSTOP): from now on its commits reach no replica, so
# with asynchronous replication a failover loses them, and in synchronous mode a commit
# waits.  kill_postmaster() kills them with the postmaster.
sub stop_walsenders
{
	my ($self, $node) = @_;
	my @pids = split /\n/, $self->sql($node,
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender'});
	croak "no walsender on $node->{name}" unless @pids;
	kill('STOP', @pids) == @pids or croak "SIGSTOP @pids: $!";
	push @{ $node->{stopped} }, @pids;
	return @pids;
}

# The hard failover: SIGKILL to the leader's postmaster.  Patroni (primary_start_timeout = 0)
# then fails over instead of restarting it.  The other server processes exit when they see
# the postmaster gone; frozen walsenders cannot, and are killed too.
sub kill_postmaster
{
	my ($self, $node) = @_;
	my $pid = $self->postmaster_pid($node) or croak "no postmaster.pid in $node->{data}";
	kill('KILL', $pid) or croak "kill $pid: $!";
	kill('KILL', @{ $node->{stopped} }) if $node->{stopped};
	$node->{stopped} = [];
	return $pid;
}

# Stop one node's Patroni (which stops its PostgreSQL), then anything left of its server by
# its data directory.
sub stop_node
{
	my ($self, $node) = @_;
	kill('KILL', @{ $node->{stopped} }) if $node->{stopped} && @{ $node->{stopped} };
	stop_pid($node->{pid}, 'TERM', 30);
	if (my $pid = $self->postmaster_pid($node))
	{
		system("$self->{bindir}/pg_ctl", '-D', $node->{data}, '-m', 'immediate', '-w', 'stop')
		  if kill(0, $pid);
	}
}

sub stop
{
	my ($self) = @_;
	return if $self->{stopped}++;
	$self->stop_node($_) for $self->nodes;
	stop_pid($self->{etcd_pid}, 'TERM', 10);
}

END
{
	my $rc = $?;
	$_->stop for @clusters;
	$? = $rc;
}

# A server PostgreSQL::Test::Cluster did not create, reachable on 127.0.0.1:PORT: only what
# background_psql() needs (connstr, host, port); never started or stopped through it.
package PatroniCluster::Endpoint;
our @ISA = ('PostgreSQL::Test::Cluster');

sub new
{
	my ($class, $port) = @_;
	return bless { _host => '127.0.0.1', _port => $port, _name => "patroni_$port" }, $class;
}

1;
