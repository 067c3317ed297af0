package Recovery::Test;
# Shared helpers of the Perl tests: connections to the test cluster that
# scripts/test.sh started (PGHOST, PGPORT, PGDATABASE), fixtures, and
# waiting for a condition with a deadline.
use strict;
use warnings;
use DBI;
use Time::HiRes ();
use Test::More ();
use Exporter 'import';

our @EXPORT_OK = qw(connect_db new_case case_version wait_for);

sub connect_db {
    my (%opt) = @_;
    my $dsn = 'dbi:Pg:';
    $dsn .= "host=$opt{host};" if $opt{host};
    my $dbh = DBI->connect($dsn, $opt{user} // 'postgres', $opt{password},
        { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_enable_utf8 => 1,
          AutoInactiveDestroy => 1 })
        or die "cannot connect: $DBI::errstr";
    $dbh->do('SET client_min_messages = warning');
    return $dbh;
}

# A committed case with one failed payment of a fresh customer.
my $serial = 0;
sub new_case {
    my ($dbh, $amount) = @_;
    $amount //= 10_000;
    my $ref = sprintf 'PERL-%d-%d-%d', $$, time, ++$serial;
    my ($customer) = $dbh->selectrow_array(
        'SELECT (recovery.customer_create($1, $2)).id', undef, $ref, "Perl $ref");
    my ($payment) = $dbh->selectrow_array(
        q{SELECT (recovery.payment_create($1, 'INV-1', $2, 'EUR', current_date - 30)).id},
        undef, $customer, $amount);
    my ($case) = $dbh->selectrow_array(
        'SELECT (recovery.payment_fail($1, $2)).id', undef, $payment, 'insufficient funds');
    return $case;
}

# wait_for('what it waits for', sub { condition }, seconds): polls the
# condition every 50 ms and returns its first true value; at the deadline
# (20 s by default) says what it waited for and returns undef.  A test
# asserts on what this returns, never on a state read once after an action.
sub wait_for {
    my ($what, $condition, $seconds) = @_;
    my $deadline = Time::HiRes::time() + ($seconds // 20);
    while (1) {
        my $value = $condition->();
        return $value if $value;
        last if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.05);
    }
    Test::More::diag("waited " . ($seconds // 20) . " s for $what, in vain");
    return undef;
}

sub case_version {
    my ($dbh, $case) = @_;
    my ($v) = $dbh->selectrow_array(
        'SELECT version FROM recovery.recovery_cases WHERE id = $1', undef, $case);
    return $v;
}

1;
