# test/t/SyncRepStall.pm: make a server's synchronous commits wait for a standby that never
# comes, for the 2PC TAP tests that need a COMMIT PREPARED held in the SyncRep wait.
#
# Owns: naming a missing synchronous standby, keeping the calling role's own commits local
# (synchronous_commit = local: the coordinator, the participants' PREPARE, the resolver's log
# writer), and probing until a commit with synchronous_commit = on really waits (the
# checkpointer applies synchronous_standby_names only when it sees the reload).
package SyncRepStall;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(stall_synchronous_commits);

# stall_synchronous_commits(NODE): true once a synchronous commit on NODE waits (SyncRep).
sub stall_synchronous_commits
{
	my ($node) = @_;

	$node->safe_psql('postgres', q{
		CREATE TABLE sync_probe (x int);
		ALTER ROLE CURRENT_USER SET synchronous_commit = local;
		ALTER SYSTEM SET synchronous_standby_names = 'nobody';
		SELECT pg_reload_conf();
	});
	for my $try (1 .. 50)
	{
		my $probe = $node->background_psql('postgres');
		my $probe_pid = $probe->query_safe('SELECT pg_backend_pid()');
		$probe->query_until(qr/probing/,
			"SET synchronous_commit = on;\n\\echo probing\nINSERT INTO sync_probe VALUES (1);\n");
		my $state = '';
		$state = $node->safe_psql('postgres',
			"SELECT CASE WHEN wait_event = 'SyncRep' THEN 'SyncRep' WHEN state = 'idle' AND query LIKE 'INSERT INTO sync_probe%' THEN 'idle' END FROM pg_stat_activity WHERE pid = $probe_pid")
		  until $state eq 'SyncRep' || $state eq 'idle';
		$node->safe_psql('postgres', "SELECT pg_cancel_backend($probe_pid)")
		  if $state eq 'SyncRep';
		$probe->quit;
		return 1 if $state eq 'SyncRep';
	}
	return 0;
}

1;
