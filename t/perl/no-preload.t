# The extension on a server that does not preload it, as a DBA adds it to an
# existing PostgreSQL whose shared_preload_libraries holds pg_cron only:
# CREATE EXTENSION succeeds with a WARNING that says what is missing and
# what to do, and the state machine, money, audit and reminders work there.
# Only delivery waits: GET /api/v1/delivery says why.  On the test cluster,
# which preloads it, nothing is said.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP qw(decode_json);
use Recovery::HTTP qw(http login);
use Recovery::SSE;
use Recovery::Stack;
use Recovery::Test qw(connect_db);

my $root = "$FindBin::Bin/../..";

# the preloaded test cluster first: no problem is reported there
my $preloaded = connect_db();
ok($preloaded->selectrow_array('SELECT recovery.delivery_worker_preloaded()'),
   'on a server that preloads pg_recovery the delivery worker is registered');
is(decode_json($preloaded->selectrow_array('SELECT recovery.api_delivery_status()'))->{problem}, undef,
   'and GET /api/v1/delivery reports no problem');
$preloaded->disconnect;

# cluster.sh start already creates both extensions: with the FATAL of old it died here
my $stack = eval { Recovery::Stack->new(PRELOAD => 'pg_cron', WORKERS => 1) };
ok($stack, 'a cluster that preloads pg_cron only starts, with pg_recovery created in it')
    or BAIL_OUT("no stack: $@");
my $dir = $stack->{pg_dir};

# psql in a session of its own, as a DBA runs it: (exit status, what it printed)
sub psql {
    my (@commands) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT or die "stderr: $!";
        exec("$root/scripts/cluster.sh", 'psql', $dir, '-v', 'ON_ERROR_STOP=1', map { ('-c', $_) } @commands)
            or die "psql: $!";
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

my ($status, $out) = psql('SHOW shared_preload_libraries');
like($out, qr/^\s*pg_cron\s*$/m, 'shared_preload_libraries is pg_cron alone');

# what a DBA types, in a session of its own
($status, $out) = psql('DROP EXTENSION pg_recovery');
is($status, 0, 'the extension can be dropped') or diag $out;
($status, $out) = psql('CREATE EXTENSION IF NOT EXISTS pg_cron', 'CREATE EXTENSION pg_recovery CASCADE',
                       q{SELECT 'still connected'});
is($status, 0, 'CREATE EXTENSION pg_recovery CASCADE succeeds') or diag $out;
unlike($out, qr/FATAL|server closed the connection/, 'no FATAL, no lost connection') or diag $out;
like($out, qr/still connected/, 'the session goes on after it');
like($out, qr/^WARNING:  pg_recovery is not in shared_preload_libraries: reminders are queued but not delivered/m,
     'a WARNING says that reminders will be queued but not delivered') or diag $out;
like($out, qr/^HINT:  Add pg_recovery to shared_preload_libraries .* and restart PostgreSQL/m,
     'with a hint that says what to do');

# the demo data (users, templates, the default dunning policy) loads there
($status, $out) = psql('\i sql/demo.sql');
is($status, 0, 'the demo data loads') or diag $out;

# the main paths, through the same functions as on a preloaded server
my $db = $stack->dbh;
ok(!$db->selectrow_array('SELECT recovery.delivery_worker_preloaded()'), 'the server knows it has no delivery worker');
my ($customer) = $db->selectrow_array(q{SELECT (recovery.customer_create('NP-1', 'No Preload', 'np@example.com')).id});
my ($payment) = $db->selectrow_array(
    q{SELECT (recovery.payment_create($1, 'INV-NP-1', 12500, 'EUR', current_date - 14)).id}, undef, $customer);
my ($case, $version) = $db->selectrow_array(q{SELECT id, version FROM recovery.payment_fail($1, 'card declined')},
                                            undef, $payment);
ok($case, 'a failed payment opens a case');
is_deeply([sort map { $_->[0] } @{ $db->selectall_arrayref(
              q{SELECT event FROM recovery.case_transitions($1) WHERE event IN ('contact', 'promise')}, undef, $case) }],
          ['contact', 'promise'], 'the state machine says what the case accepts');
my ($state) = $db->selectrow_array(
    q{SELECT state FROM recovery.case_transition($1, 'contact', $2, '{"reason": "called"}')}, undef, $case, $version);
is($state, 'contacted', 'a transition fires');
my $stale = eval { $db->do(q{SELECT recovery.case_transition($1, 'escalate', $2)}, undef, $case, $version); 1 };
ok(!$stale && $db->state eq 'PR002', 'a stale version is refused with its SQLSTATE (' . $db->state . ')');
is_deeply($db->selectrow_arrayref(q{SELECT amount, allocated FROM recovery.case_record_payment($1, 12500, 'EUR', 'NP-BANK')},
                                  undef, $case), [12500, 12500], 'money received is allocated to the last minor unit');
is_deeply($db->selectrow_arrayref(q{SELECT state, balance FROM recovery.recovery_cases WHERE id = $1}, undef, $case),
          ['resolved', 0], 'and the case resolves at zero');
cmp_ok($db->selectrow_array(q{SELECT count(*) FROM recovery.audit_log WHERE customer_id = $1}, undef, $customer),
       '>=', 4, 'the audit trigger recorded the changes');
my $verify = $db->selectrow_hashref('SELECT * FROM recovery.audit_verify()');
ok($verify->{ok} && $verify->{rows_checked} > 0, "the audit chains verify ($verify->{rows_checked} rows)")
    or diag explain $verify;

# reminders are queued, and wait
$db->do('CALL recovery.run_reminders()');
my ($queued) = $db->selectrow_array(q{SELECT count(*) FROM recovery.notifications WHERE status = 'queued'});
cmp_ok($queued, '>', 0, "run_reminders() queues reminders ($queued)");

my $token = login('manager@demo.example', 'manager-demo-pass', base => $stack->base);
my $res = http(GET => '/api/v1/delivery', token => $token, base => $stack->base);
is($res->{status}, 200, 'GET /api/v1/delivery answers');
is($res->{json}{worker}, undef, 'no worker runs');
is($res->{json}{preloaded}, JSON::PP::false, 'it says the library is not preloaded');
like($res->{json}{problem}{message}, qr/reminders are queued but not delivered/, 'and why nothing is delivered');
like($res->{json}{problem}{hint}, qr/shared_preload_libraries/, 'with what to do');
is($res->{json}{outbox}{queued}, $queued, 'the queued reminders are all still in the outbox');

# live events: no shared memory to wake the readers, so they look every 50 ms
is($db->selectrow_array('SELECT recovery.live_events_commits()'), -1, 'live events have no shared memory here');
my $stream = Recovery::SSE->open($stack->base, '/api/v1/events?case_id=1', token => $token);
is($stream->status, 200, 'an event stream opens');
my ($note) = $db->selectrow_array(q{SELECT (recovery.case_note_add(1, 'without the preload')).id});
my @seen = $stream->events_until(sub { ($_[0]{json}{note_id} // 0) == $note }, 10);
ok(@seen && ($seen[-1]{json}{note_id} // 0) == $note, 'and a note reaches it all the same (the reader polls)');

done_testing();
