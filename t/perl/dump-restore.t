# A DBA's backup with PostgreSQL's own tools: pg_dump -Fc of the populated
# database, pg_restore into an empty database of a fresh cluster, as the
# README's operations section says.  Every row of every table comes back,
# the restore writes no second audit trail and the chains verify with the
# same rows, reminders and delivery hold until an administrator releases
# the copy, and the restored system serves the API.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use DBI;
use Recovery::HTTP qw(http login);
use Recovery::Stack;
use Recovery::Test qw(connect_db wait_for);

my $root = "$FindBin::Bin/../..";
my $bin = `pg_config --bindir`;
chomp $bin;

my $source = connect_db();

# Something of every kind the suite has written is there already; and a
# currency of the DBA's own, which the shipped ones must not hide.
$source->do(q{INSERT INTO recovery.currencies (code, minor_units, name)
              VALUES ('XTS', 2, 'Test currency') ON CONFLICT DO NOTHING});

# every table, and what a row of it says (the copy must say the same)
my $tables = $source->selectcol_arrayref(q{
    SELECT c.relname FROM pg_class c
     WHERE c.relnamespace = 'recovery'::regnamespace AND c.relkind = 'r' ORDER BY 1});
sub contents {
    my ($db, $table) = @_;
    return $db->selectrow_arrayref(
        "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))
           FROM recovery.$table t");
}
my %before = map { ($_ => contents($source, $_)) } @$tables;
my $verified = $source->selectrow_hashref('SELECT * FROM recovery.audit_verify()');
ok($verified->{ok} && $verified->{rows_checked} > 1000,
   "the source's audit trail verifies ($verified->{rows_checked} rows, $verified->{chains} chains)");

# the dump, as a DBA takes it
my $dump = "$root/tmp/dump-restore-$$.dump";
my $dumped = system("$bin/pg_dump", '-Fc', '-h', $ENV{PGHOST}, '-p', $ENV{PGPORT}, '-U', 'postgres',
                    '-d', 'recovery', '-f', $dump);
is($dumped, 0, 'pg_dump -Fc exits 0');
cmp_ok(-s $dump, '>', 100_000, sprintf('and the dump holds the data (%d kB)', (-s $dump) / 1024));

# a new server: pg_cron and pg_recovery preloaded, an empty database, and
# the source's key-encryption key (a dump holds the data keys wrapped by it)
my $stack = Recovery::Stack->new(WORKERS => 1);
(my $source_dir = $ENV{PGHOST}) =~ s{/sock/?$}{};
system('cp', '-p', "$source_dir/kek", "$stack->{pg_dir}/kek") == 0 or die "cannot copy the KEK: $?";
my $server = DBI->connect("dbi:Pg:dbname=postgres;host=$stack->{pg_dir}/sock;port=$stack->{pg_port}",
                          'postgres', undef, { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
$server->do('DROP DATABASE recovery WITH (FORCE)');
$server->do('CREATE DATABASE recovery TEMPLATE template0');

my $log = "$root/tmp/dump-restore-$$.log";
my $restored = system("$bin/pg_restore -h $stack->{pg_dir}/sock -p $stack->{pg_port} -U postgres"
                      . " -d recovery $dump 2> $log");
is($restored, 0, 'pg_restore into the empty database exits 0')
    or diag(`cat $log`);
unlink $dump, $log;

my $copy = $stack->dbh;
is($copy->selectrow_array(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_recovery'}),
   $source->selectrow_array(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_recovery'}),
   'the extension is restored at the version dumped');

for my $table (@$tables) {
    my $after = contents($copy, $table);
    if ($table eq 'delivery_circuits') {
        # each database's own delivery state: a copy starts with them closed
        is($after->[0], $before{$table}[0], "$table: one per channel, as installed");
        next;
    }
    next if $table eq 'restore_holds';
    if ($table eq 'live_events') {
        # for the screens open now, and placed by the source's transaction
        # ids: not dumped, and a restore records none of its own
        is($after->[0], 0, "$table: none (a stream that resumes from before gets a reset)");
        next;
    }
    is_deeply($after, $before{$table}, "$table: the same $before{$table}[0] rows");
}

my $again = $copy->selectrow_hashref('SELECT * FROM recovery.audit_verify()');
ok($again->{ok}, 'the restored audit trail verifies');
is($again->{rows_checked}, $verified->{rows_checked}, 'with the same rows: the restore wrote none of its own');
is($again->{chains}, $verified->{chains}, 'on the same chains');

# the copy holds what its original may have sent already
ok($copy->selectrow_array('SELECT recovery.restore_held()'), 'the copy holds after the restore');
like($copy->selectrow_array(q{SELECT recovery.delivery_problem() ->> 'message'}),
     qr/restored from a dump/, 'and says why nothing is delivered');
my ($queued) = $copy->selectrow_array(q{SELECT count(*) FROM recovery.notifications});
$copy->do('CALL recovery.run_reminders()');
is($copy->selectrow_array(q{SELECT count(*) FROM recovery.notifications}), $queued,
   'run_reminders queues nothing while it holds');
is($copy->selectrow_array(q{SELECT count(*) FROM recovery.delivery_next(ARRAY['email', 'sms', 'letter', 'webhook'])}),
   0, 'and delivery claims nothing');

# the restored system serves the API: its demo users sign in, a case reads
my $base = $stack->base;
ok(wait_for('the gateway to reach the restored database',
            sub { http(GET => '/readyz', base => $base)->{status} == 200 }),
   'the gateway reconnects to the restored database');
my $agent = login('agent@demo.example', 'agent-demo-pass', base => $base);
my ($case) = $copy->selectrow_array('SELECT min(id) FROM recovery.recovery_cases');
my $res = http(GET => "/api/v1/recovery-cases/$case", token => $agent, base => $base);
is($res->{status}, 200, 'a restored user signs in and reads a restored case');
is($res->{json}{id}, $case, 'the case asked for');

# releasing it is an administrator's decision
$copy->do('SET ROLE recovery_agent');
ok(!eval { $copy->do('SELECT recovery.restore_release()'); 1 }, 'an agent may not release the copy');
$copy->do('RESET ROLE');
my $released = $copy->selectrow_array('SELECT recovery.restore_release()');
like($released, qr/"released": true/, 'an administrator releases it');
ok(!$copy->selectrow_array('SELECT recovery.restore_held()'), 'and it holds no more');
ok(!defined $copy->selectrow_array('SELECT recovery.delivery_problem()'), 'nothing stops delivery now');
cmp_ok($copy->selectrow_array(q{SELECT count(*) FROM recovery.audit_log WHERE table_name = 'restore_holds'}),
       '>=', 1, 'the release is in the audit trail');

# only pg_restore run by a superuser writes unaudited: a login role that
# calls itself pg_restore is audited as any other
my $auth = connect_db(host => '127.0.0.1', user => 'recovery_authenticator', password => 'authenticator');
$auth->do(q{SET application_name = 'pg_restore'});
$auth->do('SET ROLE recovery_agent');
my ($customer) = $auth->selectrow_array(
    q{SELECT id FROM recovery.customer_create('RESTORE-' || pg_backend_pid(), 'Not A Restore')});
is($source->selectrow_array(q{SELECT count(*) FROM recovery.audit_log
                                WHERE table_name = 'customers' AND row_key = $1::text}, undef, $customer),
   1, 'a non-superuser session named pg_restore is audited');
$auth->disconnect;

# business rows with no trail at all are not "ok"
my $scratch = "no_trail_$$";
$source->do("CREATE DATABASE $scratch");
my $empty = DBI->connect("dbi:Pg:dbname=$scratch", 'postgres', undef,
                         { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
$empty->do('SET client_min_messages = warning');
$empty->do('CREATE EXTENSION pg_recovery');
my $fresh = $empty->selectrow_hashref('SELECT * FROM recovery.audit_verify()');
ok($fresh->{ok} && $fresh->{rows_checked} == 0, 'an empty database verifies, with 0 rows checked');
$empty->do('SET session_replication_role = replica');    # triggers off, as a careless copy
$empty->do(q{INSERT INTO recovery.customers (external_ref, name) VALUES ('C-1', 'Someone')});
my $missing = $empty->selectrow_hashref('SELECT * FROM recovery.audit_verify()');
ok(!$missing->{ok}, 'business rows without any audit row are not ok');
like($missing->{problem}, qr/audit trail is empty/, 'and it says so');
$empty->disconnect;
$source->do("DROP DATABASE $scratch");

$source->do(q{DELETE FROM recovery.currencies WHERE code = 'XTS'});
done_testing();
