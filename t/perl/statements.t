# Every statement format a bank or a customer sends, through the sandboxed
# recovery-parse: CAMT.052/053/054 of every version, MT940 and MT942 with
# both :86: styles in three encodings, xlsx, xls, PDF tables and remittance
# text.  The same statement in
# six formats gives the same payments once; statements that do not add up
# are held; hostile files stop within the limits and the backend lives on.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Compress::Zip qw(:all);
use Compress::Zlib qw(compress);
use MIME::Base64 qw(encode_base64);
use DBD::Pg qw(:pg_types);
use JSON::PP;
use Recovery::Test qw(connect_db new_case);
use Recovery::Statements qw(camt mt940 statement_csv statement_xlsx statement_xls statement_pdf closing_of);

my $db = connect_db();
my $json = JSON::PP->new->canonical;
my $tmp = tempdir(CLEANUP => 1);
chmod 0755, $tmp;
my $day = sprintf '2026-%02d-%02d', 1 + $$ % 12, 1 + $$ % 28;    # dates of this run only
my $n = 0;

sub value { my ($sql, @bind) = @_; return scalar $db->selectrow_array($sql, undef, @bind) }

sub call_bytes {
    my ($sql, @args) = @_;
    my $sth = $db->prepare($sql);
    for my $i (0 .. $#args) {
        my ($v, $type) = ref $args[$i] eq 'ARRAY' ? @{ $args[$i] } : ($args[$i], undef);
        $sth->bind_param($i + 1, $v, $type ? { pg_type => $type } : undef);
    }
    $sth->execute;
    return $sth->fetchrow_hashref;
}

sub parse_file {
    my ($bytes, $format, $mapping) = @_;
    my $row = call_bytes('SELECT format, columns, convert_from(content, $$UTF8$$) AS content, summary
                            FROM recovery.parse_statement_file($1, $2, $3)',
                         [$bytes, PG_BYTEA], $format, $mapping);
    $row->{summary} = $json->decode($row->{summary});
    $row->{rows} = [ map { [ parse_line($_) ] } grep { length } split /\n/, $row->{content} ];
    shift @{ $row->{rows} };    # the header
    return $row;
}

# the parser's CSV: quoted fields, never a quote inside that is not doubled
sub parse_line {
    my ($line) = @_;
    my @f;
    while ($line =~ /\G(?:"((?:[^"]|"")*)"|([^,]*))(?:,|$)/gc) {
        push @f, defined $1 ? $1 =~ s/""/"/gr : $2;
        last if pos($line) >= length $line;
    }
    return @f;
}

sub extract {
    my ($bytes, %o) = @_;
    my $row = call_bytes('SELECT recovery.extract_payments($$statement$$, $1, $2, NULL, NULL, $3) AS r',
                         [$bytes, PG_BYTEA], $o{mapping}, $o{format});
    return $json->decode($row->{r});
}

sub lines_of {
    my ($id) = @_;
    return $db->selectall_arrayref('SELECT * FROM recovery.extraction_lines_decrypted WHERE extraction_id = $1 ORDER BY id',
                                   { Slice => {} }, $id);
}

sub error_of {
    my ($code) = @_;
    local $db->{RaiseError} = 1;
    eval { $code->(); 1 } and return undef;
    return { state => $db->state, message => $db->errstr };
}

# --- every CAMT message and version: the namespace tells them ---------------
my $simple = { id => 'V', opening => '10.00', entries => [
    { date => $day, amount => '1.00', reference => 'version test' } ] };
my @seen;
for my $message ('052', '053', '054') {
    for my $version (2 .. 13) {
        my $r = parse_file(camt(message => $message, version => $version, statements => [$simple]));
        push @seen, $r->{format} if $r->{format} eq sprintf('camt.%s.001.%02d', $message, $version)
                                    && @{ $r->{rows} } == 1 && $r->{rows}[0][1] eq '1.00';
    }
}
is(scalar @seen, 36, 'CAMT.052, .053 and .054 of versions 001.02 to 001.13: each read with its version');
my $err = error_of(sub { parse_file(camt(statements => [$simple]) =~ s/camt\.053\.001\.08/camt.053.001.14/r) });
like($err->{message}, qr/not a CAMT.*001\.02 to 001\.13.*camt\.053\.001\.14/, 'version 001.14 (unknown): refused with its namespace');
is($err->{state}, 'PR004', '... SQLSTATE PR004');

