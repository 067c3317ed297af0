#!/usr/bin/perl
# The routed case endpoints end to end: list with keyset pagination, get,
# transitions (one winner under a stale version), money received.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case case_version);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $manager = login('manager@demo.example', 'manager-demo-pass');

# --- list ---------------------------------------------------------------------
my $res = http(GET => '/api/v1/recovery-cases?state=open&limit=5', token => $agent);
is($res->{status}, 200, 'list open cases: 200');
is(scalar @{ $res->{json}{items} }, 5, 'a page of 5');
ok(!(grep { $_->{state} ne 'open' } @{ $res->{json}{items} }), 'all open');
ok(defined $res->{json}{next_cursor}, 'with a cursor to the next page');
my $next = http(GET => "/api/v1/recovery-cases?state=open&limit=5&cursor=$res->{json}{next_cursor}", token => $agent);
cmp_ok($next->{json}{items}[0]{id}, '>', $res->{json}{items}[-1]{id}, 'the next page starts after it');
my ($open) = $dbh->selectrow_array(q{SELECT count(*) FROM recovery.recovery_cases WHERE state = 'open'});
my (%seen, $cursor, $pages);
$cursor = '';
while (1) {
    my $page = http(GET => "/api/v1/recovery-cases?state=open&limit=37$cursor", token => $agent);
    $seen{$_->{id}}++ for @{ $page->{json}{items} };
    $pages++;
    last unless defined $page->{json}{next_cursor};
    $cursor = "&cursor=$page->{json}{next_cursor}";
}
is(scalar keys %seen, $open, "following next_cursor visits every open case ($pages pages)");
ok(!(grep { $_ > 1 } values %seen), 'and none twice');

# sorted by balance, descending, across pages
my @balances;
$cursor = '';
for (1 .. 3) {
    my $page = http(GET => "/api/v1/recovery-cases?sort=-balance&limit=50$cursor", token => $agent);
    push @balances, map { $_->{balance} } @{ $page->{json}{items} };
    $cursor = "&cursor=$page->{json}{next_cursor}";
}
is_deeply(\@balances, [sort { $b <=> $a } @balances], 'sort=-balance holds across pages');
my $bad = http(GET => "/api/v1/recovery-cases?sort=balance$cursor", token => $agent);
is($bad->{status}, 400, 'a cursor used with another sort order: 400');
is(http(GET => '/api/v1/recovery-cases?cursor=bm90LWpzb24', token => $agent)->{status}, 400,
   'a forged cursor: 400');
is(http(GET => '/api/v1/recovery-cases?sort=name', token => $agent)->{status}, 400,
   'an unknown sort: 400');

my $filtered = http(GET => '/api/v1/recovery-cases?min_balance=100000&max_balance=200000&min_overdue_days=60&limit=200',
                    token => $agent);
ok(!(grep { $_->{balance} < 100_000 || $_->{balance} > 200_000 || $_->{overdue_days} < 60 }
          @{ $filtered->{json}{items} }), 'balance and overdue filters hold');
my $mine = http(GET => '/api/v1/recovery-cases?assigned_user_id=3&limit=200', token => $agent);
ok(@{ $mine->{json}{items} } && !(grep { $_->{assigned_user_id} != 3 } @{ $mine->{json}{items} }),
   'the cases of one assignee');

# --- get and transitions ------------------------------------------------------
my $case = new_case($dbh, 20_000);
$res = http(GET => "/api/v1/recovery-cases/$case", token => $agent);
is($res->{status}, 200, 'get a case: 200');
is($res->{json}{balance}, 20_000, 'its balance in minor units');
is($res->{json}{currency}, 'EUR', 'and its currency');
is_deeply([sort map { $_->{event} } @{ $res->{json}{transitions} }],
          [qw(contact dispute escalate plan promise)],
          'the events an agent may fire on an open case (cancel is for admins)')
    or diag explain $res->{json}{transitions};

my $version = $res->{json}{version};
$res = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
            json => { event => 'contact', expected_version => $version });
is($res->{status}, 200, 'contact: 200');
is($res->{json}{state}, 'contacted', 'the case is contacted');
is($res->{json}{version}, $version + 1, 'at the next version');

$res = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
            json => { event => 'promise', expected_version => $version + 1,
                      details => { amount => 5_000, due_date => '2030-01-31' } });
is($res->{status}, 200, 'promise with its details: 200');
is($res->{json}{state}, 'promised', 'the case is promised');

