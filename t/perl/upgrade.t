# Upgrading extension 0.4 with lines in it to 0.5: each extraction learns
# its id and date range, and a statement imported under 0.4 is recognised
# line by line by the bulk import of 0.5.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use DBI;
use JSON::PP;
use Recovery::Test qw(connect_db);

my $admin = connect_db();
my $name = "upgrade_$$";
$admin->do("CREATE DATABASE $name");
my $db = DBI->connect("dbi:Pg:dbname=$name", 'postgres', undef,
                      { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_enable_utf8 => 1 });
$db->do('SET client_min_messages = warning');

my $statement = "date,amount,currency,reference,payer\n"
              . "2026-11-20,12.00,EUR,INV-unknown-1,Somebody\n"
              . "2026-11-21,13.00,EUR,INV-unknown-2,Somebody\n"
              . "2026-11-21,13.00,EUR,INV-unknown-2,Somebody\n";
my $extract = sub {
    my ($csv) = @_;
    return decode_json($db->selectrow_array(q{SELECT recovery.extract_payments('statement', convert_to($1, 'UTF8'))},
                                            undef, $csv));
};

$db->do(q{CREATE EXTENSION pg_recovery VERSION '0.4'});
is($extract->($statement)->{lines}, 3, 'extension 0.4 imports a statement of three lines');
$db->do(q{ALTER EXTENSION pg_recovery UPDATE TO '0.5'});
is($db->selectrow_array(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_recovery'}), '0.5', 'it is updated to 0.5');
is_deeply($db->selectrow_arrayref(q{SELECT last_line_id - first_line_id + 1, booked_from::text, booked_to::text, has_undated
                                      FROM recovery.extractions}),
          [3, '2026-11-20', '2026-11-21', 0], 'the extraction has its id and date ranges');

my $r = $extract->($statement . "2026-11-22,14.00,EUR,INV-unknown-3,Somebody\n");
is($r->{duplicates}, 3, 'the lines imported by 0.4 are recognised, the repeated one too');
is($r->{lines}, 1, 'and only the new line is added');
is($db->selectrow_array(q{SELECT count(*) FROM recovery.extraction_lines}), 4, 'four lines in all');
is(decode_json($db->selectrow_array(q{SELECT recovery.api_reconciliation_queue('unmatched', NULL, 10, $1)}, undef,
                                    $r->{id}))->{items}[0]{reference}, 'INV-unknown-3',
   'its unmatched line is listed with its extraction');

$db->disconnect;
$admin->do("DROP DATABASE $name");
done_testing();
