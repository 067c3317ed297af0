# The gateway's login role over a real TCP login with its password: it can
# only switch into the recovery roles, and a request shaped like the
# gateway's (SET LOCAL ROLE, request context, function call) is audited as
# the application user under that role.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::Test qw(connect_db new_case case_version);

my $setup = connect_db();
my $case  = new_case($setup);

my $auth = connect_db(host => '127.0.0.1', user => 'recovery_authenticator',
                      password => 'authenticator');
ok($auth, 'recovery_authenticator logs in over TCP with its password');

ok(!eval { $auth->do('SELECT count(*) FROM recovery.recovery_cases'); 1 },
   'by itself it reads no business table');
is($auth->state, '42501', 'permission denied');

ok(!eval { $auth->do('SET ROLE postgres'); 1 }, 'it cannot become a superuser');
is($auth->state, '42501', 'permission denied');

my ($user_id, $email, $role) = $auth->selectrow_array(
    q{SELECT user_id, user_email, role FROM recovery.login('agent@demo.example', 'agent-demo-pass')});
is($role, 'recovery_agent', 'it checks a demo login');

# One request, the way the gateway makes it.
my $version = case_version($setup, $case);
$auth->begin_work;
$auth->do("SELECT set_config('role', \$1, true)", undef, $role);
$auth->do('SELECT recovery.set_request_context($1, $2)', undef, $user_id, 'req-gateway-1');
my ($state) = $auth->selectrow_array(
    q{SELECT state FROM recovery.case_transition($1, 'contact', $2)}, undef, $case, $version);
$auth->commit;
is($state, 'contacted', 'as the agent, it transitions a case');

my ($actor, $db_role, $db_user) = $setup->selectrow_array(q{
    SELECT actor, db_role, db_user FROM recovery.audit_log
    WHERE request_id = 'req-gateway-1' AND table_name = 'recovery_cases'});
is($actor, $email, 'the audit row names the application user');
is($db_role, 'recovery_agent', 'and the role of the request');
is($db_user, 'recovery_authenticator', 'and the login that carried it');

my ($event_actor) = $setup->selectrow_array(q{
    SELECT actor FROM recovery.case_events WHERE case_id = $1 AND event = 'contact'}, undef, $case);
is($event_actor, $email, 'the case history names the application user too');

ok(!eval { $auth->do('SELECT count(*) FROM recovery.recovery_cases'); 1 },
   'after the transaction the role switch is gone');

# A role that logs in itself cannot say that someone else is acting: its
# changes are recorded as its own.
my $login = "viewer_login_$$";
$setup->do("CREATE ROLE $login LOGIN PASSWORD 'viewer-login-pass' IN ROLE recovery_viewer");
my $viewer = connect_db(host => '127.0.0.1', user => $login, password => 'viewer-login-pass');
for my $attempt ([q{SELECT set_config('recovery.actor', 'admin@demo.example', true)}, 'recovery.actor'],
                 [q{SELECT set_config('recovery.user_id', '1', false)}, 'recovery.user_id'],
                 [q{SELECT recovery.set_request_context(1, 'req-fake')}, 'set_request_context']) {
    my ($sql, $what) = @$attempt;
    ok(!eval { $viewer->do($sql); 1 }, "a viewer that logs in itself cannot set $what");
    is($viewer->state, '42501', "$what: permission denied");
}
like($viewer->errstr, qr/only the gateway's login role may say who is acting/, 'and it is told why');
ok(eval { $viewer->do(q{SELECT set_config('recovery.request_id', 'its-own-request', true)}); 1 },
   'it may still name its own request id');
$viewer->disconnect;
$setup->do("DROP ROLE $login");

done_testing();