# --- every field of a CAMT entry --------------------------------------------
my $rich = {
    id => 'RICH-1', opening => '1000.00', entries => [
        { date => $day, amount => '200.50', reference => 'Invoice   7 thanks', payer => 'Jane Doe',
          iban => 'DE89370400440532013000', end_to_end => 'E2E-1' },
        { date => $day, amount => '75.00', end_to_end => 'E2E-ONLY-REF', datetime => 1 },
        { date => $day, amount => '10.00', debit => 1, payer => 'Own bank' },
        { date => $day, amount => '30.00', reversal => 1, debit => 1 },
        { date => $day, amount => '9.99', status => 'PDNG', reference => 'not yet' },
        { date => $day, amount => '12.34000', reference => 'five decimals, trailing zeros' },
        { date => $day, amount => '0.00123', reference => 'five decimals' },
        { date => $day, amount => '300.00', batch => [
            { amount => '100.00', reference => 'batch one', payer => 'A' },
            { amount => '200.00', rf => 'RF18 5390 0754 7034', payer => 'B' } ] },
        { date => $day, amount => '5.00', rf => 'RF19 5390 0754 7034', payer => 'C' },
    ] };
# 200.50 + 75 - 10 - 30 + 12.34 + 0.00123 + 100 + 200 + 5, not the pending 9.99
$rich->{closing} = '1552.84123';
my $r = parse_file(camt(version => 9, statements => [$rich]));
my @rows = @{ $r->{rows} };
is(scalar @rows, 10, 'each entry a line, each transaction of the batch booking a line: 10');
is_deeply([ @{ $rows[0] }[0 .. 5] ], [$day, '200.50', 'EUR', 'Invoice 7 thanks', 'Jane Doe', 'DE89370400440532013000'],
          'date, exact amount, currency, remittance text (spaces squeezed), debtor name and IBAN');
