#!/usr/bin/perl
# A statement of 100 MiB through the API, on a stack of its own: the route
# allows 100 MiB and has its own timeout (timeout=120s), longer than
# recovery_statement_timeout (5 s), and the module's deadline counts from
# when the upload has been sent, not from its start.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time);
use Recovery::HTTP qw(http jwt claims);
use Recovery::Stack;

my $stack = Recovery::Stack->new(WORKERS => 1);
my $dbh = $stack->dbh;
$dbh->do('SET ROLE recovery_admin');
my ($user) = $dbh->selectrow_array(
    q{SELECT recovery.user_create('manager@import.test', 'Import Manager', 'recovery_manager', 'import-test-password')});
$dbh->do('RESET ROLE');
my $manager = jwt(claims(role => 'recovery_manager', sub => "$user"), dir => $stack->nginx_dir);

my $statement = "Datum;Auftraggeber;Verwendungszweck;Betrag;Waehrung\n";
my $lines = 0;
while (length($statement) < 100 * 1024 * 1024 - 100) {
    $lines++;
    $statement .= sprintf "%02d.11.2026;\"Kunde %d\";\"Rechnung INV-BIG-%08d\";%d,%02d;EUR\n",
                          1 + $lines % 28, $lines % 5000, $lines, 1 + $lines % 900, $lines % 100;
}
cmp_ok(length($statement), '>', 99 * 1024 * 1024, sprintf('a statement of %.1f MiB, %d lines',
                                                        length($statement) / 1024 / 1024, $lines));

my $t0 = time;
my $res = http(POST => '/api/v1/extractions/statements', token => $manager, base => $stack->base,
               body => $statement, headers => { 'Content-Type' => 'text/csv' }, timeout => 180);
my $took = time - $t0;
is($res->{status}, 200, sprintf('it is imported through the API (%.1f s)', $took))
    or diag $res->{content};
is($res->{json}{lines}, $lines, 'every line is stored');
is($dbh->selectrow_array(q{SELECT count(*) FROM recovery.extraction_lines WHERE extraction_id = $1}, undef,
                         $res->{json}{id}), $lines, 'as the database counts them');
unlike($stack->error_log, qr/did not answer in time|connection was lost/, 'the module did not give up on it');

done_testing();
