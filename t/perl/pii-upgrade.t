# Upgrading a database of 0.11, whose personal data is plain text, to 0.12:
# every value reads the same at once; recovery.encrypt_existing() then
# seals the customers, the notes and the audit trail's rows of them in
# batches, shows its progress, can be stopped and run again, and leaves the
# chain verifying; an erased customer stays erased and takes nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use DBI;
use Recovery::Test qw(connect_db new_case);

my $admin = connect_db();
my $name = "pii_upgrade_$$";
$admin->do("CREATE DATABASE $name");
my $db = DBI->connect("dbi:Pg:dbname=$name", 'postgres', undef,
                      { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_enable_utf8 => 1 });
$db->do('SET client_min_messages = warning');
$db->do(q{CREATE EXTENSION pg_recovery VERSION '0.11'});

my $tag = "Plainname$$";
my @cases = map { new_case($db) } 1 .. 5;
my @customers = map { $db->selectrow_array('SELECT customer_id FROM recovery.recovery_cases WHERE id = $1', undef, $_) }
                @cases;
for my $i (0 .. $#customers) {
    $db->do(q{SELECT recovery.customer_update($1, 1, $2, $3, '+4915112345' || $4)}, undef,
            $customers[$i], "$tag $i", "p$i.$tag\@example.test", sprintf('%03d', $i));
    $db->do(q{SELECT recovery.case_note_add($1, $2)}, undef, $cases[$i], "Note of $tag $i");
}
$db->do(q{INSERT INTO recovery.documents (case_id, customer_id, filename, content_type, size, sha256, content, uploaded_by)
           SELECT c.id, c.customer_id, 'letter of ' || $2, 'text/plain', 20, sha256('\x00'), convert_to('Letter text of ' || $2, 'UTF8'), 'test'
             FROM recovery.recovery_cases c WHERE c.id = $1}, undef, $cases[0], $tag);
$db->do(q{SELECT recovery.set_request_context(NULL, 'pii-upgrade')});
my $erased = $customers[4];
$db->do(q{SET ROLE recovery_admin});
$db->do(q{SELECT recovery.customer_erase($1)}, undef, $erased);
$db->do(q{RESET ROLE});

