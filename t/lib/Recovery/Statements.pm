package Recovery::Statements;
# Statement files for the tests, made here rather than kept as fixtures:
# CAMT.052/053/054 of any version 001.02 to 001.13, MT940 and MT942 with
# both :86: styles in three encodings, CSV, xlsx (Excel::Writer::XLSX), xls
# (Spreadsheet::WriteExcel) and PDF (PDF::API2).  A statement is a hash:
#   { id, currency, opening, closing, entries => [ entry, ... ] }
# and an entry
#   { date, amount ("200.50", positive), debit, status (BOOK, PDNG),
#     reversal, reference, rf, end_to_end, payer, iban, batch => [entries] }
# where closing defaults to what the entries add up to.
use strict;
use warnings;
use utf8;
use Exporter 'import';
use Encode qw(encode);
use File::Temp qw(tempdir);

our @EXPORT_OK = qw(camt mt940 statement_csv statement_xlsx statement_xls statement_pdf closing_of);

# exact decimal sums in hundred-thousandths, as strings, never floats
sub units { my ($d) = @_; my ($w, $f) = split /\./, $d; $f //= ''; $f .= '0' x (5 - length $f);
            return ($w * 100000 + $f) }
sub decimal { my ($u) = @_; my $s = $u < 0 ? '-' : ''; $u = abs $u;
              return sprintf('%s%d.%02d', $s, int($u / 100000), int(($u % 100000) / 1000)) }

