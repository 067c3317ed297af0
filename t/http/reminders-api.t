#!/usr/bin/perl
# Templates, dunning policies and notifications over HTTP: everyone reads,
# managers write; a template with an unknown placeholder and a policy with
# bad steps are refused when saved; workers queue notifications, which the
# case's timeline and the history show.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $manager = login('manager@demo.example', 'manager-demo-pass');
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
my $tag = "rem$$";

# --- templates ----------------------------------------------------------------
my $res = http(GET => '/api/v1/templates?channel=email', token => $viewer);
is($res->{status}, 200, 'a viewer reads the templates: 200');
ok(@{ $res->{json}{items} } && !(grep { $_->{channel} ne 'email' } @{ $res->{json}{items} }), 'the email ones');
ok((grep { $_ eq 'customer_name' } @{ $res->{json}{placeholders} }), 'with the placeholders they may use');

my %template = (name => "t-$tag", channel => 'sms', locale => 'en-GB', body => 'Pay {{amount}} now: {{payment_link}}');
$res = http(POST => '/api/v1/templates', token => $manager, json => \%template);
is($res->{status}, 200, 'a manager saves a template: 200');
is($res->{json}{version}, 1, 'version 1');
is(http(POST => '/api/v1/templates', token => $agent, json => \%template)->{status}, 403, 'an agent cannot: 403');
$res = http(POST => '/api/v1/templates', token => $manager, json => { %template, body => 'Hi {{first_name}}, pay {{amount}}' });
is($res->{status}, 400, 'an unknown placeholder is refused when saved: 400');
like($res->{json}{message}, qr/unknown placeholder first_name/, 'naming it');
is(http(POST => '/api/v1/templates', token => $manager,
        json => { %template, channel => 'email', name => "e-$tag" })->{status}, 400, 'an email without a subject: 400');
$res = http(POST => '/api/v1/templates', token => $manager, json => { %template, body => 'Pay {{amount}}.', expected_version => 1 });
is($res->{json}{version}, 2, 'saving again with the version read replaces it');
is(http(POST => '/api/v1/templates', token => $manager, json => { %template, expected_version => 1 })->{status},
   409, 'with a stale version: 409');

# --- dunning policies ---------------------------------------------------------
$res = http(GET => '/api/v1/dunning-policies', token => $viewer);
my ($default) = grep { $_->{is_default} } @{ $res->{json}{items} };
is($default->{name}, 'standard', 'the demo ships a default policy');
my @steps = ({ offset_days => 1, channel => 'sms', template => "t-$tag" },
             { offset_days => 7, channel => 'sms', template => "t-$tag", fee => { percent => 2.5 }, action => 'escalate' });
$res = http(POST => '/api/v1/dunning-policies', token => $manager, json => { name => "p-$tag", steps => \@steps });
is($res->{status}, 200, 'a manager saves a policy: 200');
for my $bad ([[{ %{ $steps[0] }, offset_days => 9 }, $steps[1]], 'offsets that shrink', qr/must grow/],
             [[{ %{ $steps[0] }, template => 'nope' }], 'an unknown template', qr/no sms template named "nope"/],
             [[{ %{ $steps[0] }, fee => { fixed => -5 } }], 'a negative fee', qr/fee/],
             [[{ %{ $steps[0] }, action => 'sue' }], 'an unknown action', qr/escalate/],
             [[{ %{ $steps[0] }, colour => 'red' }], 'an unknown field', qr/unknown field/],
             [[], 'no steps', qr/non-empty/]) {
    my ($policy_steps, $name, $why) = @$bad;
    $res = http(POST => '/api/v1/dunning-policies', token => $manager, json => { name => "p-$tag", steps => $policy_steps });
    is($res->{status}, 400, "$name: 400");
    like($res->{json}{message}, $why, "$name: says why");
}
is(http(POST => '/api/v1/dunning-policies', token => $agent, json => { name => "q-$tag", steps => \@steps })->{status},
   403, 'an agent cannot change policies: 403');

# --- notifications ------------------------------------------------------------
my $case = new_case($dbh, 3_000);
$res = http(POST => '/api/v1/automation/notifications', token => $agent,
            json => { case_id => $case, channel => 'sms', template => "t-$tag" });
is($res->{status}, 201, 'queue a notification: 201');
is($res->{json}{status}, 'queued', 'queued in the outbox');
is(http(POST => '/api/v1/automation/notifications', token => $viewer,
        json => { case_id => $case, channel => 'sms', template => "t-$tag" })->{status}, 403, 'a viewer cannot: 403');
is(http(POST => '/api/v1/automation/notifications', token => $agent,
        json => { case_id => $case, channel => 'sms', template => 'nope' })->{status}, 400, 'an unknown template: 400');
$res = http(GET => "/api/v1/notifications?case_id=$case", token => $viewer);
is(scalar @{ $res->{json}{items} }, 1, 'the case\'s history has it');
is($res->{json}{items}[0]{template}, "t-$tag", 'with its template');
my $timeline = http(GET => "/api/v1/recovery-cases/$case", token => $viewer)->{json}{timeline};
ok((grep { $_->{kind} eq 'notification' && $_->{channel} eq 'sms' } @$timeline), 'and so does its timeline');

done_testing();
