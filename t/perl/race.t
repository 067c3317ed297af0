# Optimistic locking under a real race: two connections transition the same
# case from the same version at the same time; exactly one succeeds, the
# other gets the stale-version error (PR002), and the history has one entry.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use DBD::Pg qw(:async);
use Recovery::Test qw(connect_db new_case case_version wait_for);

my $setup = connect_db();

# 1. Deterministic interleaving: B arrives while A holds the case.
{
    my $case = new_case($setup);
    my $v    = case_version($setup, $case);
    my $a    = connect_db();
    my $b    = connect_db();

    $a->begin_work;
    $a->do(q{SELECT recovery.case_transition($1, 'contact', $2)}, undef, $case, $v);

    my $late = $b->prepare(q{SELECT recovery.case_transition($1, 'escalate', $2)},
                           { pg_async => PG_ASYNC });
    $late->execute($case, $v);
    ok(wait_for('the second writer to wait on a lock', sub {
           $setup->selectrow_array(q{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1},
                                   undef, $b->{pg_pid}) })
       && !$b->pg_ready, 'the second writer waits while the first holds the case');

    $a->commit;
    my $result = eval { $b->pg_result; 1 };
    ok(!$result, 'the second writer fails once the first commits');
    is($b->state, 'PR002', 'with the stale-version SQLSTATE');
    like($b->errstr, qr/was changed by someone else/, 'and a message a person understands');

    my ($state, $events) = $setup->selectrow_array(q{
        SELECT state, (SELECT count(*) FROM recovery.case_events
                       WHERE case_id = $1 AND event IN ('contact', 'escalate'))
        FROM recovery.recovery_cases WHERE id = $1}, undef, $case);
    is($state, 'contacted', 'the first writer won');
    is($events, 1, 'the history has one entry');
}

# 2. Truly simultaneous: two processes released at once, many rounds.
my $rounds = 25;
my ($wins, $stale, $other) = (0, 0, 0);
for my $round (1 .. $rounds) {
    my $case = new_case($setup);
    my $v    = case_version($setup, $case);

    # Both writers wait on a lock the parent holds, then go together.
    $setup->do('SELECT pg_advisory_lock(4242)');
    my @kids;
    for my $writer (1 .. 2) {
        pipe(my $reader, my $writer_fh) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $reader;
            my $dbh = connect_db();
            $dbh->do('SELECT pg_advisory_lock_shared(4242)');
            my $outcome = eval {
                $dbh->do(q{SELECT recovery.case_transition($1, 'contact', $2)}, undef, $case, $v);
                'ok';
            } // $dbh->state;
            print {$writer_fh} "$outcome\n";
            close $writer_fh;
            $dbh->disconnect;
            exit 0;
        }
        close $writer_fh;
        push @kids, [$pid, $reader];
    }
    # Release once both are waiting on the lock.
    wait_for("round $round: both writers waiting on the advisory lock", sub {
        $setup->selectrow_array(q{SELECT count(*) = 2 FROM pg_locks WHERE locktype = 'advisory'
                                     AND objid = 4242 AND NOT granted}) });
    $setup->do('SELECT pg_advisory_unlock(4242)');

    my @outcomes;
    for my $kid (@kids) {
        my ($pid, $reader) = @$kid;
        my $line = <$reader>;
        chomp $line if defined $line;
        push @outcomes, $line // 'no answer';
        waitpid $pid, 0;
    }
    my $ok = grep { $_ eq 'ok' } @outcomes;
    my $st = grep { $_ eq 'PR002' } @outcomes;
    $wins += $ok;
    $stale += $st;
    $other += 2 - $ok - $st;
    my ($events) = $setup->selectrow_array(q{
        SELECT count(*) FROM recovery.case_events WHERE case_id = $1 AND event = 'contact'},
        undef, $case);
    is($events, 1, "round $round: one contact event (@outcomes)");
}
is($wins, $rounds, 'exactly one writer succeeded in every round');
is($stale, $rounds, 'and the other got PR002 every time');
is($other, 0, 'no other outcome');

done_testing();
