# Extraction and reconciliation with real-looking input: statements in three
# banks' layouts (Windows-1252 with semicolons and decimal commas, UTF-8 with
# a BOM and CRLF, tab-separated US dollars), a remittance email with a CSV
# attachment inside nested multiparts, an ISO-8859-1 email, SMS.  Matching
# payments are applied, ambiguous ones queued for review, duplicates
# ignored; hostile input is refused with a precise error and writes nothing.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Encode qw(encode);
use MIME::Base64 qw(encode_base64);
use DBD::Pg qw(:pg_types);
use Recovery::Test qw(connect_db wait_for);

my $db = connect_db();
my $tag = "x$$" . time;
my $n = 0;

sub value {
    my ($sql, @bind) = @_;
    return scalar $db->selectrow_array($sql, undef, @bind);
}

# a customer with an open case of one overdue payment
sub new_case {
    my (%c) = @_;
    $n++;
    my $customer = value(q{INSERT INTO recovery.customers (external_ref, name, email)
                           VALUES ($1, $2, 'x@example.com') RETURNING id},
                         "CUST-$$" . time . $n, $c{name} // "Payer $tag $n");
    my $payment = value(q{SELECT (recovery.payment_create($1, $2, $3, $4, current_date - 20)).id},
                        $customer, $c{invoice} // "INV-$tag-$n", $c{amount} // 123456, $c{currency} // 'EUR');
    my $case = value(q{SELECT (recovery.payment_fail($1)).id}, $payment);
    return { id => $case, customer => $customer, ref => sprintf('RC-%06d', $case) };
}

sub balance { value('SELECT balance FROM recovery.recovery_cases WHERE id = $1', $_[0]{id}) }

sub extract {
    my ($source, $bytes, $mapping, $case) = @_;
    my $sth = $db->prepare('SELECT recovery.extract_payments($1, $2, $3, $4)');
    $sth->bind_param(1, $source);
    $sth->bind_param(2, $bytes, { pg_type => PG_BYTEA });
    $sth->bind_param(3, $mapping);
    $sth->bind_param(4, $case);
    $sth->execute;
    my ($json) = $sth->fetchrow_array;
    return JSON::PP->new->decode($json);
}

sub lines_of {
    my ($extraction) = @_;
    return $db->selectall_arrayref('SELECT * FROM recovery.extraction_lines_decrypted WHERE extraction_id = $1 ORDER BY id',
                                   { Slice => {} }, $extraction);
}

use JSON::PP;

my $a = new_case(amount => 123456);                      # paid by reference, in full
my $b = new_case(name => "Hannelore Brösel $tag", amount => 5000, currency => 'GBP');
my $c = new_case(invoice => "INV-2026-$n$$", amount => 123456, currency => 'USD');
my $g = new_case(amount => 7500, currency => 'GBP');
my $g_number = value('SELECT external_ref FROM recovery.customers WHERE id = $1', $g->{customer});
my $unknown = "RC-999999999 $tag";   # every run's lines are its own

# --- three banks' statements ---------------------------------------------------
my $sparkasse = encode('cp1252',
    "Buchungstag;Valutadatum;Auftraggeber/Empfänger;Verwendungszweck;Betrag;Währung\r\n"
  . "25.11.2026;25.11.2026;\"Müller, Hans\";\"Rechnung $a->{ref}\r\nDanke\";1.234,56;EUR\r\n"
  . "24.11.2026;24.11.2026;Stadtwerke;\"Abschlag \"\"November\"\" $tag\";-12,50;EUR\r\n"
  . "23.11.2026;23.11.2026;Unbekannt;\"$unknown\";99,00;EUR\r\n");
$db->do(q{SELECT recovery.bank_mapping_save('sparkasse', '{"date": "Buchungstag", "amount": "Betrag",
          "currency": "Währung", "reference": "Verwendungszweck", "payer": "Auftraggeber/Empfänger",
          "delimiter": ";", "decimal": ","}')});
my $r = extract('statement', $sparkasse, 'sparkasse');
my $sparkasse_id = $r->{id};
is($r->{lines}, 3, 'a Windows-1252 statement with semicolons, decimal commas and a line break in a quoted field: 3 lines');
my @lines = @{ lines_of($r->{id}) };
is_deeply([map { $_->{status} } @lines], [qw(applied ignored unmatched)],
          'the payment with a case reference is applied, the debit ignored, the unknown reference left unmatched');
is($lines[0]{amount}, 123456, '1.234,56 EUR is 123456 cents');
is($lines[0]{payer}, 'Müller, Hans', 'the payer\'s name is read from Windows-1252');
is($lines[0]{reason}, "case reference $a->{ref}", 'with the reason of the match');
is($lines[1]{reason}, 'money paid out, not received', 'the debit says why it was ignored');
is(balance($a), 0, 'case A is paid');
is(value(q{SELECT state FROM recovery.recovery_cases WHERE id = $1}, $a->{id}), 'resolved', 'and resolved');
is(value(q{SELECT count(*) FROM recovery.receipts WHERE case_id = $1 AND reference LIKE 'extraction %'}, $a->{id}), 1,
   'through a receipt, as money recorded by hand');

my $uk = "\xEF\xBB\xBF" . encode('UTF-8',
    "Date,Description,Amount,Currency,Payer Name\r\n"
  . "25/11/2026,Thanks,\"50.00\",GBP,Hannelore Brösel $tag\r\n"
  . "26/11/2026,Refund $tag,(12.50),GBP,Shop Ltd\r\n"
  . "26/11/2026,Customer $g_number,75.00,GBP,Somebody Else\r\n");
$r = extract('statement', $uk);
@lines = @{ lines_of($r->{id}) };
is($r->{lines}, 3, 'a UTF-8 statement with a BOM and CRLF, headers guessed');
is($lines[0]{status}, 'review', 'a payer name with the amount of the balance waits for review');
is($lines[0]{case_id}, $b->{id}, 'suggesting the payer\'s case');
is($lines[0]{reason}, 'payer name and the balance', 'and saying why');
is($lines[1]{reason}, 'money paid out, not received', '(12.50) is money paid out');
is(balance($b), 5000, 'nothing applied yet');
is($lines[2]{reason}, "customer $g_number and the balance", 'the customer\'s number and the amount of the balance');
is($lines[2]{status}, 'applied', 'are enough to apply');
is(balance($g), 0, 'and that case is paid');

my $us = "Posted\tMemo\tCredit Amount\tOriginator\n"
       . "11/25/2026\t" . value('SELECT external_ref FROM recovery.payments WHERE case_id = $1', $c->{id}) . " thanks\t\$1,234.56\tACME Corp\n";
$db->do(q{SELECT recovery.bank_mapping_save('us-bank', '{"date": "Posted", "amount": "Credit Amount",
          "reference": "Memo", "payer": "Originator", "delimiter": "tab", "date_order": "MDY",
          "default_currency": "USD"}')});
$r = extract('statement', $us, 'us-bank');
@lines = @{ lines_of($r->{id}) };
is($lines[0]{booked_on}, '2026-11-25', 'a tab-separated statement with month-first dates');
like($lines[0]{reason}, qr/^invoice INV-/, 'matched by the invoice number');
is($lines[0]{status}, 'applied', 'and applied');
is(balance($c), 0, 'case C is paid');

# --- the same statement again ----------------------------------------------------
$r = extract('statement', $sparkasse, 'sparkasse');
is($r->{lines}, 0, 'importing the same statement again adds no line');
is($r->{duplicates}, 3, 'all three are recognised as seen before');
is(value(q{SELECT count(*) FROM recovery.receipts WHERE case_id = $1}, $a->{id}), 1, 'and nothing is applied twice');

# --- the review queue -----------------------------------------------------------
my $queue = JSON::PP->new->decode(value(q{SELECT recovery.api_reconciliation_queue('review', NULL, 200)}));
my ($waiting) = grep { $_->{case_id} && $_->{case_id} == $b->{id} } @{ $queue->{items} };
ok($waiting, 'the review queue lists the line with its suggested case');
my $confirmed = JSON::PP->new->decode(value(q{SELECT recovery.api_reconciliation_confirm($1)}, $waiting->{id}));
is($confirmed->{status}, 'confirmed', 'a person confirms it');
is(balance($b), 0, 'and the money is recorded');
ok(!grep({ $_->{status} ne 'review' } @{ $queue->{items} }), 'the queue holds the lines in review only');
ok(!eval { value(q{SELECT recovery.api_reconciliation_queue('unmatched', NULL, 200)}); 1 },
   'lines no rule matched are not listed across all extractions');
is($db->state, 'PR004', 'but per extraction (PR004 says so)');
my ($unmatched) = map { $_->{id} } grep { ($_->{reference} // '') eq $unknown }
    @{ JSON::PP->new->decode(value(q{SELECT recovery.api_reconciliation_queue('unmatched', NULL, 200, $1)},
                                   $sparkasse_id))->{items} };
ok($unmatched, 'the statement\'s unmatched line is listed with its extraction');
my $rejected = JSON::PP->new->decode(value(q{SELECT recovery.api_reconciliation_reject($1, 'not ours')}, $unmatched));
is($rejected->{status}, 'rejected', 'another is rejected with a reason');
ok(!eval { $db->do(q{SELECT recovery.api_reconciliation_reject($1, 'again')}, undef, $unmatched); 1 },
   'a decided line cannot be decided again');
is($db->state, 'PR009', 'with the conflict SQLSTATE');

# --- a remittance email: nested multipart, encoded words, a CSV attachment ------
my $d = new_case(amount => 20000);
my $csv = encode_base64("date,amount,reference\n2026-11-25,200.00,$d->{ref}\n");
my $email = <<"MAIL";
From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg\@example.com>
To: ar\@example.com
Subject: =?UTF-8?Q?Zahlungsavis_=C3=9Cberweisung?= $d->{ref}
Date: Wed, 25 Nov 2026 10:00:00 +0100
Message-ID: <remit-$tag\@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Wir haben EUR 200,00 f=C3=BCr $d->{ref} =C3=BCberwiesen, siehe Anlage.
--inner
Content-Type: text/html; charset=utf-8

<p>Wir haben <b>EUR 200,00</b> &uuml;berwiesen.</p>
--inner--

--outer
Content-Type: text/csv; name="avis.csv"
Content-Disposition: attachment; filename="avis.csv"
Content-Transfer-Encoding: base64

$csv
--outer--
MAIL
$email =~ s/\n/\r\n/g;
$r = extract('email', $email);
is($r->{parsed}{subject}, "Zahlungsavis Überweisung $d->{ref}", 'the subject\'s encoded words are decoded');
is($r->{parsed}{from}, 'Jörg Müller <joerg@example.com>', 'and the sender\'s');
like($r->{parsed}{text}, qr/Wir haben EUR 200,00 für $d->{ref} überwiesen/, 'the text comes from text/plain, quoted-printable decoded');
is($r->{lines}, 1, 'the CSV attachment is the remittance: one payment, not one more from the text');
is(balance($d), 0, 'applied to the case it names');
is(scalar @{ $r->{documents} }, 1, 'the attachment is kept with the case');
is(value(q{SELECT filename || ' ' || content_type FROM recovery.documents_decrypted WHERE id = $1}, $r->{documents}[0]{document_id}),
   'avis.csv text/csv', 'as a document');
$r = extract('email', $email);
is($r->{lines}, 0, 'the same email again adds nothing');

my $e = new_case(amount => 5000);
my $latin1 = "From: kunde\@example.com\r\nSubject: =?ISO-8859-1?Q?=DCberweisung?=\r\n"
           . "Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           . "=DCberweisung von EUR 50,00 f=FCr $e->{ref} erledigt.\r\n";
$r = extract('email', $latin1);
is($r->{parsed}{subject}, 'Überweisung', 'an ISO-8859-1 subject is converted to UTF-8');
like($r->{parsed}{text}, qr/^Überweisung von EUR 50,00 für/, 'and so is the body');
is(balance($e), 0, 'the amount in its text is applied to the case it names');

# --- SMS ----------------------------------------------------------------------------
my $f = new_case(amount => 2500, currency => 'GBP');
$r = extract('sms', encode('UTF-8', "Will pay £25.00 on 5 December 2026, ref $f->{ref}"));
is($r->{lines}, 0, 'a promise is not money received');
is_deeply([map { $_->{value} } grep { $_->{kind} eq 'intent' } @{ $r->{parsed}{items} }], ['promise'],
          'its intent is reported');
$r = extract('sms', encode('UTF-8', "Hi, I have paid 25.00 GBP today for rc $f->{id}"));
is($r->{lines}, 1, 'a payment by SMS is one line');
is(balance($f), 0, 'applied to the case it names');
$r = extract('sms', encode('UTF-8', "Hi, I have paid 25.00 GBP today for rc $f->{id}"));
is($r->{lines}, 0, 'the same SMS again adds nothing');
is($r->{duplicates}, 1, 'it is recognised');
$r = extract('sms', encode('UTF-8', "This is not mine, I dispute it"));
is($r->{lines}, 0, 'a dispute applies nothing');

# --- the automation contract's extraction task, performed by the pg_cron job ------
my $h = new_case(amount => 990);
$db->do("SET ROLE recovery_automation");
my $task = value(q{SELECT (recovery.api_extraction_schedule('sms', NULL, $1) ->> 'id')::bigint},
                 "paid EUR 9,90 for $h->{ref}");
$db->do("RESET ROLE");
ok(value(q{SELECT recovery.perform_extraction_tasks()}) >= 1, 'the extraction job performs due extraction tasks');
is(value(q{SELECT state || ' ' || (result ->> 'lines') FROM recovery.tasks WHERE id = $1}, $task), 'done 1',
   'the task is done, with what was found');
is(balance($h), 0, 'and the payment it found is applied');

# --- hostile input: a precise error, nothing written ------------------------------
my $before = value('SELECT count(*) FROM recovery.extractions');
for my $case (["amount,reference\n\"unterminated,RC-1\n", 'statement', qr/quoted field that starts on line 2 is never closed/,
               'an unterminated quote'],
              ["amount,reference\n\"" . ('x' x (10 * 1024 * 1024)) . "\",1\n", 'statement', qr/longer than 1048576 bytes/,
               'a 10 MB single field'],
              ["amount,reference\n12\0,RC-1\n", 'statement', qr/NUL byte/, 'a NUL byte'],
              ["date;amount\n1;2\n", 'statement', qr/neither a reference nor a payer column/, 'a header without the columns it needs'],
              ["paid \xff\xfe EUR 12", 'sms', qr/not valid UTF-8/, 'invalid UTF-8 in an SMS'],
              [join('', map { "Content-Type: multipart/mixed; boundary=\"b$_\"\r\n\r\n--b$_\r\n" } 1 .. 500), 'email',
               qr/more than 100 nested containers/, 'MIME nested 500 deep']) {
    my ($bytes, $source, $error, $what) = @$case;
    ok(!eval { extract($source, $bytes); 1 }, "$what is refused");
    like($db->errstr, $error, 'saying what is wrong');
    is($db->state, 'PR004', 'as a validation error (PR004)');
}
is(value('SELECT count(*) FROM recovery.extractions'), $before, 'and nothing of them was written');
ok(!eval { extract('statement', "amount,reference\n1,2\n", 'no-such-bank'); 1 }, 'an unknown bank mapping is refused');
is($db->state, 'PR003', 'as not found');

# --- a large statement: read on a thread while the backend stores it -------------
# (files from 1 MiB on are read on a thread of their own, in batches of 4096)
my $big_case = new_case(amount => 4200);
my $big_line = sub {
    my ($i, $day) = @_;
    return sprintf "%02d.11.2026;\"Kunde %d\";\"Rechnung %s-%07d\";%d,%02d;EUR\n", $day, $i, "INV-Z$tag", $i, 1 + $i % 900, $i % 100;
};
my $big = "Datum;Auftraggeber;Verwendungszweck;Betrag;Waehrung\n";
$big .= $big_line->($_, 1 + $_ % 20) for 1 .. 20000;
$big .= "21.11.2026;\"Somebody\";\"Paying $big_case->{ref}\";42,00;EUR\n";
$big .= $big_line->(5, 6) for 1 .. 2;                 # the same line as line 5, twice more
my $big_lines = 20000 + 1 + 2;
ok(length($big) > 1024 * 1024, 'a statement of more than 1 MiB');
$r = extract('statement', $big);
is($r->{lines}, $big_lines, "all $big_lines lines are stored, batch after batch");
is($r->{by_status}{applied}, 1, 'the one quoting a case reference is applied');
is(balance($big_case), 0, 'and its case is paid');
is(value('SELECT count(*) FROM recovery.extraction_lines WHERE extraction_id = $1 AND reference LIKE $2',
         $r->{id}, "Rechnung INV-Z$tag-0000005"), 3, 'three equal lines stay three payments');
is(value('SELECT count(DISTINCT id) FROM recovery.extraction_lines WHERE extraction_id = $1', $r->{id}), $big_lines,
   'each with an id of its own');
is(value('SELECT last_line_id - first_line_id + 1 FROM recovery.extractions WHERE id = $1', $r->{id}), $big_lines,
   'in one range, which the extraction records');
my $first = extract('statement', $big);
is($first->{lines}, 0, 'the same large statement again adds nothing');
is($first->{duplicates}, $big_lines, 'every line is recognised, the repeated ones too');

# a later statement that overlaps: the old lines are skipped, the new ones added
my $later = "Datum;Auftraggeber;Verwendungszweck;Betrag;Waehrung\n";
$later .= $big_line->($_, 1 + $_ % 20) for 19001 .. 20000;
$later .= $big_line->($_, 22) for 20001 .. 20100;
$r = extract('statement', $later);
is($r->{lines}, 100, 'an overlapping statement adds only its new lines');
is($r->{duplicates}, 1000, 'and skips the thousand imported before');

# a statement that turns out unreadable at its end writes nothing at all
my $broken = $big;
$broken =~ s/INV-Z$tag/INV-Y$tag/g;
$broken .= "22.11.2026;\"Somebody\";\"unterminated;1,00;EUR\n";
my $lines_before = value('SELECT count(*) FROM recovery.extraction_lines');
ok(!eval { extract('statement', $broken); 1 }, 'a large statement with an unterminated quote on its last line is refused');
like($db->errstr, qr/never closed/, 'saying why');
is(value('SELECT count(*) FROM recovery.extraction_lines'), $lines_before, 'and none of the batches stored before it remains');

# what the bulk import will not do
$db->begin_work;
$db->do('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
ok(!eval { extract('statement', $sparkasse, 'sparkasse'); 1 }, 'an import at REPEATABLE READ is refused');
like($db->errstr, qr/READ COMMITTED/, 'because the lines imported before might not be seen');
$db->rollback;
$db->begin_work;
$db->do(q{CREATE FUNCTION pg_temp.nothing() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'});
$db->do(q{CREATE TRIGGER spy BEFORE INSERT ON recovery.extraction_lines FOR EACH ROW EXECUTE FUNCTION pg_temp.nothing()});
ok(!eval { extract('statement', "date,amount,reference,currency\n2026-11-01,1.00,new $tag,EUR\n"); 1 },
   'a row trigger on INSERT, which bulk writes would not fire, stops the import');
like($db->errstr, qr/row trigger on INSERT/, 'and says so');
$db->rollback;

# two imports of one statement at once: the second waits, then finds every line
{
    my $other = connect_db();
    my $again = "Datum;Auftraggeber;Verwendungszweck;Betrag;Waehrung\n" . $big_line->(1, 23) . $big_line->(2, 23);
    $db->begin_work;
    my $mine = extract('statement', $again);
    my $sth = $other->prepare('SELECT recovery.extract_payments($1, $2)', { pg_async => PG_ASYNC });
    $sth->bind_param(1, 'statement');
    $sth->bind_param(2, $again, { pg_type => PG_BYTEA });
    $sth->execute;
    my $their_pid = $other->{pg_pid};
    ok(wait_for('the second import to wait on a lock',
                sub { value(q{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1}, $their_pid) })
       && !$other->pg_ready, 'a second import of the same statement waits for the first');
    $db->commit;
    $other->pg_result;
    my $theirs = JSON::PP->new->decode(($sth->fetchrow_array)[0]);
    is($mine->{lines}, 2, 'the first adds the lines');
    is($theirs->{lines}, 0, 'the second, once the first committed, adds none');
    is($theirs->{duplicates}, 2, 'and finds both');
}

# a cancelled import leaves the backend as it was: no thread, nothing written
{
    my $huge = "Datum;Auftraggeber;Verwendungszweck;Betrag;Waehrung\n";
    $huge .= $big_line->($_, 1 + $_ % 28) =~ s/INV-Z/INV-C/r for 1 .. 1000000;   # 60 MB: most of a second
    my $pid = value('SELECT pg_backend_pid()');
    $db->do(q{SET statement_timeout = '200ms'});
    ok(!eval { extract('statement', $huge); 1 }, 'an import longer than statement_timeout is cancelled');
    is($db->state, '57014', 'as a cancelled query');
    $db->do('RESET statement_timeout');
    my @tasks = glob("/proc/$pid/task/*");
    is(scalar @tasks, 1, 'the reader\'s thread is gone') if -d "/proc/$pid";
    is(value(q{SELECT count(*) FROM recovery.extraction_lines WHERE reference LIKE 'Rechnung INV-C%'}), 0,
       'and no line of it was kept');
    is(value('SELECT 1'), 1, 'the session goes on');

    # a backend terminated in the middle of an import ends cleanly (FATAL):
    # a crash would restart the server and end every session, this one too
    my $other = connect_db();
    my $victim = $other->selectrow_array('SELECT pg_backend_pid()');
    my $started = value('SELECT pg_postmaster_start_time()');
    my $sth = $other->prepare('SELECT recovery.extract_payments($1, $2)', { pg_async => PG_ASYNC });
    $sth->bind_param(1, 'statement');
    $sth->bind_param(2, $huge, { pg_type => PG_BYTEA });
    $sth->execute;
    wait_for('the import to be running', sub {
        value(q{SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'}, $victim) });
    select undef, undef, undef, 0.2;    # into the middle of it
    ok(value('SELECT pg_terminate_backend($1)', $victim), 'a backend importing a statement is terminated');
    ok(!eval { $other->pg_result; 1 }, 'its import ends with the session');
    ok(wait_for('the terminated backend to exit',
                sub { value('SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1', $victim) }),
       'and the backend is gone');
    is(value('SELECT pg_postmaster_start_time()'), $started, 'without a crash: the server did not restart');
}

# bulk_insert.c gives extraction_lines' BRIN index on id the first and last
# line of each heap block, not every line.  A block range summarized before
# an import, whose free space the import fills, must still find every line.
{
    my $statement = sub {
        my ($from, $n) = @_;
        return "date,amount,currency,reference,payer\n"
             . join('', map { sprintf "2026-10-%02d,%d.%02d,EUR,BRIN-$tag-%07d,Brin Payer %d\n",
                                      1 + $_ % 28, 1 + $_ % 900, $_ % 100, $_, $_ } $from .. $from + $n - 1);
    };
    my $first = extract('statement', $statement->(1, 3000));
    is($first->{lines}, 3000, 'a statement of 3,000 lines is imported');
    $db->do(q{SELECT brin_summarize_new_values('recovery.extraction_lines_id')});
    my $second = extract('statement', $statement->(3001, 5000));
    is($second->{lines}, 5000, 'then one of 5,000 lines, after the BRIN index summarized its ranges');
    my ($second_id) = $db->selectrow_array('SELECT extraction_id FROM recovery.extraction_lines WHERE reference = $1',
                                           undef, sprintf("BRIN-$tag-%07d", 3001));
    my $count = sub {
        my ($scan) = @_;
        $db->begin_work;
        $db->do($scan eq 'index' ? 'SET LOCAL enable_seqscan = off' : 'SET LOCAL enable_bitmapscan = off');
        my $plan = join "\n", map { $_->[0] } @{ $db->selectall_arrayref(
            'EXPLAIN SELECT count(*) FROM recovery.extraction_lines WHERE id >= $1', undef,
            $db->selectrow_array('SELECT min(id) FROM recovery.extraction_lines WHERE extraction_id = $1',
                                 undef, $second_id)) };
        my ($n) = $db->selectrow_array(
            'SELECT count(*) FROM recovery.extraction_lines WHERE id >= (SELECT min(id) FROM recovery.extraction_lines WHERE extraction_id = $1)',
            undef, $second_id);
        $db->rollback;
        return ($n, $plan);
    };
    my ($through_index, $plan) = $count->('index');
    like($plan, qr/extraction_lines_id/, 'the count goes through the BRIN index') or diag $plan;
    my ($scanned) = $count->('seq');
    is($through_index, $scanned, "the BRIN index finds every line of the second import ($through_index)");
    cmp_ok($through_index, '>=', 5000, 'all 5,000 of them');
}

done_testing();