is($rows[1][3], 'E2E-ONLY-REF', 'no remittance information: the end-to-end id is the reference');
is($rows[1][0], $day, 'a booking date given as DtTm: its day');
is($rows[2][1], '-10.00', 'a debit: negative');
like($rows[3][6], qr/reversal/, 'a reversal: not money received, and says so');
like($rows[4][6], qr/^pending/, 'a pending entry: not applied, and says so');
is($rows[5][1], '12.34', '12.34000: trailing zeros past two decimals dropped');
is($rows[6][1], '0.00123', 'five decimals kept as they are');
is_deeply([ map { $_->[1] } @rows[7, 8] ], ['100.00', '200.00'], 'the batch: each transaction with its own amount');
is($rows[8][3], 'RF18 5390 0754 7034', 'a valid ISO 11649 creditor reference is the reference');
is($rows[8][7] // '', '', '... and holds nothing');
like($rows[9][7], qr/RF19 5390 0754 7034 fails its ISO 11649 check/, 'a creditor reference with wrong check digits: held for a person');
is($r->{summary}{unbalanced}, 0, 'opening 1000.00 + booked entries = closing 1552.84123: the statement adds up');

# --- MT940 and MT942: both :86: styles, three encodings ---------------------
my $mt = { id => 'MT-1', opening => '500.00', entries => [
    { date => $day, amount => '120.00', reference => 'Rechnung INV-2026-0042 Müller', payer => 'Jürgen Müller',
      iban => 'DE44500105175407324931', end_to_end => 'E2E-MT' },
    { date => $day, amount => '20.00', debit => 1, reference => 'fee', payer => 'Bank' },
] };
for my $style ('german', 'slash') {
    for my $encoding ('UTF-8', 'cp1252', 'iso-8859-1') {
        my $p = parse_file(mt940(style => $style, encoding => $encoding, statements => [$mt]));
        is_deeply([ map { [ @{$_}[0 .. 5] ] } @{ $p->{rows} } ],
                  [ [$day, '120.00', 'EUR', 'Rechnung INV-2026-0042 Müller', 'Jürgen Müller', 'DE44500105175407324931'],
                    [$day, '-20.00', 'EUR', 'fee', 'Bank', ''] ],
                  "MT940, :86: $style style, $encoding: every field, the umlauts right");
        is($p->{summary}{unbalanced}, 0, "... and :60F: + entries = :62F:");
    }
}
$r = parse_file(mt940(statements => [{ %$mt, id => 'MT-SHORT', closing => '1.00' }]));
is_deeply($r->{summary}{held}, [{ first_line => 2, last_line => 3,
    reason => 'statement MT-SHORT does not add up: its balances differ by -499.00 EUR, its entries sum to 100.00 (a truncated file or a missing page?)' }],
    'an MT940 whose :62F: is not :60F: plus its entries: its lines listed as held, and why');
my $mt942 = mt940(statements => [$mt]);
$mt942 =~ s/:28C:/:34F:EUR0,00\r\n:13D:2612041800+0100\r\n:28C:/;
$mt942 =~ s/:60F:[^\r]*\r\n//;
$mt942 =~ s/:62F:[^\r]*\r\n//;
$r = parse_file($mt942);
is($r->{format}, 'mt942', 'an MT942 (:34F:, :13D:) says so');
is(scalar @{ $r->{rows} }, 2, '... with its entries (no balances to check)');
my $reversal = mt940(statements => [{ id => 'R', entries => [ { date => $day, amount => '40.00', reversal => 1 } ] }]);
$r = parse_file($reversal);
is($r->{rows}[0][1], '-40.00', 'MT940 RC (reversal of a credit): money taken back, negative');
like($r->{rows}[0][6], qr/reversal/, '... and marked a reversal');

# --- spreadsheets and PDF ---------------------------------------------------
my @entries = @{ $mt->{entries} };
$r = parse_file(statement_xlsx(entries => \@entries));
is($r->{columns}, 'own', 'xlsx: the sheet with a statement header, under its own columns');
is_deeply([ map { $_->[1] } @{ $r->{rows} } ], ['120.00', '-20.00'], '... amounts from the cells\' literal numbers');
is($r->{rows}[0][0], $day, '... dates from Excel serial numbers (1900 epoch)');
is(parse_file(statement_xlsx(entries => \@entries, epoch_1904 => 1))->{rows}[0][0], $day,
   'a workbook with the 1904 epoch: the same dates');
$r = parse_file(statement_xlsx(entries => \@entries), undef, '{"date": "Booking date", "amount": "Amount", "reference": "Reference"}');
is(scalar @{ $r->{rows} }, 2, 'xlsx with a bank mapping: the header the mapping names is found');
$err = error_of(sub { parse_file(statement_xlsx(entries => \@entries), undef, '{"amount": "Betrag"}') });
like($err->{message}, qr/no sheet of the workbook \(2\) has a header row/, 'a mapping no sheet matches: a clear error');

$r = parse_file(statement_xls(entries => \@entries));
is($r->{format}, 'xls', 'an Excel 97-2003 workbook (FreeXL)');
is_deeply([ map { [ @{$_}[0 .. 4] ] } @{ $r->{rows} } ],
          [ [$day, '120.00', 'EUR', 'Rechnung INV-2026-0042 Müller', 'Jürgen Müller'], [$day, '-20.00', 'EUR', 'fee', 'Bank'] ],
          '... dates, amounts, and its UTF-16 text');
$err = error_of(sub { parse_file("\320\317\021\340\241\261\032\341" . ("\0" x 600)) });
like($err->{message}, qr/not a readable Excel 97-2003 workbook/, 'a broken xls: a clear error');

$r = parse_file(statement_pdf(entries => \@entries));
is($r->{format}, 'pdf (table)', 'a PDF statement: its table of bookings found');
is_deeply([ map { [ @{$_}[1, 3, 4] ] } @{ $r->{rows} } ],
          [ ['120.00', 'Rechnung INV-2026-0042 Müller', 'Jürgen Müller'], ['-20.00', 'fee', 'Bank'] ],
          '... each cell under its column (amounts right-aligned)');
$r = parse_file(statement_pdf(text => ['Remittance advice', 'We paid EUR 1,234.56 for RC-000042 on 04.12.2026']));
is($r->{format}, 'pdf (text)', 'a remittance advice without a table: its text');
like($r->{content}, qr/We paid EUR 1,234\.56 for RC-000042/, '... lines rebuilt in reading order, words spaced');
$err = error_of(sub { parse_file(statement_pdf(scan => 1)) });
like($err->{message}, qr/no text: needs a person/, 'a scanned PDF (no text layer): "no text: needs a person", never zero payments');

# --- the same statement in four formats: the same payments, once ------------
my $case = new_case($db, 12_345);
my $ref = sprintf 'RC-%06d', $case;
my $other = new_case($db, 50_000);
my $same = { id => 'SAME', opening => '0.00', entries => [
    { date => $day, amount => '123.45', reference => "Payment $ref", payer => 'Same Payer', iban => 'DE02120300000000202051' },
    { date => $day, amount => '77.00', reference => sprintf('RC-%06d part', $other), payer => 'Other Payer' },
    { date => $day, amount => '5.00', debit => 1, reference => 'account fee', payer => 'Bank' },
] };
my $first = extract(camt(statements => [$same]));
is($first->{format}, 'camt.053.001.08', 'CAMT import: the format is in the outcome');
is($first->{by_status}{applied}, 2, '... both payments applied to their cases');
is(value('SELECT balance FROM recovery.recovery_cases WHERE id = $1', $case), 0, '... the case is paid');
for my $again ([ mt940(statements => [$same]), 'MT940' ], [ statement_csv(@{ $same->{entries} }), 'CSV' ],
               [ statement_xlsx(entries => $same->{entries}), 'xlsx' ],
               [ statement_xls(entries => $same->{entries}), 'xls' ],
               [ statement_pdf(entries => $same->{entries}), 'PDF' ]) {
    my $o = extract($again->[0]);
    is($o->{duplicates}, 3, "the same statement as $again->[1]: its 3 lines are the ones imported (fingerprints)");
    is($o->{lines}, 0, '... and nothing is added');
}
is(value('SELECT count(*) FROM recovery.receipts WHERE case_id = $1', $case), 1, 'the money was received once');

# --- a statement that does not add up: every line held ----------------------
my $short_case = new_case($db, 4_200);
my $short = { id => 'SHORT-1', opening => '100.00', closing => '999.00', entries => [
    { date => $day, amount => '42.00', reference => sprintf('RC-%06d', $short_case), payer => 'Short' },
    { date => $day, amount => '1.00', reference => 'another' } ] };
my $o = extract(camt(statements => [$short, { %$same, id => 'OK-2', entries => [
    { date => $day, amount => '3.00', reference => 'balanced statement', payer => 'Z' } ] }]));
is($o->{statement}{unbalanced}, 1, 'two statements in one file, one does not add up: counted');
my @held = @{ lines_of($o->{id}) };
is($held[0]{status}, 'review', 'its line that matches a case exactly is not applied but waits for a person');
like($held[0]{reason}, qr/held: statement SHORT-1 does not add up: its balances differ by 899\.00 EUR, its entries sum to 43\.00/,
     '... with the reason: the difference and the sum');
is(value('SELECT balance FROM recovery.recovery_cases WHERE id = $1', $short_case), 4_200, '... the case balance is untouched');
like($held[1]{reason}, qr/does not add up/, 'its unmatched line says so too');
is($held[2]{reason}, undef, 'the balanced statement of the same file holds nothing');

# --- the preview: what an import would do, keeping nothing -------------------
my $preview_case = new_case($db, 900);
my $before = value('SELECT count(*) FROM recovery.extractions');
my $preview = $json->decode(call_bytes('SELECT recovery.extract_preview($$statement$$, $1) AS r',
    [ camt(statements => [{ id => 'P', entries => [
        { date => $day, amount => '9.00', reference => sprintf('RC-%06d', $preview_case), payer => 'Prev' } ] }]), PG_BYTEA ])->{r});
ok($preview->{preview}, 'a preview says it is one');
is($preview->{lines_found}[0]{status}, 'applied', '... the line would be applied');
is($preview->{lines_found}[0]{case_id}, $preview_case, '... to its case');
is(value('SELECT count(*) FROM recovery.extractions'), $before, '... and no extraction was kept');
is(value('SELECT balance FROM recovery.recovery_cases WHERE id = $1', $preview_case), 900, '... nor any payment');

# --- a PDF remittance advice attached to an email: read by the same program ---
my $mail_case = new_case($db, 5_555);
my $advice = statement_pdf(title => 'Remittance advice', text => [
    sprintf('We paid EUR 55.55 for RC-%06d on %s.', $mail_case, $day), 'Regards, the payer' ]);
my $mail = join("\r\n", 'From: payer@example.com', 'To: collections@example.com', 'Subject: Remittance',
    'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="advice"', '',
    '--advice', 'Content-Type: text/plain; charset=utf-8', '', 'Please find our remittance advice attached.',
    '--advice', 'Content-Type: application/pdf; name="advice.pdf"',
    'Content-Disposition: attachment; filename="advice.pdf"', 'Content-Transfer-Encoding: base64', '',
    encode_base64($advice), '--advice--', '');
$o = $json->decode(call_bytes('SELECT recovery.extract_payments($$email$$, $1) AS r', [$mail, PG_BYTEA])->{r});
is($o->{format}, 'pdf (text)', 'an email\'s PDF remittance advice is read by recovery-parse');
is($o->{by_status}{applied}, 1, '... its payment applied');
is(value('SELECT balance FROM recovery.recovery_cases WHERE id = $1', $mail_case), 0, '... to the case it names');
is_deeply([ map { $_->{filename} } @{ $o->{documents} } ], ['advice.pdf'], '... and the advice kept with the case');

# --- hostile files: clear errors within the limits; the backend lives on ----
my $pid = value('SELECT pg_backend_pid()');
my $started = value('SELECT pg_postmaster_start_time()');
$before = value('SELECT count(*) FROM recovery.extractions');

sub hostile {
    my ($name, $bytes, $expect, %o) = @_;
    $db->do("SET recovery.parse_cpu_time = $o{cpu}") if $o{cpu};
    my $e = error_of(sub { extract($bytes) });
    $db->do('RESET recovery.parse_cpu_time') if $o{cpu};
    like($e->{message} // '', $expect, "$name: a clear error");
    is($e->{state}, 'PR004', "... SQLSTATE PR004");
}

my $laughs = qq{<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY a "lol">}
    . join('', map { my $p = $_ - 1; qq{<!ENTITY l$_ "} . ($_ == 1 ? '&a;' : "&l$p;") x 10 . '">' } 1 .. 9)
    . qq{]>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt><Id>&l9;</Id></Stmt></BkToCstmrStmt></Document>};
hostile('a billion laughs CAMT', $laughs, qr/declares a DTD: a CAMT file has none, and none is read/);
my $xxe = qq{<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n}
    . qq{<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt><Id>&x;</Id></Stmt></BkToCstmrStmt></Document>};
hostile('an external-entity CAMT', $xxe, qr/declares a DTD/);
hostile('a CAMT cut short', substr(camt(statements => [$rich]), 0, 900), qr/not well-formed XML/);

# zip bombs: a sheet that inflates to 600 MB of XML from a few hundred kB
sub zip_bomb {
    my ($cell, $count) = @_;
    my $bomb;
    my $z = IO::Compress::Zip->new(\$bomb, Name => 'xl/workbook.xml', Level => 9)
        or die "zip: $ZipError";
    $z->print('<workbook><sheets><sheet name="A" r:id="rId1" xmlns:r="r"/></sheets></workbook>');
    $z->newStream(Name => 'xl/_rels/workbook.xml.rels');
    $z->print('<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>');
    $z->newStream(Name => 'xl/worksheets/sheet1.xml');
    $z->print('<worksheet><sheetData>');
    $z->print($cell) for 1 .. $count;
    $z->print('</sheetData></worksheet>');
    $z->close;
    return $bomb;
}
# rows of one 8 MB cell each (under the XML reader's 10 MB bound for a text)
my $row = '<row><c><v>' . ('1' x (8 << 20)) . '</v></c></row>';
my $bomb = zip_bomb($row, 75);
ok(length $bomb < 2_000_000, 'the zip bomb is small: ' . length($bomb) . ' bytes');
hostile('a zip bomb xlsx', $bomb, qr/sheet1\.xml inflates to 600 MiB, more than 256: refused as a zip bomb/);
# the same bomb lying about its size: stopped while it inflates
my $at = rindex($bomb, "PK\x01\x02");    # the sheet's central directory entry
substr($bomb, $at + 24, 4) = pack('V', 1000);
# (the XML reader keeps part of what it read: the memory bound may come first)
hostile('a zip bomb that says it is small', $bomb,
        qr/sheet1\.xml (inflates to more than 256 MiB: refused as a zip bomb|is not readable XML: Memory allocation failed)/);

# a PDF of nested arrays 100,000 deep, and one whose page repeats an
# operator 100 million times (a loop for any reader): within the limits
sub raw_pdf {
    my ($content, $extra) = @_;
    my $stream = compress($content);
    my @objects = ('<< /Type /Catalog /Pages 2 0 R >>',
                   '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
                   '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R ' . ($extra // '') . '>>',
                   '<< /Length ' . length($stream) . " /Filter /FlateDecode >>\nstream\n$stream\nendstream");
    my $pdf = "%PDF-1.7\n";
    my @offsets;
    for my $i (0 .. $#objects) {
        push @offsets, length $pdf;
        $pdf .= ($i + 1) . " 0 obj\n$objects[$i]\nendobj\n";
    }
    my $xref = length $pdf;
    $pdf .= "xref\n0 " . (@objects + 1) . "\n0000000000 65535 f \n" . join('', map { sprintf "%010d 00000 n \n", $_ } @offsets);
    return $pdf . "trailer\n<< /Size " . (@objects + 1) . " /Root 1 0 R >>\nstartxref\n$xref\n%%EOF\n";
}
hostile('a PDF with arrays nested 100,000 deep', raw_pdf('BT ET', '/Deep ' . ('[' x 100_000) . (']' x 100_000)),
        qr/no text: needs a person|not a readable PDF/);
{
    my $content = "q Q\n" x 25_000_000;
    hostile('a PDF that makes the parser loop', raw_pdf($content), qr/used up its CPU time \(recovery\.parse_cpu_time, 2 s\)/, cpu => 2);
}
{
    open my $fh, '<:raw', "$FindBin::Bin/../fuzz/regressions/xls/freexl-iconv-overread.xls" or die;
    local $/;
    hostile('an xls that makes FreeXL read past its buffer', scalar <$fh>, qr/not a readable Excel 97-2003 workbook/);
}
is(value('SELECT pg_backend_pid()'), $pid, 'after every hostile file: the same backend');
is(value('SELECT pg_postmaster_start_time()'), $started, '... and the server never restarted');
is(value('SELECT count(*) FROM recovery.extractions'), $before, '... and nothing was imported');

# --- the sandbox itself ------------------------------------------------------
my $program = value(q{SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'}) . '/recovery-parse';
my $check = `$program --check-sandbox 2>&1`;
is($? >> 8, 3, 'recovery-parse --check-sandbox: stopped by the filter (status 3)');
like($check, qr/open: Permission denied/, '... opening a file refused');
like($check, qr/refused system call 41/, '... a socket stops it');

# a parser that crashes or hangs is stopped and said so (a stand-in program)
sub stand_in {
    my ($name, $script) = @_;
    my $path = "$tmp/$name";
    open my $fh, '>', $path or die;
    print $fh "#!/bin/sh\n$script\n";
    close $fh;
    chmod 0755, $path;
    return $path;
}
$db->do('SET recovery.parse_program = ' . $db->quote(stand_in('crash', 'cat >/dev/null; kill -SEGV $$')));
like(error_of(sub { extract(camt(statements => [$simple])) })->{message}, qr/the parser crashed \(signal 11: Segmentation fault\)/,
     'a parser that crashes: "the parser crashed (signal 11)"');
$db->do('SET recovery.parse_program = ' . $db->quote(stand_in('hang', 'exec sleep 60')));
$db->do('SET recovery.parse_timeout = 2');
my $t0 = time;
like(error_of(sub { extract(camt(statements => [$simple])) })->{message}, qr/took longer than recovery\.parse_timeout/,
     'a parser that hangs: stopped at recovery.parse_timeout');
ok(time - $t0 < 30, '... within its deadline');
$db->do('RESET recovery.parse_program');
$db->do('RESET recovery.parse_timeout');
is(value('SELECT pg_backend_pid()'), $pid, 'the backend is the same one still');
is(`pgrep -P $pid`, '', 'no parser process is left behind the backend');

done_testing();
