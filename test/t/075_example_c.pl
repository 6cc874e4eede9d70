# examples/c (libpq and the router library): built here with examples/c/Makefile (-Wall
# -Wextra -Werror) against the installation under test, then run against a throwaway primary
# (library preloaded) and streaming standby:
# - ryw: the token arrives as a ParameterStatus, no read is stale, the standby serves reads;
#   with its replay paused the read goes to the primary; resumed, the standby again;
# - reserve (a role granted only consistency_admin): reserve, its retry, YC202, confirm and
#   its retry, insufficient, release, YC204; then the database agrees.
# - idem_pipeline (a role granted only consistency_user): an idempotent order in libpq pipeline
#   mode, BEGIN + idem_begin and idem_complete + COMMIT each in one round trip, and its retry
#   answered from the stored response; one order exists.
# The programs empty their search_path: a role that can create objects plants look-alike
# functions in public, first in every search_path, and they are never called.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use lib $ENV{TESTDIR} . '/test/t';
use ConsistencyCluster;

my $dir = "$ENV{TESTDIR}/examples/c";
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';

# ---- build ------------------------------------------------------------------------------------
my ($out, $err) = ('', '');
IPC::Run::run([ 'make', '-C', $dir, 'clean' ], '>', \$out, '2>', \$err);
my $built = IPC::Run::run([ 'make', '-C', $dir, "PG_CONFIG=$pg_config" ], '>', \$out, '2>&1');
note($out);
ok($built, 'examples/c builds with -Wall -Wextra -Werror') or die "examples/c does not build:\n$out";
unlike($out, qr/warning:/, 'without a warning');

# ---- a primary with a trap in public, and its standby -----------------------------------------
my $primary = start_primary('c_primary', q{
	CREATE TABLE public.ryw_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
	CREATE ROLE app LOGIN;
	GRANT consistency_user TO app;
	GRANT SELECT, INSERT ON public.ryw_notes TO app;
	CREATE TABLE public.c_orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL);
	GRANT SELECT, INSERT ON public.c_orders TO app;
	CREATE ROLE shop LOGIN;
	GRANT consistency_admin TO shop;
	-- what an unqualified name in the programs would find first
	CREATE TABLE public.trap_calls (f text);
	GRANT INSERT ON public.trap_calls TO PUBLIC;
	CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text LANGUAGE sql
		AS $$ INSERT INTO public.trap_calls VALUES ('set_config'); SELECT ''::text $$;
	CREATE FUNCTION public.pg_sleep(double precision) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO public.trap_calls VALUES ('pg_sleep') $$;
	CREATE FUNCTION public.reserve(text, bigint, text, interval) RETURNS text LANGUAGE sql
		AS $$ INSERT INTO public.trap_calls VALUES ('reserve'); SELECT 'reserved'::text $$;
	ALTER DATABASE postgres SET search_path = public, consistency, pg_catalog;
});
my ($standby) = start_standbys($primary, 'c_standby');
my $conninfo = sub { sprintf('host=%s port=%d dbname=postgres user=%s', $_[0]->host, $_[0]->port, $_[1]) };

# ---- bad arguments: a usage error (exit 2), nothing written --------------------------------------
for my $bad ([ 'ryw', '--primary', $conninfo->($primary, 'app') ],
	[ 'ryw', '--primary', $conninfo->($primary, 'app'), '--standby', $conninfo->($standby, 'app'), '--writes', '0' ],
	[ 'ryw', '--bogus' ], [ 'reserve' ], [ 'reserve', 'a', 'b' ], [ 'idem_pipeline' ])
{
	my ($prog, @args) = @$bad;
	($out, $err) = ('', '');
	IPC::Run::run([ "$dir/$prog", @args ], '>', \$out, '2>', \$err);
	my $name = join(" ", $prog, map { /host=/ ? "CONNINFO" : $_ } @args);
	is($? >> 8, 2, "$name: refused (exit 2)");
	like($err, qr/^(usage: $prog |$prog: )/, "$name: with a message saying why");
}
is($primary->safe_psql('postgres', 'SELECT count(*) FROM public.ryw_notes'), '0', 'the refused runs wrote nothing');

