#!/usr/bin/perl
# Failover, on a cluster of this test's own: three PostgreSQL nodes under
# Patroni with etcd (scripts/ha.sh), synchronous replication, and an nginx
# whose recovery_database lists the three with target_session_attrs=read-write.
# Clients write through nginx with Idempotency-Keys, retrying what got no
# answer; the leader's server is lost (kill -9 of its Patroni and its
# postmaster); a standby is promoted and writes succeed again through the same
# nginx.  Every acknowledged write is on the new primary, once, and the chain
# verifies.  Before that: reads go to the standbys (recovery_replicas), and a
# read that sends back a write's commit position sees the write although the
# standbys lag.  After: reads and writes go on with every standby down, and
# writes get 503 with Retry-After, at once, while no primary exists.
use strict;
use warnings;
use Cwd qw(abs_path);
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Handle;
use Test::More;
use Time::HiRes qw(time sleep);
use Recovery::HTTP qw(http jwt claims);
use Recovery::SSE;
use Recovery::Test qw(wait_for);

my $root = abs_path("$FindBin::Bin/../..");
chomp(my $http_port = `$root/scripts/cluster.sh free-port`);
my $dir = "$root/tmp/ha-$$";
my $nginx_dir = "$root/tmp/ha-nginx-$http_port";
my $base = "http://127.0.0.1:$http_port";
my $owner = $$;
END {
    if ($$ == $owner) {
        system("$root/scripts/nginx.sh", 'stop', $nginx_dir);
        system("$root/scripts/ha.sh", 'destroy', $dir);
        system('rm', '-rf', $nginx_dir);
    }
}

sub ha { my $out = `$root/scripts/ha.sh @_ 2>&1`; chomp $out; return ($? == 0, $out) }

my ($ok, $out) = ha('start', $dir);
ok($ok, 'three nodes under Patroni') or BAIL_OUT($out);
like($out, qr/the standbys stream, one synchronously/, 'one standby is synchronous');
(undef, my $hosts) = ha('hosts', $dir);

sub psql {
    my ($node, $sql) = @_;
    my $v = `$root/scripts/ha.sh psql $dir $node -qtA -c "$sql" 2>/dev/null`;
    chomp $v;
    return $v;
}
sub leader { my (undef, $l) = ha('leader', $dir); return $l }
sub pid_of { open my $fh, '<', $_[0] or return; my $p = <$fh>; chomp $p; return $p }

my $first = leader();
psql('leader', q{ALTER ROLE recovery_authenticator PASSWORD 'authenticator'});
my $admin_id = psql('leader', q{SET ROLE recovery_admin; SELECT recovery.user_create('admin@ha.test', 'HA Admin', 'recovery_admin', 'ha-test-password')});
like($admin_id, qr/^\d+$/, 'an administrator on the primary');
{
    local @ENV{qw(LOGIN_RATE LOGIN_BURST API_RATE API_BURST WORKERS REPLICAS)}
        = ('1000r/s', 1000, '100000r/s', 100000, 2, $hosts);
    system("$root/scripts/nginx.sh", 'start', $nginx_dir, $http_port, $hosts) == 0 or BAIL_OUT('nginx');
}
my $admin = jwt(claims(role => 'recovery_admin', sub => $admin_id, exp => time + 3600), dir => $nginx_dir);

# --- live events come from the primary, and follow it ----------------------------
my $live_case = psql('leader', q{SELECT (recovery.payment_fail((recovery.payment_create(
    (recovery.customer_create('ha-live', 'HA Live')).id, 'INV-1', 10000, 'EUR', current_date - 30)).id, 'declined')).id});
