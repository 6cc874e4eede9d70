# The version the packaging files announce is the extension's: META.json (PGXN) and
# debian/changelog must match consistency.control's default_version, and the files a version
# needs must exist.  The packaging files also agree on one maintainer identity (debian/control,
# control.in, changelog, copyright, META.json, LICENSE, AUTHORS), one licence (the PostgreSQL
# Licence: LICENSE, debian/copyright, META.json) and one supported PostgreSQL range
# (debian/pgversions, META.json, consistency.control).  No server.  The version comparison is
# first shown to catch a mismatch.
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

# One maintainer identity everywhere the project names one.
sub identities
{
	my %who;
	for my $f ('debian/control', 'debian/control.in')
	{
		($who{$f}) = slurp($f) =~ /^Maintainer:\s*(.+?)\s*$/m;
	}
	($who{'debian/changelog'}) = slurp('debian/changelog') =~ /^ -- (.+?>)  /m;
	($who{'debian/copyright Upstream-Contact'}) = slurp('debian/copyright') =~ /^Upstream-Contact:\s*(.+?)\s*$/m;
	($who{'debian/copyright Copyright'}) = slurp('debian/copyright') =~ /^Copyright:\s*\d{4}(?:-\d{4})?\s+(.+?)\s*$/m;
	($who{'LICENSE'}) = slurp('LICENSE') =~ /^Copyright \(c\) \d{4}(?:-\d{4})?, (.+?)\s*$/m;
	($who{'AUTHORS'}) = slurp('AUTHORS') =~ /^(\S.*<[^>]+>)\s*$/m;
	$who{'META.json maintainer'} = join(', ', @{ $meta->{maintainer} });
	return %who;
}
my %who = identities();
my $maintainer = $who{'debian/control'};
like($maintainer, qr/^[^<>]+ <[^@\s]+@[^>\s]+>$/, "debian/control names a maintainer: $maintainer");
for my $where (sort keys %who)
{
	is($who{$where}, $maintainer, "$where names the same maintainer");
}

# One licence: the PostgreSQL Licence in LICENSE, debian/copyright and META.json.
is($meta->{license}, 'postgresql', 'META.json: license postgresql');
my $copyright = slurp('debian/copyright');
like($copyright, qr/^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\/$/m,
	'debian/copyright is in the machine-readable format');
my @licenses = $copyright =~ /^License: (\S+)$/mg;
is_deeply([ sort { $a cmp $b } keys %{ { map { $_ => 1 } @licenses } } ], ['PostgreSQL'],
	'debian/copyright licenses every file under PostgreSQL');
my ($license_text) = $copyright =~ /^License: PostgreSQL\n((?: .*\n)+)/m;
ok(defined $license_text, 'debian/copyright has the text of the PostgreSQL licence');
sub words
{
	my ($t) = @_;
	$t =~ s/^ \.$//mg;
	return join(' ', split(' ', $t));
}
my ($license_body) = slurp('LICENSE') =~ /^(Permission to use.*)\z/ms;
is(words($license_text // ''), words($license_body // ''),
	'LICENSE and debian/copyright carry the same licence text');

# One supported range: debian/pgversions builds from the first version META.json requires, and
# the tested versions are the ones scripts/test.sh runs.
my ($pg_from) = slurp('debian/pgversions') =~ /^(\d+)\+$/m;
ok(defined $pg_from, 'debian/pgversions is a range: N+');
my ($meta_from, $meta_below) =
  ($meta->{prereqs}{runtime}{requires}{PostgreSQL} // '') =~ /^>= (\d+)\.0\.0, < (\d+)\.0\.0$/;
is($meta_from, $pg_from, "META.json requires PostgreSQL >= $pg_from, debian/pgversions' first version");
my @tested = @{ $meta->{x_postgresql_versions}{tested} // [] };
my @untested = @{ $meta->{x_postgresql_versions}{untested} // [] };
is_deeply([ sort { $a <=> $b } @tested, @untested ], [ $pg_from .. $meta_below - 1 ],
	'META.json: every version of the range is either tested or untested');
my ($test_sh_versions) = slurp('scripts/test.sh') =~ /^\s*for v in ([\d ]+); do$/m;
is_deeply(\@tested, [ split(' ', $test_sh_versions // '') ],
	'META.json: the tested versions are the ones scripts/test.sh runs');
like(slurp('consistency.control'),
	qr/PostgreSQL $pg_from to @{[ $meta_below - 1 ]}: ${\ join(' and ', @tested)} tested, ${\ join(' and ', @untested)} expected to work/,
	'consistency.control states the same range');

done_testing();