# ---- ryw ----------------------------------------------------------------------------------------
($out, $err) = ('', '');
my $ok = IPC::Run::run([ "$dir/ryw", '--primary', $conninfo->($primary, 'app'),
	'--standby', $conninfo->($standby, 'app'),
	'--standby-admin', $conninfo->($standby, scalar getpwuid($<)) ], '>', \$out, '2>', \$err);
note($out);
diag($err) if $err ne '';
ok($ok, 'ryw exits 0');
for my $c ("the commit's token arrives as a ParameterStatus", 'no read is stale', 'the standby serves reads',
	"the primary's answer has the write", 'a standby behind the token sends the read to the primary',
	'once replay resumes the standby serves the read again')
{
	like($out, qr/^ok \Q$c\E$/m, "ryw: $c");
}
unlike($out, qr/^not ok/m, 'ryw reports no failed check');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM public.ryw_notes'), '51', 'ryw wrote its 51 notes');
is($standby->safe_psql('postgres', 'SELECT pg_is_wal_replay_paused()'), 'f', 'ryw left replay running');

# ---- idem_pipeline ------------------------------------------------------------------------------
($out, $err) = ('', '');
$ok = IPC::Run::run([ "$dir/idem_pipeline", $conninfo->($primary, 'app') ], '>', \$out, '2>', \$err);
note($out);
diag($err) if $err ne '';
ok($ok, 'idem_pipeline exits 0');
for my $c ('the search_path is emptied', 'the first request creates an order',
	'in 3 round trips, as many as BEGIN; INSERT; COMMIT', 'its retry is answered with the same response',
	'in 2 round trips', 'one order exists')
{
	like($out, qr/^ok \Q$c\E$/m, "idem_pipeline: $c");
}
unlike($out, qr/^not ok/m, 'idem_pipeline reports no failed check');
is($primary->safe_psql('postgres',
		q{SELECT count(*) || ' ' || min(state::text) || ' ' || min(response::text) FROM consistency.idempotency_keys WHERE key = 'c-order-1'}),
	'1 completed {"order_id": 1}', 'the key is stored once, with the order it created');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM public.c_orders'), '1', 'one order was written');

# ---- reserve ------------------------------------------------------------------------------------
($out, $err) = ('', '');
$ok = IPC::Run::run([ "$dir/reserve", $conninfo->($primary, 'shop') ], '>', \$out, '2>', \$err);
note($out);
diag($err) if $err ne '';
ok($ok, 'reserve exits 0');
for my $c ('the search_path is emptied', 'an order reserves 2', 'its retry answers reserved',
	'and holds stock once: 3 available', 'the same order id for another quantity is refused (YC202)',
	'confirm sells 2', 'a retried confirm answers 2', 'an order of 4 is insufficient',
	'and holds nothing: 3 available', 'an order reserves 3', 'sold out: 0 available', 'release gives 3 back',
	'3 available again', 'a released hold cannot be confirmed (YC204)')
{
	like($out, qr/^ok \Q$c\E$/m, "reserve: $c");
}
unlike($out, qr/^not ok/m, 'reserve reports no failed check');
is($primary->safe_psql('postgres', q{
	SELECT string_agg(reservation_id || ' ' || status, ', ' ORDER BY reservation_id)
	  FROM (SELECT DISTINCT reservation_id, status FROM consistency.reservations) r}),
	'c-order-1 confirmed, c-order-3 released', 'the database: one sold order, one released, none for the refused');
is($primary->safe_psql('postgres', q{SELECT sum(on_hand) || ' ' || sum(reserved) FROM consistency.inventory WHERE sku = 'c-lamp'}),
	'3 0', 'the database: 2 of 5 lamps sold, nothing held');

is($primary->safe_psql('postgres', 'SELECT count(*) FROM public.trap_calls'), '0',
	'neither program called a function planted in public');

$standby->stop;
$primary->stop;
done_testing();
