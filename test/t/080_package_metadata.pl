# The version the packaging files announce is the extension's: META.json (PGXN) and
# debian/changelog must match consistency.control's default_version, and the files a version
# needs must exist.  No server.  The comparison is first shown to catch a mismatch.
use strict;
use warnings;
use JSON::PP;
use Test::More;

my $top = $ENV{TESTDIR} // '.';

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', "$top/$path") or die "cannot open $top/$path: $!";
	local $/;
	return <$fh>;
}

# default_version '1.1' is PGXN's semantic version 1.1.0.
sub semver_of
{
	my ($v) = @_;
	return $v =~ /^\d+\.\d+$/ ? "$v.0" : $v;
}

sub meta_mismatches
{
	my ($default_version, $meta) = @_;
	my $want = semver_of($default_version);
	my @bad;
	push @bad, "version $meta->{version}" if ($meta->{version} // '') ne $want;
	push @bad, "provides.consistency.version $meta->{provides}{consistency}{version}"
	  if ($meta->{provides}{consistency}{version} // '') ne $want;
	return @bad;
}

my ($default_version) = slurp('consistency.control') =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $default_version, "consistency.control has a default_version");

# The check itself catches a drift.
is_deeply([ meta_mismatches('1.2', { version => '1.1.0', provides => { consistency => { version => '1.1.0' } } }) ],
	[ 'version 1.1.0', 'provides.consistency.version 1.1.0' ],
	'a META.json one version behind is reported');

my $meta = JSON::PP->new->decode(slurp('META.json'));
is_deeply([ meta_mismatches($default_version, $meta) ], [],
	"META.json announces version " . semver_of($default_version) . ", the control file's $default_version");
is($meta->{name}, 'consistency', 'META.json names the extension');
is($meta->{'meta-spec'}{version}, '1.0.0', 'META.json follows PGXN meta-spec 1.0.0');
for my $f ($meta->{provides}{consistency}{file}, $meta->{provides}{consistency}{docfile})
{
	ok(-f "$top/$f", "META.json's $f exists");
}

my ($changelog_version) = slurp('debian/changelog') =~ /^\S+ \(([^)]+)\)/;
(my $upstream = $changelog_version) =~ s/-[^-]+$//;
is($upstream, $default_version, "debian/changelog's latest entry is version $default_version");

# The SQL a version needs: the 1.0 install script and an update path to default_version.
ok(-f "$top/consistency--1.0.sql", 'the 1.0 install script exists');
ok($default_version eq '1.0' || -f "$top/consistency--1.0--$default_version.sql",
	"an update script from 1.0 to $default_version exists");

done_testing();