sub live_note {
    return http(POST => "/api/v1/recovery-cases/$live_case/notes", token => $admin, base => $base, timeout => 15,
                json => { body => $_[0] });
}
my $live = Recovery::SSE->open($base, "/api/v1/events?case_id=$live_case", token => $admin);
is($live->status, 200, 'a live event stream through the same nginx');
my $note = live_note('before the outages')->{json}{id};
ok((grep { ($_->{json}{note_id} // 0) == $note } $live->events_until(sub { ($_[0]{json}{note_id} // 0) == $note }, 10)),
   'a note on the primary reaches it');

# --- jobs and the worker run on the primary only -----------------------------
my @standbys = grep { $_ ne $first } qw(node1 node2 node3);
ok(wait_for('the delivery worker on the primary', sub {
       psql($first, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_recovery delivery'}) eq '1' }),
   "the delivery worker runs on the primary ($first)");
is(psql($standbys[0], q{SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('pg_recovery delivery', 'pg_cron launcher')}),
   '0', 'neither it nor pg_cron runs on a standby');

# --- reads on standbys, and read-your-writes ----------------------------------------
ok(wait_for('the gateway\'s connections on both standbys', sub {
       !grep { psql($_, q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ngx_recovery'}) == 0 } @standbys }),
   'the gateway keeps connections on both standbys (recovery_replicas)');
my $res = http(POST => '/api/v1/customers', token => $admin, base => $base,
               json => { external_ref => "ha$$-ryw", name => 'Before' });
is($res->{status}, 201, 'a customer written');
my $customer = $res->{json}{id};
ok(wait_for('the customer on the standbys', sub {
       !grep { psql($_, "SELECT count(*) FROM recovery.customers WHERE id = $customer") ne '1' } @standbys }),
   'and replicated');
psql($_, 'SELECT pg_wal_replay_pause()') for @standbys;
# a standby pauses at the next record it would replay: an idle primary may
# send none for a while, so it is sent one (a WAL message, no table
# touched).  Transactional, so that its commit flushes it: PostgreSQL 15
# leaves a non-transactional message in the WAL buffers until something
# else flushes them, which a loaded machine may not do for a minute.
ok(wait_for('the standbys to stop replaying', sub {
       psql('leader', q{SELECT pg_logical_emit_message(true, 'ha.t', 'pause here')});
       !grep { psql($_, 'SELECT pg_get_wal_replay_pause_state()') ne 'paused' } @standbys }, 60),
   'the standbys lag: their replay is paused');
$res = http(PATCH => "/api/v1/customers/$customer", token => $admin, base => $base,
            json => { expected_version => 1, name => 'After' });
is($res->{status}, 200, 'the customer renamed');
my $lsn = $res->{headers}{'recovery-commit-lsn'};
like($lsn // '', qr{^[0-9A-F]+/[0-9A-F]+$}, "the answer says where the write committed: $lsn");
like($res->{headers}{'set-cookie'} // '', qr{^recovery_lsn=\Q$lsn\E; Path=/; .*HttpOnly}, 'in a cookie too, for browsers');
is(http(GET => "/api/v1/customers/$customer", token => $admin, base => $base)->{json}{name}, 'Before',
   'a read that does not send it back is served by a lagging standby');
is(http(GET => "/api/v1/customers/$customer", token => $admin, base => $base,
        headers => { 'Recovery-Commit-LSN' => $lsn })->{json}{name}, 'After',
   'a read that sends it back sees the write (the primary answers)');
is(http(GET => "/api/v1/customers/$customer", token => $admin, base => $base,
        headers => { Cookie => "recovery_lsn=$lsn" })->{json}{name}, 'After',
   'and so does one with the cookie');
is(http(GET => "/api/v1/customers/$customer", token => $admin, base => $base,
        headers => { 'Recovery-Commit-LSN' => "0/0'; DROP TABLE x; --" })->{status}, 200,
   'a position that is not one is ignored');
psql($_, 'SELECT pg_wal_replay_resume()') for @standbys;
ok(wait_for('the standbys to catch up', sub {
       http(GET => "/api/v1/customers/$customer", token => $admin, base => $base)->{json}{name} eq 'After' }),
   'once they replay again, every read sees it');

# --- a failover under write load ------------------------------------------------
my $stop = "$nginx_dir/stop-writers";
my @writers;
for my $w (1 .. 3) {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        STDOUT->autoflush(1);
        my $n = 0;
        my $deadline = time + 120;
        until (-e $stop || time > $deadline) {
            $n++;
            my $ref = "ha$$-w$w-$n";
            # the same key until it is answered: a retry cannot write twice
            while (time < $deadline) {
                my $res = http(POST => '/api/v1/customers', token => $admin, base => $base, timeout => 10,
                               headers => { 'Idempotency-Key' => $ref },
                               json => { external_ref => $ref, name => "HA $ref" });
                if ($res->{status} == 201) { printf "ack %s %.3f\n", $ref, time; last }
                printf "fail %d %.3f\n", $res->{status}, time;
                sleep 0.1;
            }
        }
        exit 0;
    }
    push @writers, $fh;
}
sleep 2;

# An outage, as clients see it: from the kill to the first write through nginx
# that succeeds after one has failed (until they see their postmaster gone,
# the old server's backends may still answer: those writes count, and are
# checked below with the others).
my $probe = 0;
sub probe_write {
    my $res = http(POST => '/api/v1/customers', token => $admin, base => $base, timeout => 15,
                   json => { external_ref => "ha$$-probe-" . ++$probe, name => 'Probe' });
    return $res->{status} == 201;
}
sub outage {
    my ($what, $kill) = @_;
    my $t0 = time;
    $kill->();
    wait_for("a write to fail after $what", sub { !probe_write() }, 10);
    my $back = wait_for("a write to succeed after $what", sub { probe_write() ? time : undef }, 60);
    return defined $back ? $back - $t0 : 999;
}

# the leader's postmaster alone: Patroni on that node starts it again
my $restarted = outage("kill -9 of ${first}'s postmaster",
                       sub { kill 'KILL', pid_of("$dir/$first/data/postmaster.pid") });
cmp_ok($restarted, '<', 30, sprintf("kill -9 of the leader's postmaster: writes succeed again %.1f s later", $restarted));
my $leader_after = wait_for('a leader', sub { leader() }, 30) // '';
diag("after the postmaster's kill, $leader_after leads (Patroni restarts it in place, or fails over)");
$first = $leader_after if $leader_after;
@standbys = grep { $_ ne $first } qw(node1 node2 node3);
# Patroni fails over only to the standby it knows to be synchronous: after a
# restart it takes a few of its loops to name one again
ok(wait_for('a synchronous standby again', sub { system("$root/scripts/ha.sh ready $dir") == 0 }, 60),
   'the cluster has a synchronous standby again');
sleep 1;

# the leader's server lost: Patroni and PostgreSQL together
my $second;
my $failover = outage("the loss of ${first}'s server", sub {
    kill 'KILL', pid_of("$dir/$first/patroni.pid"), pid_of("$dir/$first/data/postmaster.pid") });
$second = leader() // '';
ok($second && $second ne $first, "the server of $first lost, Patroni promotes " . ($second || 'nobody'));
cmp_ok($failover, '<', 30, sprintf('writes succeed again through the same nginx %.1f s after the loss', $failover));
my $after;
ok(wait_for('a note written on the new primary', sub {
       $after = live_note('after the failover');
       $after->{status} == 201 }, 30),
   'a note written after the failover (a 503 meanwhile is retried)');
my ($arrived, $resumed);
my $deadline = time + 30;
while (!$arrived && time < $deadline) {
    my $e = $live->next_event(1);
    if (!$e && $live->ended) {
        # the stream ended with its worker's database connection: resume it
        $resumed++;
        $live = Recovery::SSE->open($base, "/api/v1/events?case_id=$live_case", token => $admin,
                                    headers => { 'Last-Event-ID' => $live->last_id // '' });
        next;
    }
    $arrived = $e && ($e->{json}{note_id} // 0) == ($after->{json}{id} // -1);
}
ok($arrived, 'its live event reaches the stream from the new primary'
             . ($resumed ? ' (the client resumed)' : ', on the stream that stayed open'));
sleep 2;    # writes go on a while on the new primary
open my $touch, '>', $stop or die $!;
close $touch;
my (%acked, $failures, %statuses);
for my $fh (@writers) {
    while (my $line = <$fh>) {
        $acked{$1}++ if $line =~ /^ack (\S+)/;
        if ($line =~ /^fail (\d+)/) {
            $failures++;
            $statuses{$1}++;
        }
    }
    close $fh;
}
is_deeply([sort keys %statuses], [503],
          'every write that failed meanwhile got 503 at once (no hang, no other error): '
          . join(', ', map { "$statuses{$_} x $_" } sort keys %statuses));
diag(sprintf('%d writes acknowledged through both outages, %d attempts answered otherwise; '
             . 'writes succeeded again %.1f s after the postmaster\'s kill, %.1f s after the server\'s loss',
             scalar(keys %acked), $failures // 0, $restarted, $failover));

my $on_new = psql($second, q{SELECT string_agg(external_ref || ':' || n, ',') FROM
                             (SELECT external_ref, count(*) AS n FROM recovery.customers
                               WHERE external_ref LIKE 'ha%' GROUP BY 1) c});
my %stored = map { split /:/ } split /,/, $on_new;
my @lost = grep { !$stored{$_} } sort keys %acked;
is(scalar(@lost), 0, 'no acknowledged write is lost: all ' . scalar(keys %acked) . ' are on the new primary')
    or diag("lost: @lost[0 .. ($#lost < 9 ? $#lost : 9)]");
is(scalar(grep { $stored{$_} > 1 } keys %stored), 0, 'and none is written twice');
is(psql($second, q{SELECT ok FROM recovery.audit_verify()}), 't', 'the chain verifies on the new primary');
ok(wait_for('the delivery worker on the new primary', sub {
       psql($second, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_recovery delivery'}) eq '1' }),
   'the delivery worker takes over on the promoted standby');

# --- every standby down: the primary goes on alone --------------------------------
my ($third) = grep { $_ ne $first && $_ ne $second } qw(node1 node2 node3);
kill 'TERM', pid_of("$dir/$third/patroni.pid");
ok(wait_for("$third to stop", sub { !kill 0, pid_of("$dir/$third/patroni.pid") }, 60), "the last standby ($third) stops");
ok(wait_for('a write with no standby left', sub {
       $res = http(POST => '/api/v1/customers', token => $admin, base => $base, timeout => 15,
                   json => { external_ref => "ha$$-alone", name => 'Alone' });
       $res->{status} == 201 }, 60),
   'writes succeed with every standby down (synchronous_mode is not strict)');
is(http(GET => "/api/v1/customers/$res->{json}{id}", token => $admin, base => $base)->{status}, 200,
   'and reads too');

# --- no primary at all --------------------------------------------------------------
kill 'KILL', pid_of("$dir/$second/patroni.pid"), pid_of("$dir/$second/data/postmaster.pid");
my $t0 = time;
ok(wait_for('a 503 while no primary exists', sub {
       $res = http(POST => '/api/v1/customers', token => $admin, base => $base, timeout => 15,
                   json => { external_ref => "ha$$-none", name => 'None' });
       $res->{status} == 503 }, 30),
   'with no primary, writes get 503');
ok($res->{headers}{'retry-after'}, 'with Retry-After');
is($res->{json}{error}, 'database_unavailable', 'saying the database is unavailable');

done_testing;
