#!/usr/bin/perl
# Backups and point-in-time restore with pgBackRest (scripts/backup.sh), on
# a stack of this test's own whose WAL is archived to its own encrypted
# repository: a full backup; writes through nginx; a restore to a moment
# between two sets of writes; an erased customer erased again by a restore
# to before the erasure; a restore to the latest WAL after kill -9 of the
# postmaster, with every acknowledged write there; a damaged backup found by
# pgbackrest verify, and a restore that refuses it and touches nothing; a
# restore whose audit trail does not verify, undone.  After each restore the
# chain verifies and the same nginx answers again.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Recovery::HTTP qw(http jwt claims);
use Recovery::Stack;
use Recovery::Test qw(wait_for);

my $root = "$FindBin::Bin/../..";
my $stack = Recovery::Stack->new(ARCHIVE => 'on', WORKERS => 1);
my $dir = $stack->pg_dir;
my $base = $stack->base;
my $tag = "bk$$";

my $dbh = $stack->dbh;
$dbh->do('SET ROLE recovery_admin');
my ($admin_id) = $dbh->selectrow_array(
    q{SELECT recovery.user_create(?, 'Backup Admin', 'recovery_admin', 'backup-test-password')},
    undef, "admin\@$tag.test");
$dbh->disconnect;
my $admin = jwt(claims(role => 'recovery_admin', sub => "$admin_id", exp => time + 3600),
                dir => $stack->nginx_dir);

# scripts/backup.sh ARGS: its exit status and everything it printed
sub backup_sh {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec "$root/scripts/backup.sh", @_;
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    return ($? >> 8, $out);
}

# a new connection each time: restores restart the server
sub value {
    my ($sql, @bind) = @_;
    my $db = $stack->dbh;
    my ($v) = $db->selectrow_array($sql, undef, @bind);
    $db->disconnect;
    return $v;
}

sub create_customer {
    my ($ref) = @_;
    my $res = http(POST => '/api/v1/customers', token => $admin, base => $base,
                   headers => { 'Idempotency-Key' => "$tag-$ref" },
                   json => { external_ref => "$tag-$ref", name => "Customer $ref",
                             email => "$ref\@$tag.test" });
    return $res->{status} == 201 ? $res->{json}{id} : undef;
}

