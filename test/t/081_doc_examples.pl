# Documentation that cannot rot: every SQL example in README.md and doc/**/*.md runs against a
# throwaway server, and its shown output is compared with what psql prints; every function of
# the extension has a reference page.  The convention (doc/README.md):
# - a ```sql block is run, and must be followed (blank lines between are allowed) by an
#   ```output block holding what psql prints for it (aligned format, command tags, errors);
# - a ```sql-norun block is not run and must say why on its fence line;
# - every fence names its language, from a fixed list (no bare ```);
# - each file runs in file order, in one psql session, in a fresh database that has the
#   extension (<!-- doc-test: no-extension --> in the file: a database without it);
# - volatile values (tokens' system identifiers and LSNs, gids, timestamps, coordinator xids)
#   are normalised on both sides, then runs of spaces and table separator lines, which the
#   widths of those values change.
# A file that breaks the convention fails, naming the line.  The outputs psql printed are
# written to tmp_check/doc-examples/ (kept with CONSISTENCY_KEEP=1), for authors to copy.
use strict;
use warnings;
use File::Find;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = $ENV{TESTDIR} // '.';

# Fence languages a document may use; only sql blocks run.
my %languages = map { $_ => 1 } qw(sql output sql-norun sh python c text ini yaml);

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or die "cannot open $path: $!";
	local $/;
	return <$fh>;
}

