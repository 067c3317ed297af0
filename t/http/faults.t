#!/usr/bin/perl
# Faults, on a stack of this test's own (one worker, two connections):
# PostgreSQL stops while requests run and starts again; the pool is
# exhausted by requests stuck on a row lock; clients give up and go away.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use List::Util qw(max);
use Test::More;
use Time::HiRes qw(time sleep);
use Recovery::HTTP qw(http jwt claims);
use Recovery::Stack;
use Recovery::Test qw(new_case case_version wait_for);

# writes may hold both connections and wait on a lock as long as the test
# holds it: the pool exhausted on purpose (t/http/locks.t has the defaults)
my $stack = Recovery::Stack->new(WORKERS => 1, POOL_SIZE => 2, QUEUE_TIMEOUT => '700ms',
                                 READ_RESERVE => 0, LOCK_TIMEOUT => '30s');
my $base = $stack->base;
my $dbh = $stack->dbh;
my $case = new_case($dbh, 10_000);
$dbh->do('SET ROLE recovery_admin');
my ($user) = $dbh->selectrow_array(
    q{SELECT recovery.user_create('agent@faults.test', 'Faults Agent', 'recovery_agent', 'faults-test-password')});
$dbh->do('RESET ROLE');
my $viewer = jwt(claims(role => 'recovery_viewer', sub => "$user"), dir => $stack->nginx_dir);
my $agent = jwt(claims(role => 'recovery_agent', sub => "$user"), dir => $stack->nginx_dir);

sub get_case {
    my (%opt) = @_;
    my $t0 = time;
    my $res = http(GET => "/api/v1/recovery-cases/$case", token => $viewer, base => $base,
                   timeout => 5, %opt);
    $res->{took} = time - $t0;
    return $res;
}

# Starts $code in $n children at once; collect() returns what each printed.
sub spawn {
    my ($n, $code) = @_;
    my @pipes;
    for (1 .. $n) {
        my $pid = open(my $fh, '-|') // die "fork: $!";
        if (!$pid) { $code->(); exit 0 }
        push @pipes, $fh;
    }
    return @pipes;
}

sub collect {
    return map { local $/; my $out = <$_>; close $_; $out } @_;
}

is(get_case()->{status}, 200, 'the stack answers');

# --- PostgreSQL stops while requests run --------------------------------
# the clients run until this file exists: however long the stop and start take
my $stop_clients = $stack->nginx_dir . '/stop-clients';
my $t_start = time;
my @children;
for my $client (1 .. 3) {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        until (-e $stop_clients) {
            my $res = get_case();
            printf "%.3f %d %.3f %s %s\n", time - $t_start, $res->{status}, $res->{took},
                $res->{headers}{'retry-after'} // '-', $res->{json} ? $res->{json}{error} // 'ok' : '-';
            sleep 0.02;
        }
        exit 0;
    }
    push @children, $fh;
}
sleep 1.5;
$stack->stop_db;
my $t_down = time - $t_start;
sleep 0.5;
my $ready_down = http(GET => '/readyz', base => $base);
sleep 1.5;
$stack->start_db;
my $t_up = time - $t_start;
# 3 s to reconnect, then 3 s of requests that must all succeed
sleep 0.1 while time - $t_start < $t_up + 6;
open my $stop, '>', $stop_clients or die "cannot create $stop_clients: $!";
close $stop;
my @lines = map { my $fh = $_; map { [split ' '] } <$fh> } @children;
close $_ for @children;
unlink $stop_clients;

my @unexpected = grep { $_->[1] != 200 && $_->[1] != 503 } @lines;
is(scalar @unexpected, 0, 'while PostgreSQL stopped and started, every answer was 200 or 503')
    or diag explain \@unexpected;
my @down = grep { $_->[1] == 503 } @lines;
cmp_ok(scalar @down, '>', 10, 'requests failed with 503 while it was down (' . scalar(@down) . ')');
is(scalar(grep { $_->[3] eq '-' || $_->[4] ne 'database_unavailable' } @down), 0,
   'each 503 has Retry-After and the error database_unavailable');
