#!/usr/bin/perl
# The automation contract's tasks: scheduled once per unique key, claimed
# with leases (side by side, never twice), completed by the lease holder,
# retried with growing delays, dead-lettered after the last attempt and
# requeued; an expired lease goes to another worker.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db);

my $dbh = connect_db();
$dbh->do('SET ROLE recovery_admin');
my ($key_a) = $dbh->selectrow_array(q{SELECT recovery.api_key_create('tasks.t worker A', 'recovery_automation')});
my ($key_b) = $dbh->selectrow_array(q{SELECT recovery.api_key_create('tasks.t worker B', 'recovery_automation')});
$dbh->do('RESET ROLE');
my $kind = "test.tasks-$$-" . int(time);
my %a = (headers => { 'X-API-Key' => $key_a });
my %b = (headers => { 'X-API-Key' => $key_b });

sub schedule { http(POST => '/api/v1/automation/tasks/schedule', %a, json => { kind => $kind, @_ }) }
sub claim { my ($who, %opt) = @_; http(POST => '/api/v1/automation/tasks/claim', %$who, json => { kinds => [$kind], %opt }) }
sub due_now { $dbh->do('UPDATE recovery.tasks SET run_at = now() WHERE id = $1', undef, $_[0]) }

# --- schedule -----------------------------------------------------------------
my $res = schedule(payload => { case_id => 1 }, unique_key => "$kind-once");
is($res->{status}, 201, 'schedule a task: 201');
is($res->{json}{state}, 'scheduled', 'scheduled');
is($res->{json}{scheduled_before}, JSON::PP::false, 'new');
my $once = $res->{json}{id};
is($res->{headers}{location}, "/api/v1/automation/tasks/$once", 'Location: the task');
$res = schedule(payload => { case_id => 1 }, unique_key => "$kind-once");
is_deeply([$res->{json}{id}, $res->{json}{scheduled_before}], [$once, JSON::PP::true],
          'the same unique key schedules nothing new');
is(http(GET => "/api/v1/automation/tasks/$once", %a)->{json}{payload}{case_id}, 1, 'get it back');
is(schedule(kind => 'Bad Kind!')->{status}, 400, 'a malformed kind: 400');
my $agent = login('agent@demo.example', 'agent-demo-pass');
is(http(POST => '/api/v1/automation/tasks/schedule', token => $agent, json => { kind => $kind })->{status},
   403, 'an agent cannot schedule tasks: 403');

# --- claim and complete ------------------------------------------------------
$res = claim(\%a, limit => 10, lease_seconds => 30);
is($res->{status}, 200, 'claim: 200');
is_deeply([map { $_->{id} } @{ $res->{json}{items} }], [$once], 'the due task is claimed');
is($res->{json}{items}[0]{state}, 'running', 'running');
is($res->{json}{items}[0]{lease_owner}, 'api-key:tasks.t worker A', 'leased to worker A');
is(scalar @{ claim(\%b)->{json}{items} }, 0, 'worker B finds nothing left to claim');
is(http(PUT => "/api/v1/automation/tasks/$once/complete", %b, json => { result => { ok => 1 } })->{status},
   409, 'B cannot complete A\'s task: 409');
$res = http(PUT => "/api/v1/automation/tasks/$once/complete", %a, json => { result => { sent => 3 } });
is($res->{status}, 200, 'A completes it: 200');
is_deeply([$res->{json}{state}, $res->{json}{result}{sent}], ['done', 3], 'done, with its result');
is(http(PUT => "/api/v1/automation/tasks/$once/complete", %a, json => { result => {} })->{status},
   422, 'completing it again: 422');

# --- retries with growing delays, then the dead letters ---------------------
my $flaky = schedule(max_attempts => 3, retry_base_seconds => 10)->{json}{id};
my @delays;
for my $attempt (1 .. 3) {
    due_now($flaky) if $attempt > 1;
    my ($task) = @{ claim(\%a)->{json}{items} };
    is($task->{attempts}, $attempt, "attempt $attempt is claimed");
    my $t0 = time;
    $res = http(POST => "/api/v1/automation/tasks/$flaky/fail", %a, json => { error => "timeout $attempt" });
    if ($attempt < 3) {
        is($res->{json}{state}, 'scheduled', "after failure $attempt it is scheduled again");
        my ($delay) = $dbh->selectrow_array('SELECT extract(epoch FROM run_at - updated_at) FROM recovery.tasks WHERE id = $1',
                                            undef, $flaky);
        push @delays, $delay;
    } else {
        is($res->{json}{state}, 'dead', 'after the last attempt it is dead-lettered');
        is($res->{json}{last_error}, 'timeout 3', 'with its last error');
    }
}
ok($delays[0] >= 7.5 && $delays[0] <= 12.5, sprintf('first retry after 10 s +/- 25%% (%.1f s)', $delays[0]));
ok($delays[1] >= 15 && $delays[1] <= 25, sprintf('second after 20 s +/- 25%% (%.1f s): the delay grows', $delays[1]));
my $dead = http(GET => '/api/v1/automation/tasks/dead-letters?limit=200', %a);
ok((grep { $_->{id} == $flaky } @{ $dead->{json}{items} }), 'it is in the dead letters');
$res = http(POST => "/api/v1/automation/tasks/$flaky/requeue", %a);
is_deeply([$res->{status}, $res->{json}{state}, $res->{json}{attempts}], [200, 'scheduled', 0],
          'requeue brings it back with fresh attempts');
