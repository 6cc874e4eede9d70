# The workload that the maintenance tests (091_maintenance_load.pl, 093_maintenance_pg_cron.pl)
# run while consistency.maintenance() is scheduled: two pgbench clients, 20 transactions a
# second each, every one claiming a fresh idempotency key and holding one unit of the SKU
# 'lamp', both lapsing after a second; pgbench runs of 3 s one after another, as the role
# 'app', until the file "stop" appears in the directory given (or the test exits).  Every run's
# report goes to workload.out and any error to workload.err in that directory.
package MaintenanceWorkload;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(workload_start workload_runs workload_stop);

# workload_start(NODE, DIR): start the loop; returns what workload_stop() needs.
sub workload_start
{
	my ($node, $dir) = @_;
	unlink map { "$dir/$_" } qw(stop workload.out workload.err);
	my $script = "$dir/workload.sql";
	open my $fh, '>', $script or die "$script: $!";
	print $fh q{
\set k random(1, 9000000000000000000)
BEGIN;
SELECT status FROM consistency.idem_begin('w-' || :k, ttl => '1 second');
SELECT consistency.idem_complete('w-' || :k, '{"ok": true}');
COMMIT;
SELECT consistency.reserve('lamp', 1, 'w-' || :k, ttl => '1 second');
};
	close $fh;
	my ($host, $port) = ($node->host, $node->port);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'bash', '-c', qq{
			while [ ! -e '$dir/stop' ] && kill -0 $$ 2>/dev/null; do
				pgbench -n -c 2 -j 1 -R 40 -T 3 -f '$script' -h '$host' -p $port -U app postgres \\
					>>'$dir/workload.out' 2>>'$dir/workload.err' ||
					echo "pgbench exited with status \$?" >>'$dir/workload.err'
			done} ],
		'<', \undef, '>', \$out, '2>', \$err);
	return { handle => $h, out => \$out, err => \$err };
}

# The pgbench runs of the workload that have finished.
sub workload_runs
{
	my ($dir) = @_;
	return 0 unless -e "$dir/workload.out";
	return scalar(() = slurp_file("$dir/workload.out") =~ /^number of transactions actually processed: /mg);
}

# workload_stop(DIR, WORKLOAD, MIN_RUNS): let MIN_RUNS more pgbench runs finish, stop the loop,
# and check (as tests) that it ended cleanly, no transaction failed and every run did work.
sub workload_stop
{
	my ($dir, $w, $min_runs) = @_;
	my $target = workload_runs($dir) + $min_runs;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (workload_runs($dir) < $target)
	{
		die 'the workload stopped' if time > $deadline;
		usleep(100_000);
	}
	open my $stop, '>', "$dir/stop" or die "$dir/stop: $!";
	close $stop;
	$w->{handle}->finish;
	is($?, 0, 'the workload loop exited cleanly');
	is(${ $w->{out} } . ${ $w->{err} }, '', 'and printed nothing');
	my $err = -e "$dir/workload.err" ? slurp_file("$dir/workload.err") : '';
	my $out = slurp_file("$dir/workload.out");
	unlike($err, qr/\S/, 'the workload printed no error') or diag $err;
	unlike($out, qr/number of failed transactions: [1-9]/, 'no workload transaction failed');
	unlike($out, qr/^number of transactions actually processed: 0/m,
		'every pgbench run of the workload did work');
	return workload_runs($dir);
}

1;
