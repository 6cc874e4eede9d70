# examples/checkout/checkout.py (psycopg 3) against a throwaway cluster, as a role granted
# only consistency_admin: a paid cart is sold, a declined one released, a cart that does not
# fit holds nothing, a retried checkout holds stock once, an abandoned cart expires, a flash
# sale of 12 concurrent buyers never oversells; then the database is checked here too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('checkout');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consistency;
	CREATE ROLE shop LOGIN;
	GRANT consistency_admin TO shop;
});

my $dsn = sprintf('host=%s port=%d dbname=postgres user=shop', $node->host, $node->port);
my ($out, $err) = ('', '');
my $ok = IPC::Run::run([ '/usr/bin/python3', "$ENV{TESTDIR}/examples/checkout/checkout.py", $dsn ],
	'>', \$out, '2>', \$err);
note($out);
diag($err) if $err ne '';
ok($ok, 'the example exits 0');
for my $c ('a paid cart is sold', 'a declined cart is released', 'a cart that does not fit is sold out',
	'a retried checkout is sold once', 'a retried confirm answers the same units',
	'expire_reservations expires it', 'a late confirm is refused (YC203)',
	'the flash sale never oversells', 'check_inventory() finds nothing')
{
	like($out, qr/^ok \Q$c\E$/m, "example: $c");
}
unlike($out, qr/^not ok/m, 'the example reports no failed check');

# The database agrees: every confirmed unit left on_hand, nothing is reserved any more.
is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s %s', i.sku, i.on_hand + coalesce(s.sold, 0)), ', ' ORDER BY i.sku)
	  FROM (SELECT sku, sum(on_hand) AS on_hand, sum(reserved) AS reserved
	          FROM consistency.inventory GROUP BY sku) i
	  LEFT JOIN (SELECT sku, sum(qty) AS sold FROM consistency.reservations
	              WHERE status = 'confirmed' GROUP BY sku) s USING (sku)}),
	'mug 10, tee 5', 'on hand + confirmed = the initial stock, per SKU');
is($node->safe_psql('postgres', q{SELECT sum(reserved) FROM consistency.inventory}), '0',
	'nothing is left reserved');

$node->stop;
done_testing();
