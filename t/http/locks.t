#!/usr/bin/perl
# One locked row must not make the API unavailable.  A session holds a case
# with SELECT ... FOR UPDATE while clients post transitions to it: each write
# fails after recovery_lock_timeout (1 s) with 503, lock_timeout and
# Retry-After, and reads of other cases go on through the connection each
# worker keeps for GETs (recovery_pool_read_reserve), on a stack of the
# template's settings with one worker of two connections.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time);
use Recovery::HTTP qw(http jwt claims);
use Recovery::Stack;
use Recovery::Test qw(new_case case_version wait_for);

my $stack = Recovery::Stack->new(WORKERS => 1, POOL_SIZE => 2);
my $base = $stack->base;
my $dbh = $stack->dbh;
my ($locked, $other) = (new_case($dbh), new_case($dbh));
my $version = case_version($dbh, $locked);
$dbh->do('SET ROLE recovery_admin');
my ($user) = $dbh->selectrow_array(
    q{SELECT recovery.user_create('agent@locks.test', 'Locks Agent', 'recovery_agent', 'locks-test-password')});
$dbh->do('RESET ROLE');
my $agent = jwt(claims(role => 'recovery_agent', sub => "$user"), dir => $stack->nginx_dir);

# the row is held, as a DBA's open transaction holds it
$dbh->begin_work;
$dbh->do('SELECT 1 FROM recovery.recovery_cases WHERE id = $1 FOR UPDATE', undef, $locked);

# four writers keep posting transitions to the held case
my @writers;
for (1 .. 4) {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        for (1 .. 3) {
            my $t0 = time;
            my $res = http(POST => "/api/v1/recovery-cases/$locked/transitions", token => $agent, base => $base,
                           json => { event => 'contact', expected_version => $version }, timeout => 15);
            printf "%d %.3f %s %s\n", $res->{status}, time - $t0, $res->{headers}{'retry-after'} // '-',
                $res->{json} ? $res->{json}{error} // 'ok' : '-';
        }
        exit 0;
    }
    push @writers, $fh;
}

# while they wait on the lock, reads of another case
my $monitor = $stack->dbh;
ok(wait_for('a transition waiting on the row lock', sub {
       $monitor->selectrow_array(q{SELECT count(*) > 0 FROM pg_stat_activity
           WHERE usename = 'recovery_authenticator' AND wait_event_type = 'Lock'}) }),
   'the writers wait on the held row');
my @reads;
for (1 .. 100) {
    my $t0 = time;
    my $res = http(GET => "/api/v1/recovery-cases/$other", token => $agent, base => $base);
    push @reads, [$res->{status}, time - $t0];
}
my @writes = map { my $fh = $_; my @l = map { [split ' '] } <$fh>; close $fh; @l } @writers;
$dbh->rollback;

my $served = grep { $_->[0] == 200 } @reads;
cmp_ok($served, '>=', 99, "reads of another case go on while the row is held ($served of 100 answered 200)")
    or diag explain [grep { $_->[0] != 200 } @reads];
is(scalar @writes, 12, 'every write was answered');
# a write waits on the lock at most 1 s; the others wait for the one
# connection writes may hold, and at most the queue timeout (2 s)
my @refused = grep { $_->[0] == 503 && $_->[2] eq '1' } @writes;
is(scalar @refused, 12, 'each write to the held row is answered 503 with Retry-After: 1')
    or diag explain \@writes;
my %why;
$why{$_->[3]}++ for @refused;
cmp_ok($why{lock_timeout} // 0, '>=', 1, "those that reached the row: lock_timeout ($why{lock_timeout})");
is(scalar(grep { $_ ne 'lock_timeout' && $_ ne 'database_unavailable' } keys %why), 0,
   'the others waited for a connection, as long as the queue timeout: database_unavailable')
    or diag explain \%why;
is(scalar(grep { $_->[1] > 4.5 } @writes), 0,
   'none waits until the statement timeout (5 s): the lock timeout (1 s) ends them');

# once the row is free again the write goes through
is(http(POST => "/api/v1/recovery-cases/$locked/transitions", token => $agent, base => $base,
        json => { event => 'contact', expected_version => $version })->{status}, 200,
   'once the row is free the same transition succeeds');
unlike($stack->error_log, qr/exited on signal/, 'no worker crashed');

done_testing();
