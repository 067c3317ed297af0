#!/usr/bin/perl
# /api/v1/audit and /api/v1/audit/verify: auditors and admins read the trail
# (by request, row, actor); agents and viewers cannot.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case case_version);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $auditor = login('auditor@demo.example', 'auditor-demo-pass');
my $admin = login('admin@demo.example', 'admin-demo-pass');
my $case = new_case($dbh, 4_000);
my $rid = "audit-api-$$-" . time;

is(http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent, headers => { 'X-Request-Id' => $rid },
        json => { event => 'contact', expected_version => case_version($dbh, $case) })->{status}, 200,
   'an agent contacts a case');

my $res = http(GET => "/api/v1/audit?request_id=$rid", token => $auditor);
is($res->{status}, 200, 'an auditor queries the trail by request id: 200');
my %tables = map { $_->{table_name} => 1 } @{ $res->{json}{items} };
ok($tables{recovery_cases} && $tables{case_events}, 'the request\'s case update and event are there');
ok(!(grep { $_->{actor} ne 'agent@demo.example' } @{ $res->{json}{items} }), 'all by the agent');

$res = http(GET => "/api/v1/audit?table=recovery_cases&row=$case", token => $admin);
is($res->{status}, 200, 'an admin queries a row\'s history: 200');
is_deeply([map { $_->{action} } reverse @{ $res->{json}{items} }], ['INSERT', 'UPDATE', 'UPDATE'],
          'created, balance set, contacted: oldest to newest') or diag explain $res->{json}{items};
is($res->{json}{items}[0]{new_row}{state}, 'contacted', 'with the row as it became');

is(http(GET => '/api/v1/audit?limit=5', token => $agent)->{status}, 403, 'an agent cannot read the trail: 403');
is(http(GET => '/api/v1/audit/verify', token => $agent)->{status}, 403, 'nor verify it: 403');

$res = http(GET => '/api/v1/audit/verify', token => $auditor);
is($res->{status}, 200, 'an auditor verifies the chains: 200');
is($res->{json}{ok}, JSON::PP::true, 'they are intact');
cmp_ok($res->{json}{rows_checked}, '>', 1000, "over every row ($res->{json}{rows_checked})");

is(http(GET => '/api/v1/audit?from=yesterday-ish', token => $auditor)->{status}, 400, 'a bad time: 400');

done_testing();
