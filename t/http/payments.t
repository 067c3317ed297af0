#!/usr/bin/perl
# /api/v1/payments: create, list with filters and keyset pages, get, and
# fail, which opens the customer's case or adds to the open one.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
my $tag = "pay-$$-" . time;
my $customer = http(POST => '/api/v1/customers', token => $agent,
                    json => { external_ref => $tag, name => 'Grace Payer' })->{json}{id};

my $res = http(POST => '/api/v1/payments', token => $agent,
               json => { customer_id => $customer, external_ref => 'INV-1', amount => 12_500,
                         currency => 'EUR', due_date => '2026-10-01' });
is($res->{status}, 201, 'create a payment: 201');
is($res->{json}{amount}, 12_500, 'the amount in minor units');
is($res->{json}{status}, 'pending', 'pending');
my $first = $res->{json}{id};
my $second = http(POST => '/api/v1/payments', token => $agent,
                  json => { customer_id => $customer, external_ref => 'INV-2', amount => 7_500,
                            currency => 'EUR', due_date => '2026-11-01' })->{json}{id};

is(http(POST => '/api/v1/payments', token => $agent,
        json => { customer_id => $customer, external_ref => 'INV-3', amount => 0,
                  currency => 'EUR', due_date => '2026-11-01' })->{status}, 400, 'a zero amount: 400');
is(http(POST => '/api/v1/payments', token => $agent,
        json => { customer_id => $customer, external_ref => 'INV-3', amount => 100,
                  currency => 'XXX', due_date => '2026-11-01' })->{status}, 400, 'an unknown currency: 400');
is(http(POST => '/api/v1/payments', token => $agent,
        json => { customer_id => $customer, external_ref => 'INV-3', amount => 100,
                  currency => 'EUR', due_date => '2026-02-30' })->{status}, 400, 'a date that does not exist: 400');
is(http(POST => '/api/v1/payments', token => $viewer,
        json => { customer_id => $customer, external_ref => 'INV-3', amount => 100,
                  currency => 'EUR', due_date => '2026-11-01' })->{status}, 403, 'a viewer: 403');

$res = http(GET => "/api/v1/payments?customer_id=$customer", token => $viewer);
is_deeply([map { $_->{id} } @{ $res->{json}{items} }], [$first, $second], 'the customer\'s payments by due date');
is(http(GET => "/api/v1/payments/$first", token => $viewer)->{json}{external_ref}, 'INV-1', 'get one');
is(http(GET => '/api/v1/payments/987654321', token => $viewer)->{status}, 404, 'an unknown one: 404');
is(http(GET => '/api/v1/payments?status=lost', token => $viewer)->{status}, 400, 'an unknown status: 400');

# failing payments opens the case, then adds to it
$res = http(POST => "/api/v1/payments/$first/fail", token => $agent, json => { reason => 'card declined' });
is($res->{status}, 200, 'fail a payment: 200');
is($res->{json}{payment}{status}, 'failed', 'the payment failed');
is($res->{json}{case}{state}, 'open', 'a case opened');
is($res->{json}{case}{balance}, 12_500, 'owing the payment');
my $case = $res->{json}{case}{id};
$res = http(POST => "/api/v1/payments/$second/fail", token => $agent, json => { status => 'overdue' });
is($res->{json}{payment}{status}, 'overdue', 'the second is overdue');
is($res->{json}{case}{id}, $case, 'and joins the same open case');
is($res->{json}{case}{balance}, 20_000, 'whose balance grew');
is(http(POST => "/api/v1/payments/$second/fail", token => $agent, json => { status => 'lost' })->{status},
   400, 'an unknown failure status: 400');

# opening a case by hand
my $other = http(POST => '/api/v1/customers', token => $agent,
                 json => { external_ref => "$tag-b", name => 'Hand Opened' })->{json}{id};
my @owed = map {
    http(POST => '/api/v1/payments', token => $agent,
         json => { customer_id => $other, external_ref => "INV-H$_->[0]", amount => $_->[1],
                   currency => $_->[2], due_date => '2026-08-01' })->{json}{id}
} ([1, 1_000, 'EUR'], [2, 2_000, 'EUR'], [3, 3_000, 'USD'], [4, 4_000, 'EUR']);
$res = http(POST => '/api/v1/recovery-cases', token => $agent,
            json => { customer_id => $other, payment_ids => [@owed[0, 1]], reason => 'called in by phone' });
is($res->{status}, 201, 'an agent opens a case by hand: 201');
is_deeply([$res->{json}{opened}, $res->{json}{state}, $res->{json}{balance}], [JSON::PP::true, 'open', 3_000],
          'a new open case owing both payments');
my $hand = $res->{json}{id};
$res = http(POST => '/api/v1/recovery-cases', token => $agent, json => { customer_id => $other, payment_ids => [$owed[3]] });
is_deeply([$res->{json}{opened}, $res->{json}{id}, $res->{json}{balance}], [JSON::PP::false, $hand, 7_000],
          'a further payment joins the open case');
is(http(POST => '/api/v1/recovery-cases', token => $agent,
        json => { customer_id => $other, payment_ids => [$owed[2], $first] })->{status}, 404,
   'a payment of another customer: 404');
is(http(POST => '/api/v1/recovery-cases', token => $viewer,
        json => { customer_id => $other, payment_ids => [$owed[2]] })->{status}, 403, 'a viewer cannot: 403');
is(http(POST => '/api/v1/recovery-cases', token => $agent,
        json => { customer_id => $other, payment_ids => ['x'] })->{status}, 400, 'ids that are not ids: 400');
is(http(POST => '/api/v1/recovery-cases', token => $agent,
        json => { customer_id => $other, payment_ids => [] })->{status}, 400, 'no payments: 400');

# filters and pages
$res = http(GET => '/api/v1/payments?status=failed&due_from=2026-01-01&due_to=2026-12-31&limit=100', token => $viewer);
ok(!(grep { $_->{status} ne 'failed' || $_->{due_date} lt '2026-01-01' || $_->{due_date} gt '2026-12-31' }
          @{ $res->{json}{items} }), 'status and due date filters hold');
my ($total) = $dbh->selectrow_array('SELECT count(*) FROM recovery.payments');
my %seen;
my $cursor = '';
while (1) {
    my $page = http(GET => "/api/v1/payments?limit=200$cursor", token => $viewer);
    $seen{$_->{id}}++ for @{ $page->{json}{items} };
    last unless defined $page->{json}{next_cursor};
    $cursor = "&cursor=$page->{json}{next_cursor}";
}
is(scalar keys %seen, $total, 'every payment once, in due date order pages');

done_testing();
