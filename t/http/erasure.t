#!/usr/bin/perl
# GDPR erasure: an admin erases a customer; their personal data is gone from
# the tables, the API's answers and the audit trail, while amounts, states
# and history remain and the audit chains still verify.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db case_version);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $admin = login('admin@demo.example', 'admin-demo-pass');
my $auditor = login('auditor@demo.example', 'auditor-demo-pass');
my $tag = "gdpr-$$-" . time;
my ($name, $email, $phone) = ("Erika Mustermann $tag", "erika.$tag\@example.com", '+4915112345678');

my $customer = http(POST => '/api/v1/customers', token => $agent,
                    json => { external_ref => $tag, name => $name, email => $email, phone => $phone })->{json}{id};
my $payment = http(POST => '/api/v1/payments', token => $agent,
                   json => { customer_id => $customer, external_ref => 'INV-9', amount => 30_000,
                             currency => 'EUR', due_date => '2026-09-01' })->{json}{id};
my $case = http(POST => "/api/v1/payments/$payment/fail", token => $agent, json => { reason => 'insufficient funds' })
    ->{json}{case}{id};
http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent,
     json => { body => "Spoke to $name on $phone about her divorce." });
http(POST => "/api/v1/recovery-cases/$case/payments", token => $agent, json => { amount => 10_000, currency => 'EUR' });
http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
     json => { event => 'dispute', expected_version => case_version($dbh, $case),
               details => { reason => "$name says she never ordered" } });

my $document = http(POST => "/api/v1/recovery-cases/$case/documents?filename=$tag-id-card.pdf", token => $agent,
                    body => "%PDF-1.4 passport of $name", headers => { 'Content-Type' => 'application/pdf' })->{json}{id};
my $before = http(GET => "/api/v1/recovery-cases/$case", token => $agent)->{json};

is(http(POST => "/api/v1/customers/$customer/erase", token => $agent)->{status}, 403, 'an agent cannot erase: 403');
is(http(POST => '/api/v1/customers/987654321/erase', token => $admin)->{status}, 404, 'an unknown customer: 404');
my $res = http(POST => "/api/v1/customers/$customer/erase", token => $admin);
is($res->{status}, 200, 'an admin erases the customer: 200');
cmp_ok($res->{json}{audit_rows_erased}, '>=', 5, "audit rows erased: $res->{json}{audit_rows_erased}");

# --- gone from the API --------------------------------------------------------
my $now = http(GET => "/api/v1/customers/$customer", token => $agent)->{json};
is($now->{name}, "erased customer $customer", 'the name is gone');
is_deeply([$now->{email}, $now->{phone}], [undef, undef], 'email and phone are gone');
ok($now->{erased_at}, 'the customer says when it was erased');
my $after = http(GET => "/api/v1/recovery-cases/$case", token => $agent)->{json};
my ($note) = grep { $_->{kind} eq 'note' } @{ $after->{timeline} };
is($note->{body}, '[erased]', 'the note is erased');
my ($dispute) = grep { $_->{kind} eq 'event' && $_->{event} eq 'dispute' } @{ $after->{timeline} };
is($dispute->{reason}, '[erased]', 'the dispute reason is erased');
unlike(http(GET => "/api/v1/customers?q=Mustermann", token => $agent)->{content}, qr/Mustermann/,
       'a search for the name finds nothing');
is(http(GET => "/api/v1/documents/$document/content", token => $agent)->{status}, 404,
   'the document\'s content is gone');
my $meta = http(GET => "/api/v1/documents/$document", token => $agent)->{json};
ok($meta->{filename} eq 'erased' && $meta->{erased_at}, 'its name too; its size and digest stay');

# --- kept: amounts, states, history -------------------------------------------
is_deeply([$after->{balance}, $after->{state}, scalar @{ $after->{timeline} }],
          [$before->{balance}, $before->{state}, scalar @{ $before->{timeline} }],
          'balance, state and the length of the history are unchanged');
is_deeply([map { [$_->{amount}, $_->{outstanding}] } @{ $after->{payments} }],
          [map { [$_->{amount}, $_->{outstanding}] } @{ $before->{payments} }], 'the payments are unchanged');

# --- gone from the database and the audit trail ------------------------------
my $pattern = join '|', map { quotemeta } ('Mustermann', $email, $phone, 'divorce', "$tag-id-card");
my ($rows) = $dbh->selectrow_array(q{SELECT count(*) FROM recovery.audit_log
                                     WHERE customer_id = $1 AND (old_row::text ~ $2 OR new_row::text ~ $2)},
                                   undef, $customer, $pattern);
is($rows, 0, 'no audit row of the customer holds the personal data');
my ($anywhere) = $dbh->selectrow_array(q{SELECT count(*) FROM recovery.customers_decrypted c
                                         WHERE c.name ~ $1 OR c.email ~ $1}, undef, $pattern);
is($anywhere, 0, 'nor does the customers table, decrypted');
my ($key) = $dbh->selectrow_array(q{SELECT (wrapped IS NULL AND destroyed_at IS NOT NULL)::int
                                    FROM recovery.customer_keys WHERE customer_id = $1}, undef, $customer);
is($key, 1, 'the customer\'s data key is destroyed');
$res = http(GET => '/api/v1/audit/verify', token => $auditor);
is($res->{json}{ok}, JSON::PP::true, 'and every audit chain still verifies');

is(http(POST => "/api/v1/customers/$customer/erase", token => $admin)->{status}, 200,
   'erasing again is harmless: 200');

done_testing();
