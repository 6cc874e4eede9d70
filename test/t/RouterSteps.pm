# test/t/RouterSteps.pm: the C router in steps mode, for tests that change the servers
# between two router calls.
#
# Owns: starting test/router_example --steps (see its header for the commands and the
# lines it answers), sending one command and reading its one line, and ending it.
package RouterSteps;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(start_steps step finish_steps);

my $example = "$ENV{TESTDIR}/test/router_example";

# start_steps(ARGS...): a router in steps mode; {connect} holds its "connect ..." line.
sub start_steps
{
	-x $example or BAIL_OUT("$example is not built");
	my %h = (in => '', out => '', err => '');
	$h{run} = IPC::Run::start([ $example, '--steps', @_ ],
		'<', \$h{in}, '>', \$h{out}, '2>', \$h{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h{connect} = next_line(\%h);
	return \%h;
}

sub next_line
{
	my ($h) = @_;
	$h->{run}->pump until $h->{out} =~ /\n/;
	$h->{out} =~ s/^([^\n]*)\n//;
	return $1;
}

# step(ROUTER, COMMAND): the line the router answers.
sub step
{
	my ($h, $command) = @_;
	$h->{in} .= "$command\n";
	return next_line($h);
}

# finish_steps(ROUTER): ends it with "quit", not by closing its stdin: a server the test
# started meanwhile inherited the test's end of that pipe, which then stays open.
sub finish_steps
{
	my ($h) = @_;
	$h->{in} .= "quit\n";
	$h->{run}->finish;
	diag($h->{err}) if $h->{err} =~ /unknown step/;
}

1;
