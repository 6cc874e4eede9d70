# test/t/ConsistencyCluster.pm: the primary + streaming standbys the token TAP tests share.
#
# Owns: a primary with the library in shared_preload_libraries, the extension and the
# test's own tables created, and a base backup named 'base' taken; and plain streaming
# standbys made from that backup.  Tests that need other standby settings use
# init_from_backup themselves.
package ConsistencyCluster;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(start_primary start_standbys);

# start_primary(NAME, SQL): the primary, started, SQL run after CREATE EXTENSION, backed up.
sub start_primary
{
	my ($name, $sql) = @_;
	my $primary = PostgreSQL::Test::Cluster->new($name);
	$primary->init(allows_streaming => 1);
	$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'consistency'");
	$primary->start;
	$primary->safe_psql('postgres', "CREATE EXTENSION consistency;\n$sql");
	$primary->backup('base');
	return $primary;
}

# start_standbys(PRIMARY, NAME...): one started streaming standby per name.
sub start_standbys
{
	my ($primary, @names) = @_;
	my @standbys;
	for my $name (@names)
	{
		my $s = PostgreSQL::Test::Cluster->new($name);
		$s->init_from_backup($primary, 'base', has_streaming => 1);
		$s->start;
		push @standbys, $s;
	}
	return @standbys;
}

1;
