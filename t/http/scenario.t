#!/usr/bin/perl
# One recovery from start to end through the API, as a user would live it: a
# payment fails, a case opens, an agent contacts the customer and records a
# promise, the money arrives in two parts, the case resolves; the timeline
# and the audit trail tell that story.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);

my $agent = login('agent@demo.example', 'agent-demo-pass');
my $auditor = login('auditor@demo.example', 'auditor-demo-pass');
my $tag = "story-$$-" . time;

my $customer = http(POST => '/api/v1/customers', token => $agent,
                    json => { external_ref => $tag, name => 'Ada Story', email => 'ada.story@example.com' })->{json}{id};
my $payment = http(POST => '/api/v1/payments', token => $agent,
                   json => { customer_id => $customer, external_ref => 'INV-2026-77', amount => 24_000,
                             currency => 'GBP', due_date => '2026-10-15' })->{json}{id};

my $res = http(POST => "/api/v1/payments/$payment/fail", token => $agent, json => { reason => 'card declined' });
my $case = $res->{json}{case}{id};
is($res->{json}{case}{state}, 'open', '1. the payment fails and a case opens');
is($res->{json}{case}{balance}, 24_000, '   owing 240.00 GBP');

$res = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
            json => { event => 'contact', expected_version => $res->{json}{case}{version} });
is($res->{json}{state}, 'contacted', '2. the agent contacts the customer');

$res = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
            json => { event => 'promise', expected_version => $res->{json}{version},
                      details => { amount => 24_000, due_date => '2030-12-01' } });
is($res->{json}{state}, 'promised', '3. the customer promises to pay it all');

$res = http(POST => "/api/v1/recovery-cases/$case/payments", token => $agent,
            json => { amount => 14_000, currency => 'GBP', reference => 'FPS 1' });
is_deeply([$res->{json}{case}{state}, $res->{json}{case}{balance}], ['promised', 10_000],
          '4. 140.00 arrives: still promised, 100.00 to go');

$res = http(POST => "/api/v1/recovery-cases/$case/payments", token => $agent,
            json => { amount => 10_000, currency => 'GBP', reference => 'FPS 2' });
is_deeply([$res->{json}{case}{state}, $res->{json}{case}{balance}], ['resolved', 0],
          '5. the rest arrives: the case resolves at a zero balance');

$res = http(GET => "/api/v1/recovery-cases/$case", token => $agent);
my @story = map { $_->{kind} eq 'event' ? $_->{event} : $_->{kind} } @{ $res->{json}{timeline} };
is_deeply([grep { !/^(payment_received|receipt)$/ } @story],
          [qw(open contact promise promise resolve)],
          'the timeline: opened, contacted, promised (and the promise itself), resolved')
    or diag explain \@story;
is(scalar(grep { $_ eq 'receipt' } @story), 2, 'two receipts');
my ($promise) = grep { $_->{kind} eq 'promise' } @{ $res->{json}{timeline} };
is($promise->{outcome}, 'kept', 'the promise was kept');
is($res->{json}{payments}[0]{status}, 'paid', 'the payment is paid');
is_deeply($res->{json}{transitions}, [{ event => 'reopen', to_state => 'contacted', required_details => [] }],
          'a resolved case accepts only reopen');

$res = http(GET => "/api/v1/audit?table=recovery_cases&row=$case&limit=50", token => $auditor);
my @states = grep { defined } map { $_->{new_row}{state} } reverse @{ $res->{json}{items} };
my @changes;
for (@states) { push @changes, $_ unless @changes && $changes[-1] eq $_ }
is_deeply(\@changes, [qw(open contacted promised resolved)], 'the audit trail has each state change of the case');
ok(!(grep { $_->{actor} ne 'agent@demo.example' } @{ $res->{json}{items} }), 'all made by the agent');

done_testing();
