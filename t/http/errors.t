#!/usr/bin/perl
# Bad input gets a precise JSON error and changes nothing: malformed and
# oversized bodies, wrong types, hostile strings, and every SQLSTATE class of
# the README's table mapped to its HTTP status.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login json_text);
use Recovery::Test qw(connect_db new_case case_version);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $case = new_case($dbh, 10_000);
my $pay = "/api/v1/recovery-cases/$case/payments";
my $move = "/api/v1/recovery-cases/$case/transitions";

sub error_is {
    my ($res, $status, $code, $name) = @_;
    is($res->{status}, $status, "$name: $status");
    is($res->{json}{error}, $code, "$name: error $code");
    ok(defined $res->{json}{message} && length $res->{json}{message}, "$name: a message");
    is($res->{json}{request_id}, $res->{headers}{'x-request-id'}, "$name: the request id");
}

sub unchanged {
    my ($name) = @_;
    my ($balance, $receipts) = $dbh->selectrow_array(
        'SELECT balance, (SELECT count(*) FROM recovery.receipts WHERE case_id = c.id)
           FROM recovery.recovery_cases c WHERE id = $1', undef, $case);
    is_deeply([$balance, $receipts], [10_000, 0], "$name: nothing was recorded");
}

# --- bodies -------------------------------------------------------------------
my %raw = (
    'malformed JSON'          => ['{"amount": 100,', 400, 'malformed_json'],
    'trailing garbage'        => ['{"amount": 100} x', 400, 'malformed_json'],
    'a JSON array'            => ['[100, "EUR"]', 400, 'malformed_json'],
    'an empty body'           => ['', 400, 'body_required'],
    'invalid UTF-8'           => [qq({"amount":100,"currency":"EUR","reference":"\xff\xfe"}), 400, 'malformed_json'],
    'nesting deeper than 32'  => ['{"details":' . ('[' x 40) . (']' x 40) . '}', 400, 'malformed_json'],
);
for my $name (sort keys %raw) {
    my ($body, $status, $code) = @{ $raw{$name} };
    my $res = http(POST => $pay, token => $agent, body => $body,
                   headers => { 'Content-Type' => 'application/json' });
    error_is($res, $status, $code, $name);
}
unchanged('after malformed bodies');

error_is(http(POST => $pay, token => $agent, body => 'amount=100&currency=EUR',
              headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }),
         415, 'unsupported_media_type', 'a form body');
error_is(http(POST => $pay, token => $agent, body => '{"amount":100}'),
         415, 'unsupported_media_type', 'no Content-Type');
my $other = new_case($dbh, 10_000);
is(http(POST => "/api/v1/recovery-cases/$other/payments", token => $agent,
        body => json_text({ amount => 1, currency => 'EUR' }),
        headers => { 'Content-Type' => 'application/json; charset=utf-8' })->{status},
   201, 'application/json with a charset is accepted');

my $big = http(POST => $pay, token => $agent,
               json => { amount => 100, currency => 'EUR', reference => 'x' x 70_000 });
error_is($big, 413, 'body_too_large', 'a body over 64 KiB');

# --- values -------------------------------------------------------------------
error_is(http(POST => $pay, token => $agent, json => { amount => '12.50', currency => 'EUR' }),
         400, 'invalid_value', 'an amount with a fraction (money is integer minor units)');
error_is(http(POST => $pay, token => $agent, json => { amount => 12.5, currency => 'EUR' }),
         400, 'invalid_value', 'a fractional JSON number');
error_is(http(POST => $pay, token => $agent,
              body => '{"amount": 99999999999999999999, "currency": "EUR"}',
              headers => { 'Content-Type' => 'application/json' }),
         400, 'invalid_value', 'an amount beyond 64 bits');
error_is(http(POST => $pay, token => $agent,
              body => '{"amount": -99999999999999999999, "currency": "EUR"}',
              headers => { 'Content-Type' => 'application/json' }),
         400, 'invalid_value', 'a negative amount beyond 64 bits (not saturated)');
error_is(http(POST => $pay, token => $agent, json => { amount => [1], currency => 'EUR' }),
         400, 'invalid_value', 'an array where a number belongs');
error_is(http(POST => $pay, token => $agent,
              body => '{"amount": 100, "currency": "EUR", "reference": "a\u0000b"}',
              headers => { 'Content-Type' => 'application/json' }),
         400, 'invalid_value', 'a NUL character in a string');
