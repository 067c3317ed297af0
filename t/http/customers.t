#!/usr/bin/perl
# /api/v1/customers: search with keyset pages, create, get, update with a
# version; the role matrix; hostile values stay data.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP ();
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
my $tag = "cust-$$-" . time;

# --- create -------------------------------------------------------------------
my $res = http(POST => '/api/v1/customers', token => $agent,
               json => { external_ref => "$tag-1", name => '<img src=x onerror=alert(1)>',
                         email => 'ada@example.com', phone => '+441632960961',
                         locale => 'en-GB', time_zone => 'Europe/London' });
is($res->{status}, 201, 'an agent creates a customer: 201');
my $id = $res->{json}{id};
is($res->{headers}{location}, "/api/v1/customers/$id", 'Location says where the new customer is');
is(http(GET => $res->{headers}{location}, token => $viewer)->{json}{id}, $id, 'and it is there');
is($res->{json}{name}, '<img src=x onerror=alert(1)>', 'a name that looks like HTML is kept as text');
is($res->{json}{version}, 1, 'at version 1');
is(http(POST => '/api/v1/customers', token => $viewer,
        json => { external_ref => "$tag-2", name => 'Nope' })->{status}, 403, 'a viewer cannot: 403');
is(http(POST => '/api/v1/customers', token => $agent,
        json => { external_ref => "$tag-3", name => 'Bad Zone', time_zone => 'Mars/Olympus' })->{status},
   400, 'an unknown time zone: 400');
is(http(POST => '/api/v1/customers', token => $agent,
        json => { external_ref => "$tag-4", name => 'Bad Phone', phone => '12345' })->{status},
   400, 'a phone that is not E.164: 400');

# --- get ----------------------------------------------------------------------
$res = http(GET => "/api/v1/customers/$id", token => $viewer);
is($res->{status}, 200, 'a viewer reads a customer: 200');
is($res->{json}{email}, 'ada@example.com', 'with their details');
is_deeply($res->{json}{cases}, [], 'and their cases (none yet)');
is(http(GET => '/api/v1/customers/987654321', token => $viewer)->{status}, 404, 'an unknown customer: 404');

# --- update -------------------------------------------------------------------
$res = http(PATCH => "/api/v1/customers/$id", token => $agent,
            json => { expected_version => 1, email => 'ada.l@example.com' });
is($res->{status}, 200, 'update with the version read: 200');
is($res->{json}{email}, 'ada.l@example.com', 'the field changed');
is($res->{json}{name}, '<img src=x onerror=alert(1)>', 'the others kept');
is($res->{json}{version}, 2, 'the version moved on');
$res = http(PATCH => "/api/v1/customers/$id", token => $agent,
            json => { expected_version => 1, name => 'Lost Update' });
is($res->{status}, 409, 'update with a stale version: 409');
like($res->{json}{detail}, qr/now at version 2/, 'saying what the version is now');
is(http(PATCH => "/api/v1/customers/$id", token => $viewer,
        json => { expected_version => 2, name => 'Viewer' })->{status}, 403, 'a viewer cannot update: 403');
is(http(PATCH => "/api/v1/customers/$id", token => $agent, json => { name => 'No Version' })->{status},
   400, 'an update without expected_version: 400');
is(http(PATCH => "/api/v1/customers/$id", token => $agent,
        json => { expected_version => 2, contact_preferences => [1] })->{status},
   400, 'contact preferences that are not an object: 400');
$res = http(PATCH => "/api/v1/customers/$id", token => $agent,
            json => { expected_version => 2, contact_preferences => { email => JSON::PP::true, fax => JSON::PP::true } });
is($res->{status}, 400, 'contact preferences with a channel that does not exist: 400');
like($res->{json}{message}, qr/"fax"/, 'naming it');
like($res->{json}{hint}, qr/email, sms, letter, webhook/, 'and the channels there are');
$res = http(PATCH => "/api/v1/customers/$id", token => $agent,
            json => { expected_version => 2, contact_preferences => { sms => 'no' } });
is($res->{status}, 400, 'a preference that is not true or false: 400');
$res = http(PATCH => "/api/v1/customers/$id", token => $agent,
            json => { expected_version => 2, contact_preferences => { sms => JSON::PP::false } });
is($res->{status}, 200, 'a channel set to false: 200');
is_deeply($res->{json}{contact_preferences}, { sms => JSON::PP::false }, 'as sent');
my ($audited) = $dbh->selectrow_array(
    q{SELECT count(*) FROM recovery.audit_log WHERE table_name = 'customers' AND row_key = $1::text AND action = 'UPDATE'},
    undef, $id);
is($audited, 2, 'the updates are in the audit trail, the refused ones are not');

# --- search and pages ---------------------------------------------------------
$res = http(GET => '/api/v1/customers?q=smith&limit=10', token => $viewer);
is($res->{status}, 200, 'search: 200');
ok(@{ $res->{json}{items} } && !(grep { "$_->{name} $_->{email} $_->{external_ref}" !~ /smith/i }
                                        @{ $res->{json}{items} }), 'every hit matches');
is(http(GET => '/api/v1/customers?q=' . $tag, token => $viewer)->{json}{items}[0]{id}, $id,
   'search by reference');
is(scalar @{ http(GET => '/api/v1/customers?q=%25', token => $viewer)->{json}{items} }, 0,
   'a % in the search is a character, not a wildcard');

my ($total) = $dbh->selectrow_array('SELECT count(*) FROM recovery.customers');
my %seen;
my ($cursor, $pages) = ('', 0);
my $inserted = 0;
while (1) {
    my $page = http(GET => "/api/v1/customers?limit=200$cursor", token => $viewer);
    $seen{$_->{id}}++ for @{ $page->{json}{items} };
    $pages++;
    # rows inserted while a client pages through do not disturb the walk
    if ($pages == 2) {
        $dbh->do('SELECT recovery.customer_create($1, $2)', undef, "$tag-late-$_", "Late $_") for 1 .. 3;
        $inserted = 3;
    }
    last unless defined $page->{json}{next_cursor};
    $cursor = "&cursor=$page->{json}{next_cursor}";
}
is(scalar keys %seen, $total + $inserted, "all customers, in $pages pages, none missed while rows were inserted");
ok(!(grep { $_ > 1 } values %seen), 'none twice');
is(http(GET => '/api/v1/customers?limit=201', token => $viewer)->{status}, 400, 'limit above 200: 400');

done_testing();