sub present {
    my (@refs) = @_;
    my $found = value(q{SELECT string_agg(external_ref, ',' ORDER BY external_ref)
                          FROM recovery.customers WHERE external_ref = ANY (?)},
                      [map { "$tag-$_" } @refs]);
    return [map { s/^\Q$tag\E-//r } split /,/, $found // ''];
}

# the erasure ledger as it is now ('' before the first erasure)
sub ledger {
    open my $fh, '<', "$dir/erasure-ledger" or return '';
    local $/;
    return <$fh>;
}

sub chain_verifies {
    my $db = $stack->dbh;
    my $v = $db->selectrow_hashref('SELECT * FROM recovery.audit_verify()');
    $db->disconnect;
    diag("audit_verify: " . join(' ', map { "$_=" . ($v->{$_} // 'null') } sort keys %$v)) unless $v->{ok};
    return $v->{ok};
}

sub nginx_answers_again {
    my ($id) = @_;
    return wait_for('nginx to read from the restored cluster', sub {
        http(GET => "/api/v1/customers/$id", token => $admin, base => $base)->{status} == 200 }, 60);
}

# --- a full backup --------------------------------------------------------
my ($rc, $out) = backup_sh('backup', $dir, 'full');
is($rc, 0, 'a full backup') or diag($out);
like($out, qr/done in \d+ s: \S+ \(full\)/, 'which says what it took');
is(value(q{SELECT type FROM recovery.backups}), 'full', 'recovery.backups lists it');
my $health = $stack->dbh->selectrow_hashref('SELECT * FROM recovery.backup_health');
is($health->{archive_mode}, 'on', 'WAL is archived');
cmp_ok($health->{newest_backup_age_seconds}, '<', 600, 'the newest backup is minutes old, not more');
ok(!$health->{archiving_failing}, 'and archiving does not fail');
my $jobs = http(GET => '/api/v1/jobs', token => $admin, base => $base);
is($jobs->{json}{backups}[0]{type}, 'full', 'GET /api/v1/jobs shows the backup beside the jobs');
is($jobs->{json}{backup_health}{backups}, 1, 'with the backups\' health');

# pgBackRest's times have seconds: the writes come after the backup's second
sleep 1.1;

# --- a restore to a moment --------------------------------------------------
my @before = map { create_customer("A$_") } 1 .. 3;
is(scalar(grep { defined } @before), 3, 'three writes through nginx');
my $moment = value('SELECT now()::text');
sleep 0.2;
my @after = map { create_customer("B$_") } 1 .. 3;
is(scalar(grep { defined } @after), 3, 'three more after the moment');

($rc, $out) = backup_sh('restore', $dir, 'time', $moment);
is($rc, 0, "a restore to $moment") or diag($out);
like($out, qr/the audit trail verifies/, 'which says the audit trail verifies');
ok(nginx_answers_again($before[0]), 'the same nginx answers again');
is_deeply(present(map { "A$_" } 1 .. 3), [qw(A1 A2 A3)], 'the writes before the moment are there');
is_deeply(present(map { "B$_" } 1 .. 3), [], 'the writes after it are not');
ok(chain_verifies(), 'the chain verifies');
ok(value('SELECT recovery.restore_held()'),
   'reminders and delivery hold: the restored outbox forgot what was sent since');
value('SELECT recovery.restore_release()');

# --- an erased customer never comes back ---------------------------------
my $erased = create_customer('E1');
ok($erased, 'a customer to erase');

# erasures rolled back leave no line, in a subtransaction or not
my $kept = create_customer('E2');
my $db = $stack->dbh;
$db->begin_work;
$db->do('SAVEPOINT s');
$db->do('SELECT recovery.customer_erase(?)', undef, $kept);
$db->do('ROLLBACK TO s');
$db->commit;
$db->begin_work;
$db->do('SELECT recovery.customer_erase(?)', undef, $kept);
$db->rollback;
$db->disconnect;
my $ledger = ledger();
unlike($ledger, qr/^$kept\t/m, 'an erasure rolled back is not in the ledger');

# an erasure that cannot write the ledger does not happen
open my $torn, '>>', "$dir/erasure-ledger" or die "$dir/erasure-ledger: $!";
chmod 0400, "$dir/erasure-ledger";
my $res = http(POST => "/api/v1/customers/$erased/erase", token => $admin, base => $base);
# (the error comes at COMMIT: the gateway answers it as any SQL error)
is($res->{status}, 500, 'an erasure whose ledger is not writable fails: 500');
is($res->{json}{sqlstate}, '58030', 'with the SQLSTATE of an I/O error') or diag($res->{content});
ok(wait_for('the reason in the server log',
            sub { $stack->server_log =~ /could not open the erasure ledger/ }), 'whose log says why');
is(value('SELECT erased_at FROM recovery.customers WHERE id = ?', $erased), undef, 'and erases nothing');
# a line cut short by a write that failed (a full disk, say)
print $torn "$kept\t2026-12-0";
close $torn;
system('chown', 'postgres:postgres', "$dir/erasure-ledger") == 0 or die "chown: $?";
chmod 0600, "$dir/erasure-ledger";

my $before_erasure = value('SELECT now()::text');
sleep 0.2;
is(http(POST => "/api/v1/customers/$erased/erase", token => $admin, base => $base)->{status}, 200,
   'erased through nginx');
$ledger = ledger();
like($ledger, qr/^$erased\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m, 'the erasure ledger names the customer, on a line of its own after a torn one');
unlike($ledger, qr/E1|\@/, 'and nothing personal');

($rc, $out) = backup_sh('restore', $dir, 'time', $before_erasure);
is($rc, 0, 'a restore to before the erasure') or diag($out);
like($out, qr/"erased": 1/, 'which erases one customer again');
like($out, qr/"malformed_lines": 1/, 'and skips the torn line, which names nobody');
ok(nginx_answers_again($erased), 'the same nginx answers again');
my $customer = http(GET => "/api/v1/customers/$erased", token => $admin, base => $base)->{json};
like($customer->{name}, qr/^erased customer/, 'the erased customer is erased again');
ok(!defined $customer->{email}, 'with no email');
is(value(q{SELECT count(*) FROM recovery.audit_log WHERE customer_id = ? AND new_row::text LIKE ?},
         $erased, "%E1\@$tag%"), 0, 'and no audit row holds their email');
is(value('SELECT name FROM recovery.customers_decrypted WHERE id = ?', $kept), 'Customer E2',
   'a customer whose erasure was rolled back is kept');
ok(chain_verifies(), 'the chain verifies');
cmp_ok(create_customer('N1'), '>', $erased, 'a new customer never gets an erased customer\'s id');
value('SELECT recovery.restore_release()');

# --- latest, after kill -9 ------------------------------------------------------
my %acknowledged;
for my $n (1 .. 10) {
    my $id = create_customer("K$n");
    $acknowledged{"K$n"} = $id if $id;
}
is(scalar(keys %acknowledged), 10, 'ten writes acknowledged');
# the segment that holds them is not archived yet: the restore must read it
# from the data directory it replaces
ok(value(q{SELECT pg_walfile_name(pg_current_wal_lsn()) > coalesce(last_archived_wal, '')
             FROM pg_stat_archiver}), 'the newest writes are in WAL not yet archived');
my $postmaster = do { open my $fh, '<', "$dir/data/postmaster.pid" or die $!; scalar <$fh> };
chomp $postmaster;
kill 'KILL', $postmaster;
ok(wait_for('the killed postmaster to be gone', sub { !kill 0, $postmaster }), 'kill -9 of the postmaster');

($rc, $out) = backup_sh('restore', $dir, 'latest');
is($rc, 0, 'a restore to the latest WAL') or diag($out);
ok(nginx_answers_again($acknowledged{K10}), 'the same nginx answers again');
is_deeply(present(sort keys %acknowledged), [sort keys %acknowledged],
          'every acknowledged write is there');
is(value('SELECT recovery.restore_held()'), 0, 'nothing holds: nothing was forgotten');
ok(chain_verifies(), 'the chain verifies');

# --- a restore whose audit trail does not verify is not kept ------------------
# (a superuser changes an audit row behind the trigger's back)
$db = $stack->dbh;
$db->do(q{SET session_replication_role = replica});
$db->do(q{UPDATE recovery.audit_log SET new_row = '{"forged": true}'
           WHERE id = (SELECT max(id) FROM recovery.audit_log WHERE table_name = 'customers')});
$db->disconnect;
($rc, $out) = backup_sh('restore', $dir, 'latest');
isnt($rc, 0, 'a restore of a forged trail fails');
like($out, qr/the audit trail of the restored cluster does not verify/, 'and says why') or diag($out);
like($out, qr/The cluster is back as it was before the restore/, 'and that the cluster is back as it was');
ok(-f "$dir/data.failed-restore/PG_VERSION", 'what it restored is kept aside to look at');
ok(nginx_answers_again($acknowledged{K1}), 'nginx answers from the cluster put back');

# --- a damaged backup -------------------------------------------------------------
($rc, $out) = backup_sh('backup', $dir, 'full');
is($rc, 0, 'another full backup') or diag($out);
my ($label) = $out =~ /done in \d+ s: (\S+) \(full\)/;
my ($victim) = grep { -s $_ > 8192 } glob("$dir/backup/backup/recovery/$label/pg_data/base/*/*");
ok($victim, "a file of backup $label to damage");
open my $fh, '+<', $victim or die "$victim: $!";
seek $fh, 100, 0;
print $fh 'DAMAGED!';
close $fh;
($rc, $out) = backup_sh('verify', $dir);
isnt($rc, 0, 'pgbackrest verify finds the damage');
like($out, qr/invalid checksum/, 'and names it') or diag($out);
($rc, $out) = backup_sh('restore', $dir, 'latest');
isnt($rc, 0, 'a restore refuses the damaged repository');
like($out, qr/restore refused: pgbackrest verify found damaged or missing files/, 'with a clear message')
    or diag($out);
is(http(GET => "/api/v1/customers/$acknowledged{K1}", token => $admin, base => $base)->{status}, 200,
   'and the cluster was not touched: nginx still answers');
is_deeply(present(sort keys %acknowledged), [sort keys %acknowledged], 'with every write');

done_testing;
