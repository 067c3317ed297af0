#!/usr/bin/perl
# /api/v1/analytics/*: the KPIs the web app shows agree with the tables.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case);

my $dbh = connect_db();
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');

my $res = http(GET => '/api/v1/analytics/summary', token => $viewer);
is($res->{status}, 200, 'summary: 200');
my %open = map { $_->[0] => [$_->[1], $_->[2]] } @{ $dbh->selectall_arrayref(
    q{SELECT currency, count(*), sum(balance) FROM recovery.recovery_cases
       WHERE NOT recovery.case_state_is_terminal(state) GROUP BY currency}) };
is_deeply({ map { $_->{currency} => [$_->{open_cases}, $_->{open_balance}] } @{ $res->{json}{by_currency} } },
          \%open, 'open cases and balance by currency match the cases table');
my ($cases) = $dbh->selectrow_array('SELECT count(*) FROM recovery.recovery_cases');
my $by_state = 0;
$by_state += $_ for values %{ $res->{json}{cases_by_state} };
is($by_state, $cases, 'cases by state add up to all cases');
ok(!(grep { defined $_->{recovery_rate} && ($_->{recovery_rate} < 0 || $_->{recovery_rate} > 1) }
          @{ $res->{json}{by_currency} }), 'recovery rates are between 0 and 1');

$res = http(GET => '/api/v1/analytics/aging', token => $viewer);
is($res->{status}, 200, 'aging: 200');
my (%n, %sum);
for (@{ $res->{json}{buckets} }) { $n{$_->{currency}} += $_->{cases}; $sum{$_->{currency}} += $_->{balance} }
is_deeply({ map { $_ => [$n{$_}, $sum{$_}] } keys %n }, \%open, 'the buckets hold every open case and its balance');
ok(!(grep { $_->{bucket} !~ /^(0-30|31-60|61-90|90\+)$/ } @{ $res->{json}{buckets} }), 'in the four buckets');

$res = http(GET => '/api/v1/analytics/recovery-by-month', token => $viewer);
is($res->{status}, 200, 'recovery by month: 200');
my $opened = 0;
$opened += $_->{opened} for @{ $res->{json}{months} };
is($opened, $cases, 'every case is counted in the month it opened');

# results by channel: one message sent, then money within the week
my $case = new_case($dbh, 5_000);
my ($customer) = $dbh->selectrow_array('SELECT customer_id FROM recovery.recovery_cases WHERE id = $1', undef, $case);
my ($template) = $dbh->selectrow_array(q{SELECT id FROM recovery.templates WHERE channel = 'letter' LIMIT 1});
my $before = http(GET => '/api/v1/analytics/channels', token => $viewer)->{json}{channels};
my ($letters_before) = grep { $_->{channel} eq 'letter' } @$before;
$dbh->do(q{INSERT INTO recovery.notifications (case_id, customer_id, channel, template_id, status, sent_at, created_by)
           VALUES ($1, $2, 'letter', $3, 'sent', now() - interval '1 day', 'analytics.t')}, undef, $case, $customer, $template);
$dbh->do(q{SELECT recovery.case_record_payment($1, 1, (SELECT currency FROM recovery.recovery_cases WHERE id = $1))},
         undef, $case);
$res = http(GET => '/api/v1/analytics/channels', token => $viewer);
is($res->{status}, 200, 'channels: 200');
my ($letters) = grep { $_->{channel} eq 'letter' } @{ $res->{json}{channels} };
is($letters->{sent} - ($letters_before->{sent} // 0), 1, 'the sent letter is counted');
is($letters->{cases_paid_within_7_days} - ($letters_before->{cases_paid_within_7_days} // 0), 1,
   'and the money that followed it within the week');

is(http(GET => '/api/v1/analytics/summary')->{status}, 401, 'analytics need credentials');

done_testing();