$db->do(q{ALTER EXTENSION pg_recovery UPDATE TO '0.12'});
is($db->selectrow_array(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_recovery'}), '0.12',
   'the database is updated to 0.12');

my $read = sub {
    return $db->selectall_arrayref(q{SELECT c.id, c.name, c.email, c.phone, n.body
                                       FROM recovery.customers_decrypted c
                                       JOIN recovery.case_notes_decrypted n ON n.customer_id = c.id
                                      WHERE c.id = ANY ($1) ORDER BY c.id}, undef, \@customers);
};
my $before = $read->();
is($before->[0][1], "$tag 0", 'a name written under 0.11 reads as it was, before any sealing');
is($before->[4][1], "erased customer $erased", 'the erased customer reads erased');
is($db->selectrow_array(q{SELECT plain_rows FROM recovery.encryption_progress WHERE table_name = 'customers'}),
   $db->selectrow_array(q{SELECT count(*) FROM recovery.customers WHERE erased_at IS NULL}),
   'encryption_progress counts every unerased customer as plain');
cmp_ok($db->selectrow_array(q{SELECT plain_rows FROM recovery.encryption_progress WHERE table_name = 'audit_log'}),
       '>=', 8, 'and the audit rows that hold their names');
is_deeply($db->selectall_arrayref(q{SELECT kek_id, destroyed_at IS NOT NULL FROM recovery.customer_keys}),
          [[undef, 1]], 'the customer erased under 0.11 has a destroyed key, the others none yet');

# a read-only lookup before any blind index exists finds nobody, and no error
$db->begin_work;
$db->do('SET TRANSACTION READ ONLY');
is($db->selectrow_array(q{SELECT recovery.api_customers_list(email => $1) -> 'items'}, undef, "p2.$tag\@example.test"),
   '[]', 'a read-only lookup by email before encrypt_existing() finds nobody, and makes no key');
$db->rollback;

# a customer locked by a writer is left for the next run
my $writer = DBI->connect("dbi:Pg:dbname=$name", 'postgres', undef,
                          { AutoCommit => 0, RaiseError => 1, PrintError => 0 });
$writer->do(q{SELECT 1 FROM recovery.customers WHERE id = $1 FOR UPDATE}, undef, $customers[3]);
$db->do(q{CALL recovery.encrypt_existing(2)});
is($db->selectrow_array(q{SELECT plain_rows FROM recovery.encryption_progress WHERE table_name = 'customers'}),
   1, 'encrypt_existing() in batches of 2 seals every customer but the one a writer holds');
ok(!$db->selectrow_array(q{SELECT recovery.pii_is_sealed(name) FROM recovery.customers WHERE id = $1},
                         undef, $customers[3]), 'which is still plain');
$writer->commit;
$writer->disconnect;
$db->do(q{CALL recovery.encrypt_existing(2)});
is_deeply($db->selectall_arrayref(q{SELECT table_name, plain_rows FROM recovery.encryption_progress ORDER BY 1}),
          [['audit_log', 0], ['case_notes', 0], ['customers', 0], ['documents', 0]],
          'run again, it goes on where it stopped and leaves no plain row');
is($db->selectrow_array(q{SELECT count(*) FROM recovery.customers
                           WHERE id = ANY ($1) AND erased_at IS NULL AND recovery.pii_is_sealed(name)
                             AND recovery.pii_is_sealed(email) AND recovery.pii_is_sealed(phone)},
                        undef, \@customers), 4, 'the customers\' name, email and phone are sealed');
is_deeply($read->(), $before, 'and every value reads back the same');
is_deeply($db->selectrow_arrayref(q{SELECT recovery.pii_is_sealed(d.filename) AND recovery.pii_is_sealed(d.content),
                                           dd.filename,
                                           convert_from(recovery.pii_open_bytes(d.content, 'documents', 'content', d.id, d.customer_id), 'UTF8')
                                      FROM recovery.documents d JOIN recovery.documents_decrypted dd USING (id)}),
          [1, "letter of $tag", "Letter text of $tag"], 'a document\'s name and content are sealed and read back');
is($db->selectrow_array(q{SELECT count(*) FROM recovery.audit_log
                           WHERE table_name IN ('customers', 'case_notes')
                             AND (old_row::text LIKE $1 OR new_row::text LIKE $1)}, undef, "%$tag%"),
   0, 'no audit row holds a name or note in plain text');
is($db->selectrow_array(q{SELECT count(*) FROM recovery.audit_log a
                           WHERE a.table_name = 'customers' AND a.customer_id = $1
                             AND recovery.audit_row_opened(a.new_row, a.table_name, a.row_key, a.customer_id)->>'name' = $2},
                        undef, $customers[1], "$tag 1"), 1, 'the audit trail opens the sealed name where it changed');
ok($db->selectrow_array(q{SELECT ok FROM recovery.audit_verify()}), 'the audit chain verifies');
is($db->selectrow_array(q{SELECT name FROM recovery.customers_decrypted WHERE id = $1}, undef, $erased),
   "erased customer $erased", 'the erased customer is left as erased');
is($db->selectrow_array(q{SELECT (recovery.api_customers_list(email => $1) -> 'items' -> 0 ->> 'id')::bigint},
                        undef, uc "p2.$tag\@example.test"), $customers[2],
   'a customer of 0.11 is found by email through its blind index');
eval { $db->do(q{UPDATE recovery.customers SET name = 'Someone' WHERE id = $1}, undef, $erased) };
like($@, qr/customer $erased was erased: no personal data can be stored for them/,
     'an erased customer takes no personal data again');

$db->disconnect;
$admin->do("DROP DATABASE $name");
done_testing();
