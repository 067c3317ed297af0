# The audit chain under many concurrent writers: writers append to
# different chains at once, each transaction's rows sit together on one
# chain (a savepoint rolled back included), savepoints rolled back and
# REPEATABLE READ writers leave no gap,
# and audit_verify() passes afterwards.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::Test qw(connect_db);

my $writers      = 8;
my $transactions = 60;
my $tag          = "conc-$$";

my $setup = connect_db();
my ($before) = $setup->selectrow_array('SELECT coalesce(max(id), 0) FROM recovery.audit_log');

my @pids;
for my $w (1 .. $writers) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $dbh = connect_db();
        for my $i (1 .. $transactions) {
            my $isolation = $i % 3 == 0 ? 'REPEATABLE READ' : 'READ COMMITTED';
            $dbh->do("BEGIN ISOLATION LEVEL $isolation");
            $dbh->do('SELECT recovery.set_request_context(NULL, $1)', undef, "$tag-$w-$i");
            my ($customer) = $dbh->selectrow_array(
                'SELECT (recovery.customer_create($1, $2)).id', undef,
                "$tag-$w-$i", "Concurrent $w $i");
            if ($i % 4 == 0) {
                # A savepoint rolled back: its audit rows vanish with it.
                $dbh->do('SAVEPOINT s');
                $dbh->do(q{SELECT recovery.payment_create($1, 'GONE', 100, 'EUR', current_date)},
                         undef, $customer);
                $dbh->do('ROLLBACK TO SAVEPOINT s');
            }
            my ($payment) = $dbh->selectrow_array(
                q{SELECT (recovery.payment_create($1, 'INV-1', 1234, 'EUR', current_date - 5)).id},
                undef, $customer);
            $dbh->do('SELECT recovery.payment_fail($1)', undef, $payment);
            $dbh->do('COMMIT');
        }
        $dbh->disconnect;
        exit 0;
    }
    push @pids, $pid;
}
my $failed = 0;
for my $pid (@pids) {
    waitpid $pid, 0;
    $failed++ if $? != 0;
}
is($failed, 0, "$writers writers of $transactions transactions each finished without error");

my ($rows, $requests, $chains) = $setup->selectrow_array(q{
    SELECT count(*), count(DISTINCT request_id), count(DISTINCT chain)
    FROM recovery.audit_log WHERE id > $1 AND request_id LIKE $2}, undef, $before, "$tag-%");
is($requests, $writers * $transactions, 'every transaction left audit rows');
is($rows, $writers * $transactions * 6,
   'six rows per transaction (customer, payment, case, payment update, case update, event)');
cmp_ok($chains, '>', 1, "concurrent writers appended to $chains chains at once");

my ($scattered) = $setup->selectrow_array(q{
    SELECT count(*) FROM (
        SELECT request_id FROM recovery.audit_log WHERE id > $1 AND request_id LIKE $2
        GROUP BY request_id
        HAVING count(DISTINCT chain) <> 1 OR max(seq) - min(seq) + 1 <> count(*)) s},
    undef, $before, "$tag-%");
is($scattered, 0, "each transaction's rows are consecutive on one chain");

my ($gone) = $setup->selectrow_array(q{
    SELECT count(*) FROM recovery.audit_log
    WHERE id > $1 AND table_name = 'payments' AND new_row->>'external_ref' = 'GONE'}, undef, $before);
is($gone, 0, 'rows of rolled-back savepoints are not in the trail');

# A savepoint rolled back after the transaction took its chain keeps it on
# that chain, even when a chain it would try first has come free since:
# another session holds every chain but one while the transaction takes
# it, then lets them go.
my $class = 0x52435652;    # AUDIT_LOCK_CLASS (audit.c)
my $holder = connect_db();
my $writer = connect_db();
my $free = 11;
$holder->do('SELECT pg_advisory_lock($1::integer, c) FROM generate_series(0, 15) c WHERE c <> $2',
            undef, $class - 2**32 * ($class >= 2**31), $free);
$writer->do('BEGIN');
$writer->do('SELECT recovery.set_request_context(NULL, $1)', undef, "$tag-kept");
my ($kept) = $writer->selectrow_array('SELECT (recovery.customer_create($1, $2)).id', undef,
                                      "$tag-kept", 'Kept on its chain');
$holder->do('SELECT pg_advisory_unlock_all()');
$writer->do('SAVEPOINT s');
$writer->do(q{SELECT recovery.payment_create($1, 'GONE-2', 100, 'EUR', current_date)}, undef, $kept);
$writer->do('ROLLBACK TO SAVEPOINT s');
$writer->do(q{SELECT recovery.payment_create($1, 'KEPT', 100, 'EUR', current_date)}, undef, $kept);
$writer->do('COMMIT');
is_deeply($setup->selectcol_arrayref(q{SELECT DISTINCT chain FROM recovery.audit_log
                                       WHERE id > $1 AND request_id = $2}, undef, $before, "$tag-kept"),
          [$free], 'a savepoint rolled back leaves the transaction on the chain it took');

my ($ok, $checked, $problem) = $setup->selectrow_array(
    'SELECT ok, rows_checked, problem FROM recovery.audit_verify()');
ok($ok, "audit_verify() passes after the concurrent writes ($checked rows)")
    or diag $problem;

done_testing();
