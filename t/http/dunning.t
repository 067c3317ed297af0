#!/usr/bin/perl
# The reminders' own routes over HTTP: holds on a case or a customer and
# their release, a case's or customer's own dunning policy, a template
# preview that escapes its HTML, dead letters retried by hand, the state of
# delivery and the job history; each with who may use it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case wait_for);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $manager = login('manager@demo.example', 'manager-demo-pass');
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
my $auditor = login('auditor@demo.example', 'auditor-demo-pass');
my $case = new_case($dbh);
my ($customer) = $dbh->selectrow_array('SELECT customer_id FROM recovery.recovery_cases WHERE id = $1', undef, $case);
my $until = '2099-01-01T00:00:00Z';
$until = $dbh->selectrow_array(q{SELECT to_char((now() + interval '10 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')});

# --- holds --------------------------------------------------------------------
my $res = http(POST => "/api/v1/recovery-cases/$case/holds", token => $agent,
               json => { reason => 'customer in hospital', ends_at => $until });
is($res->{status}, 201, 'an agent puts a case on hold: 201');
my $hold = $res->{json}{id};
is($res->{json}{created_by}, 'agent@demo.example', 'recorded with who did it');
is(http(POST => "/api/v1/recovery-cases/$case/holds", token => $viewer,
        json => { reason => 'x', ends_at => $until })->{status}, 403, 'a viewer cannot: 403');
$res = http(POST => "/api/v1/recovery-cases/$case/holds", token => $agent,
            json => { reason => 'x', ends_at => '2000-01-01T00:00:00Z' });
is($res->{status}, 400, 'a hold that ended already: 400');
like($res->{json}{message}, qr/ends in the future/, 'saying why');
is(http(POST => "/api/v1/recovery-cases/$case/holds", token => $agent,
        json => { reason => 'x', ends_at => 'soon' })->{status}, 400, 'an end that is not a time: 400');
is(http(POST => '/api/v1/recovery-cases/999999999/holds', token => $agent,
        json => { reason => 'x', ends_at => $until })->{status}, 404, 'a hold on an unknown case: 404');
$res = http(POST => "/api/v1/customers/$customer/holds", token => $agent,
            json => { reason => 'bereavement', ends_at => $until });
is($res->{status}, 201, 'a customer can be put on hold too: 201');
is($res->{json}{case_id}, undef, 'for all of their cases');
$res = http(GET => "/api/v1/recovery-cases/$case/holds", token => $viewer);
is(scalar @{ $res->{json}{items} }, 2, 'a case lists its holds and its customer\'s');
$res = http(GET => "/api/v1/recovery-cases/$case", token => $viewer);
is_deeply([sort map { $_->{reason} } grep { $_->{kind} eq 'hold' } @{ $res->{json}{timeline} }],
          ['bereavement', 'customer in hospital'], 'the case\'s timeline shows both holds');
is(http(POST => "/api/v1/dunning-holds/$hold/release", token => $agent)->{status}, 200, 'a hold is released: 200');
is(http(POST => "/api/v1/dunning-holds/$hold/release", token => $agent)->{status}, 404, 'only once: 404');

# --- a case's own policy -------------------------------------------------------
is(http(PUT => "/api/v1/recovery-cases/$case/dunning-policy", token => $manager,
        json => { policy => 'standard' })->{status}, 200, 'a manager gives a case its own policy: 200');
my ($policy) = $dbh->selectrow_array(q{SELECT p.name FROM recovery.recovery_cases c
                                       JOIN recovery.dunning_policies p ON p.id = c.dunning_policy_id WHERE c.id = $1},
                                     undef, $case);
is($policy, 'standard', 'which the case now has');
is(http(PUT => "/api/v1/recovery-cases/$case/dunning-policy", token => $manager,
        json => { policy => 'no-such-policy' })->{status}, 404, 'an unknown policy: 404');
is(http(PUT => "/api/v1/recovery-cases/$case/dunning-policy", token => $agent,
        json => { policy => 'standard' })->{status}, 403, 'an agent cannot: 403');
is(http(PUT => "/api/v1/customers/$customer/dunning-policy", token => $manager,
        json => { policy => undef })->{status}, 200, 'a customer goes back to the default with null: 200');

# --- template preview ----------------------------------------------------------
my $tag = "dun$$";
$dbh->do(q{UPDATE recovery.customers SET name = '<img src=x onerror=alert(1)>' WHERE id = $1}, undef, $customer);
$res = http(POST => '/api/v1/templates', token => $manager,
            json => { name => "html-$tag", channel => 'email', locale => 'en-GB', subject => 'Hello',
                      body => 'Dear {{customer_name}}', html_body => '<p>Dear {{customer_name}}</p>' });
is($res->{status}, 200, 'an email template with an HTML body is saved');
$res = http(GET => "/api/v1/templates/$res->{json}{id}/preview?case_id=$case", token => $viewer);
is($res->{status}, 200, 'and previewed for a case');
is($res->{json}{html_body}, '<p>Dear &lt;img src=x onerror=alert(1)&gt;</p>', 'with every value escaped in the HTML');
is($res->{json}{body}, 'Dear <img src=x onerror=alert(1)>', 'and as it is in the text');

# --- dead letters, delivery, jobs ------------------------------------------------
my ($dead) = $dbh->selectrow_array(q{
    INSERT INTO recovery.notifications (case_id, customer_id, channel, template_id, status, attempts,
                                        last_error, send_after, created_by)
    SELECT c.id, c.customer_id, 'letter', (SELECT id FROM recovery.templates WHERE channel = 'letter' LIMIT 1),
           'dead', 8, 'HTTP 503', now() + interval '1 day', 'test'
      FROM recovery.recovery_cases c WHERE c.id = $1 RETURNING id}, undef, $case);
is(http(POST => "/api/v1/notifications/$dead/retry", token => $agent)->{status}, 403, 'an agent cannot retry a dead letter: 403');
$res = http(POST => "/api/v1/notifications/$dead/retry", token => $manager);
is($res->{status}, 200, 'a manager can: 200');
is($res->{json}{status}, 'queued', 'it is queued again');
is(http(POST => "/api/v1/notifications/$dead/retry", token => $manager)->{status}, 422, 'a message that is not dead: 422');
$dbh->do(q{UPDATE recovery.notifications SET status = 'cancelled', cancel_reason = 'test' WHERE id = $1}, undef, $dead);

$res = http(GET => '/api/v1/delivery', token => $viewer);
is($res->{status}, 200, 'the state of delivery: 200');
is_deeply([map { $_->{channel} } @{ $res->{json}{circuits} }], [qw(email letter sms webhook)], 'a circuit per channel');
# the worker starts again by itself when it started before the database existed
ok(wait_for('the delivery worker in GET /api/v1/delivery',
            sub { http(GET => '/api/v1/delivery', token => $viewer)->{json}{worker}{pid} }, 90),
   'and the delivery worker');

is(http(GET => '/api/v1/jobs', token => $agent)->{status}, 403, 'an agent does not read the job history: 403');
$res = http(GET => '/api/v1/jobs?limit=5', token => $auditor);
is($res->{status}, 200, 'an auditor does: 200');
ok(ref $res->{json}{jobs} eq 'ARRAY' && ref $res->{json}{runs} eq 'ARRAY' && ref $res->{json}{reminder_runs} eq 'ARRAY',
   'jobs, their runs, and the reminder runs');

done_testing();