# parse(NAME, TEXT): (examples, problems).  An example is { line, sql, output }.
sub parse
{
	my ($name, $text) = @_;
	my (@examples, @problems, @blocks, @python);
	my @lines = split /\n/, $text, -1;
	my $open;
	for my $i (0 .. $#lines)
	{
		my $l = $lines[$i];
		my $n = $i + 1;
		if (!$open)
		{
			if ($l =~ /^(\s*)(`{3,})(.*)$/)
			{
				my ($indent, $ticks, $info) = ($1, $2, $3);
				$info =~ s/^\s+|\s+$//g;
				my ($lang, $rest) = $info =~ /^(\S*)\s*(.*)$/;
				$open = { line => $n, indent => length $indent, ticks => $ticks,
					lang => $lang, rest => $rest, body => [] };
				if ($lang eq '')
				{
					push @problems, "$name:$n: a fence without a language (say sql, output, sql-norun <why>, sh, ...)";
				}
				elsif (!$languages{$lang})
				{
					push @problems, "$name:$n: unknown fence language '$lang'";
				}
				elsif ($lang eq 'sql-norun' && $rest eq '')
				{
					push @problems, "$name:$n: a sql-norun block must say why it is not run";
				}
				elsif ($lang ne 'sql-norun' && $rest ne '')
				{
					push @problems, "$name:$n: unexpected words after the fence language: '$rest'";
				}
			}
			elsif ($l =~ /^\s*~~~/)
			{
				push @problems, "$name:$n: a ~~~ fence: use ``` fences, which this test reads";
			}
			elsif (@blocks && $l !~ /^\s*$/)
			{
				# Text after a block: the block before it is no longer "just before".
				push @blocks, { lang => 'prose', line => $n };
			}
			next;
		}
		if ($l =~ /^\s*\Q$open->{ticks}\E\s*$/)
		{
			push @blocks, $open;
			$open = undef;
			next;
		}
		my $body = $l;
		# Strip the fence's indentation (a block inside a list item).
		my $strip = $open->{indent};
		$body =~ s/^ {0,$strip}//;
		push @{ $open->{body} }, $body;
	}
	push @problems, "$name:$open->{line}: a fence that is never closed" if $open;

	for my $k (0 .. $#blocks)
	{
		my $b = $blocks[$k];
		next if $b->{lang} eq 'prose';
		my $prev = $k > 0 ? $blocks[ $k - 1 ] : undef;
		my $next = $k < $#blocks ? $blocks[ $k + 1 ] : undef;
		if ($b->{lang} eq 'sql')
		{
			if (!$next || $next->{lang} ne 'output')
			{
				push @problems, "$name:$b->{line}: a sql block must be followed by its output block (or be sql-norun with a reason)";
				next;
			}
			push @examples, { line => $b->{line}, sql => join("\n", @{ $b->{body} }),
				output => join("\n", @{ $next->{body} }) };
		}
		elsif ($b->{lang} eq 'python')
		{
			push @python, { line => $b->{line}, code => join("\n", @{ $b->{body} }) };
		}
		elsif ($b->{lang} eq 'output' && (!$prev || $prev->{lang} ne 'sql'))
		{
			push @problems, "$name:$b->{line}: an output block that does not follow a sql block";
		}
	}
	return (\@examples, \@problems, \@python);
}

# What the comparison ignores: documented in doc/README.md.  $sysid: the server's system
# identifier.
sub normalise
{
	my ($s, $sysid) = @_;
	my @out;
	for my $l (split /\n/, $s)
	{
		# A system identifier: the server's, or any other 19-digit number (the author's
		# server's in the shown output, a made-up cluster's in an example).
		$l =~ s/\b\Q$sysid\E\b/SYSID/g if defined $sysid;
		$l =~ s/\b[1-9]\d{18}\b/SYSID/g;
		$l =~ s/(v1:)\d+(:\d+:)/${1}SYSID$2/g;
		$l =~ s/\b(cy[12]):(?:SYSID|\d+):\d+:\d+(:[0-9a-f]{16})?/$1 . ':SYSID:DB:XID' . (defined $2 ? ':NONCE' : '')/ge;
		$l =~ s{\b(?!0/0\b)[0-9A-F]{1,8}/[0-9A-F]{1,8}\b}{LSN}g;
		$l =~ s/\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?( ?(?:[+-]\d\d(?::\d\d)?|UTC))?/TIMESTAMP/g;
		$l =~ s/\b(transaction) \d+\b/$1 XID/g;
		$l =~ s/\s+$//;
		if ($l =~ /^[-+]+$/)
		{
			$l =~ s/-+/-/g;
		}
		else
		{
			$l =~ s/ {2,}/ /g;
			$l =~ s/^ //;
		}
		push @out, $l;
	}
	pop @out while @out && $out[-1] eq '';
	return join("\n", @out);
}

# The convention's checks catch what they promise.
{
	my ($ex, $pr) = parse('t.md', "```sql\nSELECT 1;\n```\n\n```output\n x\n```\n");
	is(scalar @$ex, 1, 'parser: a sql block and its output make one example');
	is_deeply($pr, [], 'parser: a well-formed example is no problem');
	($ex, $pr) = parse('t.md', "```sql\nSELECT 1;\n```\ntext\n```output\n x\n```\n");
	is(scalar @$pr, 2, 'parser: prose between a sql block and its output is refused');
	(undef, $pr) = parse('t.md', "```\nSELECT 1;\n```\n");
	like($pr->[0] // '', qr/without a language/, 'parser: a bare fence is refused');
	(undef, $pr) = parse('t.md', "```sql-norun\nSELECT 1;\n```\n");
	like($pr->[0] // '', qr/say why/, 'parser: sql-norun without a reason is refused');
	(undef, $pr) = parse('t.md', "```sql\nSELECT 1;\n```\n");
	like($pr->[0] // '', qr/followed by its output/, 'parser: a sql block without output is refused');
	(undef, $pr) = parse('t.md', "~~~sql\nSELECT 1;\n~~~\n");
	like($pr->[0] // '', qr/~~~ fence/, 'parser: a ~~~ fence is refused');
	(undef, $pr) = parse('t.md', "```psql\nSELECT 1;\n```\n");
	like($pr->[0] // '', qr/unknown fence language/, 'parser: an unknown language is refused');
	($ex, $pr) = parse('t.md', "* x:\n  ```sql\n  SELECT 1;\n  ```\n  ```output\n   x\n  ```\n");
	is($ex->[0]{sql} // '', 'SELECT 1;', 'parser: an indented block loses its indentation');
	is(normalise("v1:7301234567890123456:1:0/3000148 | 2026-11-21 06:31:02.12+00"),
		"v1:SYSID:1:LSN | TIMESTAMP", 'normalise: tokens and timestamps');
	is(normalise("v1:7301234567890123456:1:0/0"), "v1:SYSID:1:0/0", 'normalise: the 0/0 token stays');
	is(normalise("cy2:7301234567890123456:16384:90211:9f1c0000aaaa1111:stock, this server's is 7301234567890123456", '7301234567890123456'),
		"cy2:SYSID:DB:XID:NONCE:stock, this server's is SYSID", 'normalise: gids and the system identifier');
}

# The documents: README.md, then doc/**/*.md in path order.
my @files = ('README.md');
find({ no_chdir => 1, wanted => sub { push @files, $1 if m{^\Q$top\E/(doc/.*\.md)$} } }, "$top/doc")
  if -d "$top/doc";
@files = ('README.md', sort grep { $_ ne 'README.md' } @files);
ok(@files > 10, scalar(@files) . ' documents to check');

my %parsed;
my ($nexamples, $nnorun) = (0, 0);
for my $f (@files)
{
	my $text = slurp("$top/$f");
	my ($ex, $pr, $py) = parse($f, $text);
	is_deeply($pr, [], "$f follows the example convention");
	# Python examples are not run here, but they must at least parse.
	for my $p (@$py)
	{
		my ($out, $err) = ('', '');
		IPC::Run::run([ '/usr/bin/python3', '-c', 'import ast, sys; ast.parse(sys.stdin.read())' ],
			'<', \$p->{code}, '>', \$out, '2>', \$err);
		is($err, '', "$f:$p->{line}: the Python example parses");
	}
	$parsed{$f} = { text => $text, examples => $ex };
	$nexamples += @$ex;
	$nnorun++ while $text =~ /^\s*```sql-norun/mg;
}
note("$nexamples examples run, $nnorun sql-norun blocks");
ok($nnorun * 10 <= $nexamples, "few sql-norun blocks ($nnorun against $nexamples run)");

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
$node->start;

my $sysid = $node->safe_psql('postgres', 'SELECT system_identifier FROM pg_catalog.pg_control_system()');
my $outdir = "$PostgreSQL::Test::Utils::tmp_check/doc-examples";
make_path($outdir);

for my $f (@files)
{
	my $ex = $parsed{$f}{examples};
	next unless @$ex;
	# Named after the file, so an output showing the database's name stays put.
	(my $db = lc $f) =~ s/[^a-z0-9]+/_/g;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION consistency')
	  unless $parsed{$f}{text} =~ /<!-- doc-test: no-extension -->/;

	my $script = '';
	for my $k (0 .. $#$ex)
	{
		$script .= "\\echo '<<<doc-example $k>>>'\n$ex->[$k]{sql}\n";
	}
	my $out = '';
	local $ENV{PGTZ} = 'UTC';
	local $ENV{PGDATESTYLE} = 'ISO, MDY';
	IPC::Run::run([ 'psql', '-X', '-d', $node->connstr($db) ], '<', \$script, '>&', \$out);

	my @got = split /^<<<doc-example (\d+)>>>\n/m, $out;
	my $prelude = shift @got;
	is($prelude, '', "$f: nothing printed before the first example");
	my %by;
	while (@got) { my $k = shift @got; $by{$k} = shift @got; }

	(my $dump = $f) =~ s{/}{_}g;
	open(my $fh, '>', "$outdir/$dump.out") or die "cannot write $outdir/$dump.out: $!";
	for my $k (0 .. $#$ex)
	{
		my $got = $by{$k} // '(no output: the example before it did not end)';
		print $fh "=== $f:$ex->[$k]{line}\n$got";
		my $ok = is(normalise($got, $sysid), normalise($ex->[$k]{output}, $sysid), "$f:$ex->[$k]{line}");
		diag("psql printed:\n$got") unless $ok;
	}
	close $fh;
	# A file's examples leave nothing behind that another file could see.
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_catalog.pg_prepared_xacts'), '0',
		"$f: its examples leave no prepared transaction");
}

# Every function and view of the extension has a reference page, listed in the index, with
# the sections of a reference page, an executed example that uses it, and in its Errors
# section only SQLSTATEs of the README's table (or PostgreSQL's own ones that the bad-input
# suite expects of it) and every SQLSTATE the bad-input suite expects of it.
$node->safe_psql('postgres', 'CREATE DATABASE catalog');
$node->safe_psql('catalog', 'CREATE EXTENSION consistency');
my $objects = $node->safe_psql('catalog', q{
	SELECT p.proname FROM pg_catalog.pg_proc p
	  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
	  JOIN pg_catalog.pg_extension e ON d.refclassid = 'pg_catalog.pg_extension'::regclass
	   AND d.refobjid = e.oid AND d.deptype = 'e'
	 WHERE e.extname = 'consistency'
	UNION
	SELECT c.relname FROM pg_catalog.pg_class c
	  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
	  JOIN pg_catalog.pg_extension e ON d.refclassid = 'pg_catalog.pg_extension'::regclass
	   AND d.refobjid = e.oid AND d.deptype = 'e'
	 WHERE e.extname = 'consistency' AND c.relkind IN ('v', 'm')
	ORDER BY 1});
my @objects = split /\n/, $objects;
ok(@objects >= 30, scalar(@objects) . ' functions and views in the extension');

my ($sqlstates) = $parsed{'README.md'}{text} =~ /^## SQLSTATEs\n(.*?)^## /ms;
my %documented = map { $_ => 1 } ($sqlstates // '') =~ /^\| `([0-9A-Z]{5})`/mg;
ok(keys %documented > 40, 'README lists its SQLSTATEs');

# The bad-input suite's table (function, bad value, SQLSTATE) is the tested list of what each
# function raises for bad input: every one of those SQLSTATEs is on the function's page.
my %raised;
my $bad_input = slurp("$top/test/pgtap/bad_input.sql");
while ($bad_input =~ /^\('(\w+)', '(?:[^']|'')*', '([0-9A-Z]{5})',/mg)
{
	$raised{$1}{$2} = 1;
}
my $index = -f "$top/doc/reference/README.md" ? slurp("$top/doc/reference/README.md") : '';
for my $o (@objects)
{
	my $page = "doc/reference/$o.md";
	if (!ok(-f "$top/$page", "$o has a reference page"))
	{
		next;
	}
	like($index, qr/\]\(\Q$o\E\.md\)/, "the reference index links $o");
	my $text = $parsed{$page}{text};
	my @missing = grep { $text !~ /^## \Q$_\E\s*$/m }
	  ('Synopsis', 'Description', 'Parameters', 'Return value', 'Errors', 'Concurrency', 'Example');
	is_deeply(\@missing, [], "$page has every section");
	ok((grep { $_->{sql} =~ /\b\Q$o\E\b/ } @{ $parsed{$page}{examples} }),
		"$page has an executed example that uses $o");
	my ($errors) = $text =~ /^## Errors\n(.*?)^## /ms;
	my @unknown = grep { !$documented{$_} && !$raised{$o}{$_} } ($errors // '') =~ /`([0-9A-Z]{5})`/g;
	is_deeply(\@unknown, [],
		"$page names only SQLSTATEs of the README's table (or PostgreSQL's own that bad_input.sql expects of $o)");
}
ok(keys %raised > 25, scalar(keys %raised) . ' functions in the bad-input table');
for my $fn (sort keys %raised)
{
	my $page = "doc/reference/$fn.md";
	next unless $parsed{$page};
	my ($errors) = $parsed{$page}{text} =~ /^## Errors\n(.*?)^## /ms;
	my %listed = map { $_ => 1 } ($errors // '') =~ /`([0-9A-Z]{5})`/g;
	is_deeply([ grep { !$listed{$_} } sort keys %{ $raised{$fn} } ], [],
		"$page lists every SQLSTATE test/pgtap/bad_input.sql expects of $fn");
}

my %known = map { $_ => 1 } @objects;
for my $page (glob "$top/doc/reference/*.md")
{
	(my $o = $page) =~ s{.*/|\.md$}{}g;
	next if $o eq 'README';
	ok($known{$o}, "doc/reference/$o.md documents an object of the extension");
}

$node->stop;
done_testing();