is(http(POST => "/api/v1/automation/tasks/$flaky/requeue", %a)->{status}, 422, 'requeue of a live task: 422');
is(http(POST => "/api/v1/automation/tasks/$flaky/fail", %a, json => { error => 'x' })->{status}, 422,
   'failing a task that is not running: 422');
is(claim(\%a)->{json}{items}[0]{id}, $flaky, 'and it can be claimed again');
http(PUT => "/api/v1/automation/tasks/$flaky/complete", %a, json => { result => {} });

# --- an expired lease goes to another worker ---------------------------------
my $slow = schedule()->{json}{id};
is(claim(\%a, lease_seconds => 1)->{json}{items}[0]{id}, $slow, 'A claims a task for 1 s');
sleep 1.3;
$res = claim(\%b);
is($res->{json}{items}[0]{id}, $slow, 'after the lease expired, B claims it');
is($res->{json}{items}[0]{attempts}, 2, 'as a second attempt');
is(http(PUT => "/api/v1/automation/tasks/$slow/complete", %a, json => { result => {} })->{status}, 409,
   'A\'s late result is refused: 409');
is(http(PUT => "/api/v1/automation/tasks/$slow/complete", %b, json => { result => {} })->{status}, 200,
   'B completes it');

# --- two workers claim side by side: never the same task --------------------
schedule(payload => { n => $_ }) for 1 .. 20;
my @pipes;
for my $who (\%a, \%b) {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        print join ' ', map { $_->{id} } @{ claim($who, limit => 20)->{json}{items} };
        exit 0;
    }
    push @pipes, $fh;
}
my @claimed = map { local $/; split ' ', scalar <$_> } @pipes;
my %count;
$count{$_}++ for @claimed;
is(scalar @claimed, 20, 'two workers claiming at once get the 20 tasks between them');
ok(!(grep { $_ > 1 } values %count), 'none twice');

# --- reminders and extractions: work scheduled for their workers ---------------
my ($open_case) = $dbh->selectrow_array(q{SELECT id FROM recovery.recovery_cases WHERE state = 'open' ORDER BY id LIMIT 1});
my ($closed_case) = $dbh->selectrow_array(q{SELECT id FROM recovery.recovery_cases WHERE state = 'resolved' ORDER BY id LIMIT 1});
$res = http(POST => '/api/v1/automation/reminders', %a,
            json => { case_id => $open_case, remind_at => '2030-01-01T09:00:00Z' });
is($res->{status}, 201, 'schedule a reminder: 201');
is_deeply([$res->{json}{kind}, $res->{json}{payload}{case_id}], ['reminder', $open_case], 'a reminder task for the case');
like($res->{json}{run_at}, qr/^2030-01-01T09:00:00/, 'at the time asked');
is(http(POST => '/api/v1/automation/reminders', %a, json => { case_id => $closed_case })->{status}, 422,
   'a reminder for a resolved case: 422');
is(http(POST => '/api/v1/automation/reminders', %a, json => { case_id => $open_case, channel => 'sms' })->{status},
   400, 'a channel without a template: 400');
is(http(POST => '/api/v1/automation/reminders', %a, json => { case_id => 987654321 })->{status}, 404,
   'an unknown case: 404');

$res = http(POST => '/api/v1/automation/extractions', %a,
            json => { source => 'sms', content => 'Paid EUR 120,00 for case 5 today', case_id => $open_case });
is($res->{status}, 201, 'schedule the extraction of an SMS: 201');
is_deeply([$res->{json}{kind}, $res->{json}{payload}{source}], ['extraction', 'sms'], 'an extraction task');
is(http(POST => '/api/v1/automation/extractions', %a, json => { source => 'fax', content => 'x' })->{status}, 400,
   'an unknown source: 400');
is(http(POST => '/api/v1/automation/extractions', %a, json => { source => 'document', document_id => 987654321 })->{status},
   404, 'an unknown document: 404');
is(http(POST => '/api/v1/automation/extractions', %a, json => { source => 'email' })->{status}, 400,
   'an email without content: 400');

# --- pending cases ------------------------------------------------------------
$res = http(GET => '/api/v1/automation/recovery-cases/pending?limit=50', %a);
is($res->{status}, 200, 'pending cases: 200');
ok(@{ $res->{json}{items} } && !(grep { $_->{state} =~ /^(resolved|written_off|cancelled|disputed|escalated)$/ }
                                         @{ $res->{json}{items} }), 'open ones only, not disputed or escalated');

done_testing();