my $unknown = http(POST => $pay, token => $agent,
                   json => { amount => 100, currency => 'EUR', amout => 100 });
error_is($unknown, 400, 'unknown_field', 'a field the route does not take (a typo)');
is($unknown->{json}{message}, 'unknown field "amout"; the fields are: amount, currency, reference, allow_overpayment',
   'the error names the field and lists the known ones');
error_is(http(POST => $pay, token => $agent, json => { amount => 100 }),
         400, 'validation_failed', 'a missing currency (the extension says which)');
error_is(http(GET => '/api/v1/recovery-cases?min_balance=1e3', token => $agent),
         400, 'invalid_value', 'a query parameter of the wrong type');
error_is(http(GET => '/api/v1/recovery-cases?state=%00', token => $agent),
         400, 'invalid_value', 'a NUL byte in a query parameter');
my $typo = http(GET => '/api/v1/recovery-cases?stat=open', token => $agent);
error_is($typo, 400, 'unknown_parameter', 'a query parameter the route does not take (a typo)');
like($typo->{json}{message}, qr/^unknown query parameter "stat"; the parameters are: state, /,
     'the error names it and lists the known ones');
error_is(http(GET => '/api/v1/recovery-cases/99999999999999999999', token => $agent),
         400, 'invalid_value', 'a case id beyond bigint');
unchanged('after bad values');

# SQL in values is data, never SQL
my $hostile = q{x'); DELETE FROM recovery.receipts; --};
my $res = http(POST => $pay, token => $agent,
               json => { amount => 100, currency => 'EUR', reference => $hostile });
is($res->{status}, 201, 'a reference that looks like SQL is recorded: 201');
is($res->{json}{receipt}{reference}, $hostile, 'verbatim');
my ($receipts) = $dbh->selectrow_array('SELECT count(*) FROM recovery.receipts');
cmp_ok($receipts, '>', 1, 'and no receipt was deleted');
$res = http(GET => '/api/v1/recovery-cases?state=' . "open'%20OR%20'1'='1", token => $agent);
error_is($res, 400, 'validation_failed', 'a state that looks like SQL');

# --- the SQLSTATE table ------------------------------------------------------
my $version = case_version($dbh, $case);
error_is(http(GET => '/api/v1/recovery-cases?limit=500', token => $agent),
         400, 'validation_failed', 'PR004 validation');
error_is(http(GET => '/api/v1/recovery-cases/987654321', token => $agent),
         404, 'not_found', 'PR003 not found');
error_is(http(POST => $move, token => $agent, json => { event => 'contact', expected_version => $version - 1 }),
         409, 'stale_version', 'PR002 stale version');
error_is(http(POST => '/api/v1/customers', token => $agent,
              json => { external_ref => 'CUST-000001', name => 'Twin' }),
         409, 'conflict', 'PR009 an existing customer reference');
error_is(http(POST => $move, token => $agent, json => { event => 'plan_default', expected_version => $version }),
         422, 'illegal_transition', 'PR001 illegal transition');
error_is(http(POST => $pay, token => $agent, json => { amount => 100, currency => 'USD' }),
         422, 'currency_mismatch', 'PR005 currency mismatch');
error_is(http(POST => $pay, token => $agent, json => { amount => 1_000_000, currency => 'EUR' }),
         422, 'overpayment', 'PR006 overpayment');
my $contacted = new_case($dbh, 10_000);
is(http(POST => "/api/v1/recovery-cases/$contacted/transitions", token => $agent,
        json => { event => 'contact', expected_version => case_version($dbh, $contacted) })->{status},
   200, 'an agent contacts a case');
error_is(http(POST => "/api/v1/recovery-cases/$contacted/transitions", token => $agent,
              json => { event => 'write_off', expected_version => case_version($dbh, $contacted),
                        details => { reason => 'uncollectable' } }),
         403, 'permission_denied', '42501 privilege (writing off needs a manager)');
error_is(http(GET => '/api/v1/auth/me', headers => { 'X-API-Key' => 'rk_unknown' }),
         401, 'authentication_failed', 'PR007 authentication');

# a stale version says what the case is now
$res = http(POST => $move, token => $agent, json => { event => 'contact', expected_version => $version - 1 });
like($res->{json}{detail}, qr/now at version $version/, 'the 409 detail names the current version');
is($res->{json}{sqlstate}, 'PR002', 'and the SQLSTATE');

done_testing();
