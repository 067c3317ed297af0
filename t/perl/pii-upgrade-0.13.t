# Upgrading a database of 0.12 to 0.13, which seals the rest of the
# personal data: case event reasons and details, hold reasons, what emails
# said (extractions.result) and statement lines' payer and IBAN.  Every
# value reads the same through the new views at once; encrypt_existing()
# then moves the personal details apart, seals everything and the audit
# trail's copies, and the chain verifies; an erased customer's email text,
# kept by 0.12, is gone.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use DBI;
use JSON::PP qw(decode_json);
use Recovery::Test qw(connect_db new_case);

my $admin = connect_db();
my $name = "pii_upgrade13_$$";
$admin->do("CREATE DATABASE $name");
my $db = DBI->connect("dbi:Pg:dbname=$name", 'postgres', undef,
                      { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_enable_utf8 => 1 });
$db->do('SET client_min_messages = warning');
$db->do(q{CREATE EXTENSION pg_recovery VERSION '0.12'});
$db->do(q{SELECT recovery.set_request_context(NULL, 'pii-upgrade-0.13')});

my $tag = "Plain$$";
my ($kept, $erased) = map { new_case($db) } 1 .. 2;
my %customer = map { $_ => scalar $db->selectrow_array('SELECT customer_id FROM recovery.recovery_cases WHERE id = $1',
                                                        undef, $_) } ($kept, $erased);
for my $case ($kept, $erased) {
    my $version = $db->selectrow_array('SELECT version FROM recovery.recovery_cases WHERE id = $1', undef, $case);
    $db->do(q{SELECT recovery.case_transition($1, 'dispute', $2, $3)}, undef, $case, $version,
            qq{{"reason": "reason of $tag $case", "heard": "detail of $tag $case"}});
    $db->do(q{INSERT INTO recovery.dunning_holds (customer_id, case_id, reason, ends_at, created_by)
              VALUES ($1, $2, $3, now() + interval '1 day', 'test')}, undef, $customer{$case}, $case, "hold of $tag $case");
    $db->do(q{SELECT recovery.extract_payments('email', convert_to($1, 'UTF8'), NULL, $2)}, undef,
            "From: someone\@example.test\r\nSubject: subject of $tag $case\r\n\r\nNothing paid.\r\n", $case);
}
my $iban = 'DE89370400440532013000';
$db->do(q{SELECT recovery.extract_payments('statement', convert_to($1, 'UTF8'))}, undef,
        "date,amount,currency,reference,payer,iban\n2026-11-02,2.00,EUR,unknown $tag,payer of $tag,$iban\n");
$db->do(q{SET ROLE recovery_admin});
$db->do(q{SELECT recovery.customer_erase($1)}, undef, $customer{$erased});
$db->do(q{RESET ROLE});
my $events_before = $db->selectall_arrayref(q{SELECT id, reason, details FROM recovery.case_events
                                               WHERE reason IS NOT NULL ORDER BY id});
my $lines_before = $db->selectall_arrayref(q{SELECT id, payer, iban FROM recovery.extraction_lines ORDER BY id});
ok((grep { $_->[1] eq "reason of $tag $kept" } @$events_before), '0.12 keeps an event\'s reason in plain text');

$db->do(q{ALTER EXTENSION pg_recovery UPDATE TO '0.13'});
is($db->selectrow_array(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_recovery'}), '0.13',
   'the database is updated to 0.13');

my $read = sub {
    return [
        $db->selectall_arrayref(q{SELECT id, reason, details::text FROM recovery.case_events_decrypted
                                   WHERE reason IS NOT NULL ORDER BY id}),
        $db->selectall_arrayref(q{SELECT id, reason FROM recovery.dunning_holds_decrypted ORDER BY id}),
        $db->selectall_arrayref(q{SELECT id, result::text FROM recovery.extractions_decrypted ORDER BY id}),
        $db->selectall_arrayref(q{SELECT id, payer, iban FROM recovery.extraction_lines_decrypted ORDER BY id}),
    ];
};
my $before = $read->();
is_deeply([map { [$_->[0], $_->[1], decode_json($_->[2])] } @{ $before->[0] }],
          [map { [$_->[0], $_->[1], decode_json($_->[2])] } @$events_before],
          'the events read through case_events_decrypted as they were, before any sealing');
is_deeply($before->[3], $lines_before, 'and the statement lines through extraction_lines_decrypted');
like($before->[2][0][1], qr/subject of \Q$tag $kept\E/, 'an email\'s result reads as it was');
is_deeply([grep { defined $_->[1] } @{ $before->[2] }[1]], [],
          'the erased customer\'s email result, which 0.12 kept, is gone');

$db->do(q{CALL recovery.encrypt_existing(1)});
is_deeply($db->selectall_arrayref(q{SELECT table_name FROM recovery.encryption_progress WHERE plain_rows > 0}), [],
          'encrypt_existing() leaves no plain row, in batches of one');
is_deeply($read->(), $before, 'every value reads back the same');
is($db->selectrow_array(q{SELECT count(*) FROM recovery.case_events
                           WHERE customer_id = $1 AND reason IS NOT NULL
                             AND NOT (recovery.pii_is_sealed(reason) AND recovery.pii_is_sealed(personal_details))},
                        undef, $customer{$kept}), 0, 'the events\' reasons and personal details are sealed');
is($db->selectrow_array(q{SELECT details::text FROM recovery.case_events WHERE case_id = $1 AND event = 'dispute'},
                        undef, $kept), '{}', 'and the details kept in clear hold nothing personal');
is($db->selectrow_array(q{SELECT count(*) FROM recovery.extraction_lines
                           WHERE recovery.pii_is_sealed(payer) AND recovery.pii_is_sealed(iban)
                             AND iban_index = recovery.pii_blind_index('iban', $1)}, undef, lc $iban),
   1, 'the statement line is sealed, and found by its IBAN\'s blind index');
is($db->selectrow_array(q{SELECT count(*) FROM recovery.audit_log
                           WHERE table_name IN ('case_events', 'dunning_holds') AND erased_at IS NULL
                             AND (old_row::text LIKE $1 OR new_row::text LIKE $1)}, undef, "%$tag%"),
   0, 'no audit row holds a reason or detail in plain text');
is($db->selectrow_array(q{SELECT recovery.audit_row_opened(a.new_row, a.table_name, a.row_key, a.customer_id)
                                 ->> 'personal_details'
                            FROM recovery.audit_log a
                           WHERE a.table_name = 'case_events' AND a.customer_id = $1
                             AND a.new_row ->> 'event' = 'dispute'}, undef, $customer{$kept}),
   qq{{"heard": "detail of $tag $kept", "reason": "reason of $tag $kept"}},
   'the audit trail opens an event\'s personal details, moved apart as the table\'s');
ok($db->selectrow_array(q{SELECT ok FROM recovery.audit_verify()}), 'the audit chain verifies');

$db->disconnect;
$admin->do("DROP DATABASE $name");
done_testing();
