#!/usr/bin/perl
# The role matrix of every route: who may (any answer but 401 and 403: the
# body may still be refused) and who may not (403).  The grants of the
# database and the extension's checks decide; the gateway only switches role.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case);

my $dbh = connect_db();
my %who = map { $_ => { token => login("$_\@demo.example", "$_-demo-pass") } }
          qw(viewer agent manager auditor admin);
$dbh->do('SET ROLE recovery_admin');
my ($key) = $dbh->selectrow_array(q{SELECT recovery.api_key_create('roles.t', 'recovery_automation')});
$dbh->do('RESET ROLE');
$who{automation} = { headers => { 'X-API-Key' => $key } };

my $case = new_case($dbh, 50_000);
my ($customer) = $dbh->selectrow_array('SELECT customer_id FROM recovery.recovery_cases WHERE id = $1', undef, $case);
my ($payment) = $dbh->selectrow_array('SELECT id FROM recovery.payments WHERE case_id = $1', undef, $case);

# route => roles that may; everyone else gets 403
my @all = qw(viewer agent manager auditor admin);
my @agents = qw(agent manager admin);
my @routes = (
    [GET => '/api/v1/customers', undef, @all],
    [POST => '/api/v1/customers', { external_ref => "roles-$$", name => 'R' }, @agents],
    [GET => "/api/v1/customers/$customer", undef, @all],
    [PATCH => "/api/v1/customers/$customer", { expected_version => 0 }, @agents],
    [GET => '/api/v1/payments', undef, @all],
    [POST => '/api/v1/payments', { customer_id => $customer, external_ref => 'X', amount => 1,
                                   currency => 'EUR', due_date => '2026-01-01' }, @agents],
    [GET => "/api/v1/payments/$payment", undef, @all],
    [POST => "/api/v1/payments/$payment/fail", { reason => 'x' }, @agents],
    [GET => '/api/v1/recovery-cases', undef, @all],
    [POST => '/api/v1/recovery-cases', { customer_id => $customer, payment_ids => [] }, @agents],
    [GET => "/api/v1/recovery-cases/$case", undef, @all],
    [PATCH => "/api/v1/recovery-cases/$case", { expected_version => 0 }, @agents],
    [POST => "/api/v1/recovery-cases/$case/transitions", { event => 'contact', expected_version => 0 }, @agents],
    [POST => "/api/v1/recovery-cases/$case/payments", { amount => 1, currency => 'EUR' }, @agents],
    [POST => "/api/v1/recovery-cases/$case/notes", { body => 'x' }, @agents],
    [GET => "/api/v1/recovery-cases/$case/documents", undef, @all],
    [GET => '/api/v1/templates', undef, @all],
    [POST => '/api/v1/templates', { name => 'x', channel => 'sms', locale => 'en-GB', body => 'x',
                                    expected_version => 0 }, qw(manager admin)],
    [GET => '/api/v1/dunning-policies', undef, @all],
    [POST => '/api/v1/dunning-policies', { name => 'x', steps => [] }, qw(manager admin)],
    [GET => '/api/v1/notifications', undef, @all],
    [POST => '/api/v1/notifications/999999999/retry', undef, qw(manager admin)],
    [GET => "/api/v1/templates/999999999/preview?case_id=$case", undef, @all],
    [GET => "/api/v1/recovery-cases/$case/holds", undef, @all],
    [POST => "/api/v1/recovery-cases/$case/holds", { reason => ' ', ends_at => '2000-01-01T00:00:00Z' }, @agents],
    [POST => "/api/v1/customers/$customer/holds", { reason => ' ', ends_at => '2000-01-01T00:00:00Z' }, @agents],
    [POST => '/api/v1/dunning-holds/999999999/release', undef, @agents],
    [PUT => "/api/v1/recovery-cases/$case/dunning-policy", { policy => 'no-such-policy' }, qw(manager admin)],
    [PUT => "/api/v1/customers/$customer/dunning-policy", { policy => 'no-such-policy' }, qw(manager admin)],
    [GET => '/api/v1/delivery', undef, @all],
    [GET => '/api/v1/case-states', undef, @all],
    [GET => '/api/v1/jobs', undef, qw(manager auditor admin)],
    [POST => '/api/v1/extractions', { source => 'fax', content => 'x' }, @agents],
    [POST => '/api/v1/extractions/statements', { not => 'a statement' }, @agents],
    [GET => '/api/v1/extractions/999999999', undef, @all],
    [GET => '/api/v1/reconciliation', undef, @all],
    [POST => '/api/v1/reconciliation/999999999/confirm', {}, @agents],
    [POST => '/api/v1/reconciliation/999999999/reject', { reason => 'x' }, @agents],
    [GET => '/api/v1/bank-mappings', undef, @all],
    [POST => '/api/v1/bank-mappings', { name => 'Bad Name', mapping => {} }, qw(manager admin)],
    [GET => '/api/v1/audit?limit=1', undef, qw(auditor admin)],
    [GET => '/api/v1/audit/verify', undef, qw(auditor admin)],
    [GET => '/api/v1/analytics/summary', undef, @all],
    [GET => '/api/v1/users', undef, qw(admin)],
    [POST => '/api/v1/users', { email => 'x', display_name => 'x', role => 'x', password => 'x' }, qw(admin)],
    [GET => '/api/v1/api-keys', undef, qw(admin)],
    [POST => '/api/v1/api-keys', { name => 'x', role => 'nope' }, qw(admin)],
    [POST => "/api/v1/customers/$customer/erase", undef, qw()],    # checked last, below
    [GET => '/api/v1/automation/recovery-cases/pending', undef, qw(admin automation)],
    [POST => '/api/v1/automation/tasks/schedule', { kind => 'Bad!' }, qw(admin automation)],
    [GET => '/api/v1/automation/tasks/dead-letters', undef, qw(admin automation)],
    [POST => '/api/v1/automation/notifications', { case_id => $case, channel => 'sms', template => 'nope' },
     qw(agent manager admin automation)],
);

for my $route (@routes) {
    my ($method, $path, $body, @may) = @$route;
    next if $path =~ m{/erase$};
    my %may = map { $_ => 1 } @may;
    for my $role (sort keys %who) {
        my $res = http($method => $path, %{ $who{$role} }, defined $body ? (json => $body) : ());
        if ($may{$role}) {
            ok($res->{status} != 401 && $res->{status} != 403, "$method $path: $role may ($res->{status})");
        } else {
            is($res->{status}, 403, "$method $path: $role may not");
        }
    }
}

# what /auth/me says each role may do: the web app shows actions from this
my %may = (viewer => '', agent => 'act', manager => 'act manage', auditor => 'audit',
           admin => 'act administer audit manage');
for my $role (sort keys %may) {
    my $flags = http(GET => '/api/v1/auth/me', %{ $who{$role} })->{json}{may};
    is(join(' ', sort grep { $flags->{$_} } keys %$flags), $may{$role}, "auth/me: what $role may do");
}

# erasure: everyone but the admin is refused, and the admin's goes last
for my $role (grep { $_ ne 'admin' } sort keys %who) {
    is(http(POST => "/api/v1/customers/$customer/erase", %{ $who{$role} })->{status}, 403,
       "POST /api/v1/customers/{id}/erase: $role may not");
}
is(http(POST => "/api/v1/customers/$customer/erase", %{ $who{admin} })->{status}, 200,
   'POST /api/v1/customers/{id}/erase: admin may');

done_testing();