sub closing_of {
    my ($st) = @_;
    my $sum = units($st->{opening} // '0');
    for my $e (@{ $st->{entries} }) {
        next if ($e->{status} // 'BOOK') ne 'BOOK';
        $sum += ($e->{debit} ? -1 : 1) * units($e->{amount});
    }
    return decimal($sum);
}

sub xml_escape { my ($t) = @_; $t //= ''; $t =~ s/&/&amp;/g; $t =~ s/</&lt;/g; $t =~ s/>/&gt;/g; return $t }

sub camt_tx {
    my ($v, $e, $ccy, $with_amount) = @_;
    my $x = '<TxDtls>';
    if ($with_amount) {
        $x .= $v == 2 ? "<AmtDtls><TxAmt><Amt Ccy=\"$ccy\">$e->{amount}</Amt></TxAmt></AmtDtls>"
                      : "<Amt Ccy=\"$ccy\">$e->{amount}</Amt><CdtDbtInd>" . ($e->{debit} ? 'DBIT' : 'CRDT') . '</CdtDbtInd>';
    }
    $x .= '<Refs><EndToEndId>' . xml_escape($e->{end_to_end} // 'NOTPROVIDED') . '</EndToEndId></Refs>';
    if (defined $e->{payer} || defined $e->{iban}) {
        my $name = defined $e->{payer} ? '<Nm>' . xml_escape($e->{payer}) . '</Nm>' : '';
        $x .= '<RltdPties><Dbtr>' . ($v >= 8 ? "<Pty>$name</Pty>" : $name) . '</Dbtr>';
        $x .= "<DbtrAcct><Id><IBAN>$e->{iban}</IBAN></Id></DbtrAcct>" if defined $e->{iban};
        $x .= '</RltdPties>';
    }
    if (defined $e->{reference} || defined $e->{rf}) {
        $x .= '<RmtInf>';
        $x .= '<Ustrd>' . xml_escape($e->{reference}) . '</Ustrd>' if defined $e->{reference};
        $x .= "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>$e->{rf}</Ref></CdtrRefInf></Strd>"
            if defined $e->{rf};
        $x .= '</RmtInf>';
    }
    return "$x</TxDtls>";
}

# camt(message => '053', version => 8, statements => [...])
sub camt {
    my (%o) = @_;
    my $msg = $o{message} // '053';
    my $v = $o{version} // 8;
    my $ns = sprintf 'urn:iso:std:iso:20022:tech:xsd:camt.%s.001.%02d', $msg, $v;
    my ($root, $block) = $msg eq '052' ? ('BkToCstmrAcctRpt', 'Rpt')
                       : $msg eq '054' ? ('BkToCstmrDbtCdtNtfctn', 'Ntfctn') : ('BkToCstmrStmt', 'Stmt');
    my $x = qq{<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="$ns"><$root>}
          . '<GrpHdr><MsgId>MSG1</MsgId><CreDtTm>2026-12-04T18:00:00</CreDtTm></GrpHdr>';
    for my $st (@{ $o{statements} }) {
        my $ccy = $st->{currency} // 'EUR';
        $x .= "<$block><Id>$st->{id}</Id><Acct><Id><IBAN>DE02100100109307118603</IBAN></Id></Acct>";
        if (defined $st->{opening}) {
            for my $b (['OPBD', $st->{opening}], ['CLBD', $st->{closing} // closing_of($st)]) {
                my ($amount, $sign) = $b->[1] =~ /^-(.*)/ ? ($1, 'DBIT') : ($b->[1], 'CRDT');
                $x .= "<Bal><Tp><CdOrPrtry><Cd>$b->[0]</Cd></CdOrPrtry></Tp><Amt Ccy=\"$ccy\">$amount</Amt>"
                    . "<CdtDbtInd>$sign</CdtDbtInd><Dt><Dt>2026-12-04</Dt></Dt></Bal>";
            }
        }
        for my $e (@{ $st->{entries} }) {
            my $status = $e->{status} // 'BOOK';
            my $date = $e->{datetime} ? "<DtTm>$e->{date}T09:30:00+01:00</DtTm>" : "<Dt>$e->{date}</Dt>";
            $x .= "<Ntry><Amt Ccy=\"$ccy\">$e->{amount}</Amt><CdtDbtInd>" . ($e->{debit} ? 'DBIT' : 'CRDT') . '</CdtDbtInd>';
            $x .= '<RvslInd>true</RvslInd>' if $e->{reversal};
            $x .= $v >= 9 ? "<Sts><Cd>$status</Cd></Sts>" : "<Sts>$status</Sts>";
            $x .= "<BookgDt>$date</BookgDt><ValDt><Dt>$e->{date}</Dt></ValDt>";
            $x .= '<BkTxCd><Domn><Cd>PMNT</Cd></Domn></BkTxCd><NtryDtls>';
            if ($e->{batch}) {
                $x .= '<Btch><NbOfTxs>' . scalar(@{ $e->{batch} }) . '</NbOfTxs></Btch>';
                $x .= camt_tx($v, $_, $ccy, 1) for @{ $e->{batch} };
            } else {
                $x .= camt_tx($v, $e, $ccy, 0);
            }
            $x .= '</NtryDtls></Ntry>';
        }
        $x .= "</$block>";
    }
    return encode('UTF-8', "$x</$root></Document>\n");
}

sub yymmdd { my ($d) = @_; $d =~ /^\d\d(\d\d)-(\d\d)-(\d\d)$/ or die "date $d"; return "$1$2$3" }
sub comma { my ($a) = @_; $a =~ tr/./,/; return $a }

# mt940(style => 'german' | 'slash', encoding => 'UTF-8' | 'cp1252' | 'iso-8859-1', statements => [...])
sub mt940 {
    my (%o) = @_;
    my $style = $o{style} // 'german';
    my $text = "{1:F01BANKDEFFXXXX0000000000}{2:O9401200261204BANKDEFFXXXX00000000002612041200N}{4:\r\n";
    for my $st (@{ $o{statements} }) {
        my $ccy = $st->{currency} // 'EUR';
        my $open = $st->{opening} // '0.00';
        my $close = $st->{closing} // closing_of({ %$st, opening => $open });
        my $sign = sub { $_[0] =~ /^-/ ? 'D' : 'C' };
        (my $abs_open = $open) =~ s/^-//;
        (my $abs_close = $close) =~ s/^-//;
        $text .= ":20:$st->{id}\r\n:25:10010010/9307118603\r\n:28C:00001/001\r\n";
        $text .= ':60F:' . $sign->($open) . '261203' . $ccy . comma($abs_open) . "\r\n";
        for my $e (@{ $st->{entries} }) {
            my $mark = ($e->{reversal} ? 'R' : '') . ($e->{debit} ? 'D' : 'C');
            my $d = yymmdd($e->{date});
            $text .= ":61:$d" . substr($d, 2) . $mark . comma($e->{amount}) . "NTRFNONREF//B" . int(rand 1e6) . "\r\n";
            my $info;
            if ($style eq 'german') {
                $info = '166?00GUTSCHRIFT?20EREF+' . ($e->{end_to_end} // 'NOTPROVIDED');
                my $svwz = 'SVWZ+' . ($e->{reference} // '');
                my @chunks = $svwz =~ /(.{1,27})/g;
                my $k = 21;
                $info .= sprintf('?%02d%s', $k++, $_) for @chunks;
                $info .= '?31' . $e->{iban} if defined $e->{iban};
                $info .= '?32' . $e->{payer} if defined $e->{payer};
            } else {
                $info = '/EREF/' . ($e->{end_to_end} // 'NOTPROVIDED') . '/REMI/USTD//' . ($e->{reference} // '') . '/';
                $info .= 'NAME/' . $e->{payer} . '/' if defined $e->{payer};
                $info .= 'IBAN/' . $e->{iban} . '/' if defined $e->{iban};
            }
            # lines of 65 characters, as banks wrap them
            my @lines = $info =~ /(.{1,65})/g;
            $text .= ':86:' . join("\r\n", @lines) . "\r\n";
        }
        $text .= ':62F:' . $sign->($close) . '261204' . $ccy . comma($abs_close) . "\r\n";
    }
    $text .= "-}\r\n";
    return encode($o{encoding} // 'UTF-8', $text);
}

sub statement_csv {
    my (@entries) = @_;
    my $csv = "Date;Amount;Currency;Reference;Payer;IBAN\r\n";
    for my $e (@entries) {
        my $q = sub { my $v = $_[0] // ''; $v =~ s/"/""/g; qq{"$v"} };
        $csv .= join(';', $e->{date}, ($e->{debit} ? '-' : '') . comma($e->{amount}), $e->{currency} // 'EUR',
                     $q->($e->{reference}), $q->($e->{payer}), $e->{iban} // '') . "\r\n";
    }
    return encode('UTF-8', $csv);
}

# an xlsx with a title block above the header and the dates as Excel dates
sub statement_xlsx {
    my (%o) = @_;
    require Excel::Writer::XLSX;
    my $dir = tempdir(CLEANUP => 1);
    my $book = Excel::Writer::XLSX->new("$dir/s.xlsx");
    $book->set_1904() if $o{epoch_1904};
    my $first = $book->add_worksheet('Notes');
    $first->write(0, 0, 'Exported from the bank');
    my $sheet = $book->add_worksheet('Bookings');
    my $date = $book->add_format(num_format => 'dd.mm.yyyy');
    $sheet->write(0, 0, 'Account statement');
    $sheet->write_row(2, 0, ['Booking date', 'Amount', 'Currency', 'Reference', 'Payer', 'IBAN']);
    my $r = 3;
    for my $e (@{ $o{entries} }) {
        $sheet->write_date_time($r, 0, "$e->{date}T", $date);
        $sheet->write_number($r, 1, ($e->{debit} ? '-' : '') . $e->{amount});
        $sheet->write_string($r, 2, $e->{currency} // 'EUR');
        $sheet->write_string($r, 3, $e->{reference} // '');
        $sheet->write_string($r, 4, $e->{payer} // '');
        $sheet->write_string($r, 5, $e->{iban} // '');
        $r++;
    }
    $book->close;
    open my $fh, '<:raw', "$dir/s.xlsx" or die;
    local $/;
    return scalar <$fh>;
}

# an Excel 97-2003 workbook, the same layout
sub statement_xls {
    my (%o) = @_;
    require Spreadsheet::WriteExcel;
    my $dir = tempdir(CLEANUP => 1);
    my $book = Spreadsheet::WriteExcel->new("$dir/s.xls");
    my $sheet = $book->add_worksheet('Bookings');
    my $date = $book->add_format(num_format => 'dd.mm.yyyy');
    $sheet->write_string(0, 0, 'Account statement');
    $sheet->write_row(1, 0, ['Booking date', 'Amount', 'Currency', 'Reference', 'Payer', 'IBAN']);
    my $r = 2;
    for my $e (@{ $o{entries} }) {
        $sheet->write_date_time($r, 0, "$e->{date}T", $date);
        $sheet->write_number($r, 1, ($e->{debit} ? '-' : '') . $e->{amount});
        # blank cells, not empty strings (FreeXL takes those for a crafted file)
        my @text = ($e->{currency} // 'EUR', $e->{reference}, $e->{payer}, $e->{iban});
        length($text[$_] // '') and $sheet->write_string($r, 2 + $_, $text[$_]) for 0 .. 3;
        $r++;
    }
    $book->close;
    open my $fh, '<:raw', "$dir/s.xls" or die;
    local $/;
    return scalar <$fh>;
}

# a PDF statement: a heading, then a table of bookings (pages of 40 rows),
# or free text lines (text => [...]); no text at all with scan => 1
sub statement_pdf {
    my (%o) = @_;
    require PDF::API2;
    my $pdf = PDF::API2->new;
    my $font = $pdf->corefont('Helvetica');
    my @rows = @{ $o{entries} // [] };
    my @text = @{ $o{text} // [] };
    while (1) {
        my $page = $pdf->page;
        $page->mediabox('A4');
        my $gfx = $page->graphics;
        if ($o{scan}) {
            $gfx->rect(50, 500, 300, 200);
            $gfx->fill;
            last;
        }
        my $t = $page->text;
        $t->font($font, 8);
        my $y = 800;
        my $line = sub { my ($x, $s) = @_; $t->position(0, 0); $t->translate($x, $y); $t->text($s) };
        $line->(50, $o{title} // 'Account statement DE02100100109307118603');
        $y -= 30;
        if (@text) {
            $line->(50, $_), $y -= 14 for splice @text, 0, 50;
        } else {
            my @x = (40, 100, 170, 215, 390, 470);
            # the amount column right-aligned, its heading too, as statements print them
            $line->($x[$_], ('Date', 'Amount', 'Currency', 'Reference', 'Payer', 'IBAN')[$_]) for 0, 2 .. 5;
            $t->position(0, 0);
            $t->translate($x[1] + 60, $y);
            $t->text_right('Amount');
            $y -= 14;
            for my $e (splice @rows, 0, 40) {
                (my $d = $e->{date}) =~ s/^(\d+)-(\d+)-(\d+)$/$3.$2.$1/;
                my @cells = ($d, ($e->{debit} ? '-' : '') . $e->{amount}, $e->{currency} // 'EUR',
                             $e->{reference} // '', $e->{payer} // '', $e->{iban} // '');
                $t->position(0, 0);
                $t->translate($x[1] + 60, $y);
                $t->text_right($cells[1]);
                $line->($x[$_], $cells[$_]) for grep { $_ != 1 && length $cells[$_] } 0 .. 5;
                $y -= 14;
            }
        }
        last unless @rows || @text;
    }
    return $pdf->to_string;
}

1;
