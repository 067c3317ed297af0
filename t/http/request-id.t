#!/usr/bin/perl
# X-Request-Id: taken from the client when sane, generated otherwise, echoed
# in the response and the access log, and written into the case events and
# audit rows that the request causes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case case_version wait_for);

my $dbh = connect_db();
my $token = login('agent@demo.example', 'agent-demo-pass');

my $res = http(GET => '/api/v1/auth/me', token => $token);
like($res->{headers}{'x-request-id'}, qr/^[0-9a-f]{32}$/, 'without X-Request-Id one is generated');
is($res->{json}{request_id}, $res->{headers}{'x-request-id'},
   'and it is the request id inside the database');

my $rid = "rid-$$-" . time;
$res = http(GET => '/api/v1/auth/me', token => $token, headers => { 'X-Request-Id' => $rid });
is($res->{headers}{'x-request-id'}, $rid, 'a client X-Request-Id is echoed');
is($res->{json}{request_id}, $rid, 'and used inside the database');

for my $bad ('two words', 'quote"d', 'x' x 129) {
    $res = http(GET => '/api/v1/auth/me', token => $token, headers => { 'X-Request-Id' => $bad });
    like($res->{headers}{'x-request-id'}, qr/^[0-9a-f]{32}$/,
         'an unsafe X-Request-Id (' . substr($bad, 0, 12) . ') is replaced by a generated one');
}

$res = http(GET => '/api/v1/nothing', headers => { 'X-Request-Id' => $rid });
is($res->{headers}{'x-request-id'}, $rid, 'echoed on a 404 that nginx answers itself');
is($res->{json}{request_id}, $rid, 'and in its JSON body');

my $case = new_case($dbh, 5_000);
my $version = case_version($dbh, $case);
$res = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $token,
            headers => { 'X-Request-Id' => $rid }, json => { event => 'contact', expected_version => $version });
is($res->{status}, 200, 'a transition with X-Request-Id: 200');

my ($event_rid, $actor, $user) = $dbh->selectrow_array(
    'SELECT request_id, actor, actor_user_id FROM recovery.case_events WHERE case_id = $1 ORDER BY id DESC LIMIT 1',
    undef, $case);
is($event_rid, $rid, 'the case event carries the request id');
is($actor, 'agent@demo.example', 'and the user as actor');
is($user, 3, 'and the user id');

my ($audit_rows, $audit_actor, $audit_role) = $dbh->selectrow_array(
    'SELECT count(*), min(actor), min(db_role) FROM recovery.audit_log WHERE request_id = $1', undef, $rid);
cmp_ok($audit_rows, '>=', 2, 'audit rows of the request carry its id (case update and event)');
is($audit_actor, 'agent@demo.example', 'with the user as actor');
is($audit_role, 'recovery_agent', 'and the role the gateway switched to');

# the access log is buffered (flushed every second)
my $log = "$ENV{RECOVERY_NGINX_DIR}/access.log";
ok(wait_for("the request's line in $log", sub {
       open my $fh, '<', $log or die "$log: $!";
       grep { /request_id=\Q$rid\E$/ } <$fh> }),
   'the access log line carries the request id');

done_testing();