# two clients with the same version: exactly one wins
$version = case_version($dbh, $case);
my @statuses;
for my $n (1 .. 2) {
    my $pid = open(my $child, '-|') // die "fork: $!";
    if (!$pid) {
        my $r = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
                     json => { event => 'escalate', expected_version => $version });
        print $r->{status};
        exit 0;
    }
    push @statuses, $child;
}
@statuses = sort map { scalar <$_> } @statuses;
is_deeply(\@statuses, [200, 409], 'two concurrent escalations at one version: one 200, one 409');

$res = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $manager,
            json => { event => 'write_off', expected_version => case_version($dbh, $case),
                      details => { reason => 'customer insolvent' } });
is($res->{status}, 200, 'a manager writes off: 200');
is($res->{json}{state}, 'written_off', 'written off');

# --- money --------------------------------------------------------------------
$case = new_case($dbh, 7_500);
$res = http(POST => "/api/v1/recovery-cases/$case/payments", token => $agent,
            json => { amount => 2_500, currency => 'EUR', reference => 'bank 1' });
is($res->{status}, 201, 'money received: 201 Created');
is($res->{json}{receipt}{amount}, 2_500, 'the receipt has the amount');
is($res->{json}{case}{balance}, 5_000, 'the balance went down by it');
$res = http(POST => "/api/v1/recovery-cases/$case/payments", token => $agent,
            json => { amount => 5_000, currency => 'EUR' });
is($res->{json}{case}{state}, 'resolved', 'paying the rest resolves the case');
is($res->{json}{case}{balance}, 0, 'at a zero balance');

# --- notes, assignment, timeline ---------------------------------------------
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
$case = new_case($dbh, 9_000);
$res = http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent,
            json => { body => 'Called, <b>voicemail</b>; will try again Friday.' });
is($res->{status}, 201, 'an agent adds a note: 201');
is($res->{json}{author}, 'agent@demo.example', 'written by the agent');
is(http(POST => "/api/v1/recovery-cases/$case/notes", token => $viewer, json => { body => 'x' })->{status},
   403, 'a viewer cannot add notes: 403');
is(http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent, json => { body => '  ' })->{status},
   400, 'an empty note: 400');
is(http(POST => '/api/v1/recovery-cases/987654321/notes', token => $agent, json => { body => 'x' })->{status},
   404, 'a note on an unknown case: 404');

$version = case_version($dbh, $case);
$res = http(PATCH => "/api/v1/recovery-cases/$case", token => $agent,
            json => { expected_version => $version, assigned_user_id => 3, priority => 1 });
is($res->{status}, 200, 'assign a case and set its priority: 200');
is_deeply([$res->{json}{assigned_user_id}, $res->{json}{priority}], [3, 1], 'assigned to user 3, priority 1');
is(http(PATCH => "/api/v1/recovery-cases/$case", token => $agent,
        json => { expected_version => $version, priority => 2 })->{status}, 409, 'with a stale version: 409');
is(http(PATCH => "/api/v1/recovery-cases/$case", token => $agent,
        json => { expected_version => $version + 1, priority => 9 })->{status}, 400, 'priority 9: 400');
is(http(PATCH => "/api/v1/recovery-cases/$case", token => $agent,
        json => { expected_version => $version + 1, assigned_user_id => 987654 })->{status}, 404,
   'to an unknown user: 404');
$res = http(PATCH => "/api/v1/recovery-cases/$case", token => $agent,
            json => { expected_version => $version + 1, assigned_user_id => 0 });
is($res->{json}{assigned_user_id}, undef, 'assigned_user_id 0 unassigns');
is(http(PATCH => "/api/v1/recovery-cases/$case", token => $viewer,
        json => { expected_version => $version + 2, priority => 2 })->{status}, 403, 'a viewer cannot: 403');

http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
     json => { event => 'contact', expected_version => case_version($dbh, $case) });
http(POST => "/api/v1/recovery-cases/$case/payments", token => $agent,
     json => { amount => 1_000, currency => 'EUR', reference => 'first part' });
$res = http(GET => "/api/v1/recovery-cases/$case", token => $viewer);
is_deeply([map { $_->{kind} eq 'event' ? "event:$_->{event}" : $_->{kind} } @{ $res->{json}{timeline} }],
          ['event:open', 'note', 'event:contact', 'event:payment_received', 'receipt'],
          'the timeline tells what happened, in order');
is($res->{json}{timeline}[1]{body}, 'Called, <b>voicemail</b>; will try again Friday.', 'notes keep their text as is');
is($res->{json}{payments}[0]{outstanding}, 8_000, 'the payments show what is still owed');

done_testing();