my $slowest = max map { $_->[2] } @lines;
cmp_ok($slowest, '<', 1.0, sprintf('no request hung: the slowest took %.3f s', $slowest));
my @late = grep { $_->[0] > $t_up + 3 } @lines;
cmp_ok(scalar @late, '>', 10, 'requests kept coming after the restart');
is(scalar(grep { $_->[1] != 200 } @late), 0,
   'from 3 s after PostgreSQL started again every request succeeds, nginx untouched');
is($ready_down->{status}, 503, '/readyz said 503 while the database was down');
is(http(GET => '/readyz', base => $base)->{status}, 200, 'and says 200 again');
unlike($stack->error_log, qr/exited on signal/, 'no worker crashed');
$dbh = $stack->dbh;

# --- the pool is exhausted ------------------------------------------------
# Two transitions wait on a row lock held here, holding both connections.
my $locked = new_case($dbh, 10_000);
my $version = case_version($dbh, $locked);
$dbh->begin_work;
$dbh->do('SELECT 1 FROM recovery.recovery_cases WHERE id = $1 FOR UPDATE', undef, $locked);

my @blocked = spawn(2, sub {
    print http(POST => "/api/v1/recovery-cases/$locked/transitions", token => $agent,
               base => $base, json => { event => 'contact', expected_version => $version })->{status};
});
# both connections are busy once both transitions wait on the lock
my $monitor = $stack->dbh;
ok(wait_for('two sessions of recovery_authenticator waiting on a lock', sub {
       $monitor->selectrow_array(q{SELECT count(*) = 2 FROM pg_stat_activity
           WHERE usename = 'recovery_authenticator' AND wait_event_type = 'Lock'}) }),
   'both transitions wait on the row lock, holding both connections');
$monitor->disconnect;

my @queued = collect(spawn(4, sub {
    my $res = get_case();
    printf '%d %.3f %s', $res->{status}, $res->{took}, $res->{json}{error} // 'ok';
}));
is(scalar(grep { /^503 / } @queued), 4, 'with both connections busy, queued requests get 503')
    or diag explain \@queued;
is(scalar(grep { my ($s, $t) = split; $t >= 0.6 && $t < 2 } @queued), 4,
   'after the queue timeout (700 ms)') or diag explain \@queued;

# clients that give up while they wait or while the database works
get_case(timeout => 0.3) for 1 .. 3;

my @waiting = spawn(2, sub { print get_case()->{status} });
# the lock goes as soon as both wait in the queue (they would get 503 after 700 ms)
wait_for('two requests in the queue (/metrics)', sub {
    http(GET => '/metrics', base => $base)->{content} =~ /^recovery_pool_queue_length\{worker="0"\} 2$/m }, 5);
$dbh->commit;
my @served = collect(@waiting);
my @results = sort(collect(@blocked));
is_deeply(\@results, [200, 409], 'once the lock is gone the two transitions finish: one 200, one 409');
is(scalar(grep { $_ == 200 } @served), 2, 'requests queued meanwhile are served once a connection frees up');

my @after = map { get_case()->{status} } 1 .. 20;
is(scalar(grep { $_ == 200 } @after), 20, 'afterwards every request succeeds: no connection leaked');
my $metrics = http(GET => '/metrics', base => $base)->{content};
like($metrics, qr/^recovery_pool_connections\{worker="0",state="idle"\} 2$/m,
     'both connections are idle again');
like($metrics, qr/^recovery_pool_queue_length\{worker="0"\} 0$/m, 'and nothing waits');
unlike($stack->error_log, qr/exited on signal/, 'no worker crashed');
my @alarms = $stack->error_log =~ /^(.*\[(?:alert|crit|emerg)\].*)$/mg;
is(scalar @alarms, 0, 'losing its database connections logs no alert, crit or emerg line')
    or diag join "\n", @alarms[0 .. ($#alarms < 4 ? $#alarms : 4)];

done_testing();
