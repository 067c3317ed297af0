#!/usr/bin/perl
# The same statement as a CAMT.053 (001.08, with the fields banks fill in:
# about 1 kB an entry) and as the bank's CSV, written as streams:
#   statement-files.pl ENTRIES CAMT_FILE CSV_FILE
# Its payments match none of the demo cases, so an import applies nothing:
# the benchmark measures reading, not case_record_payment().
use strict;
use warnings;

my ($entries, $camt_file, $csv_file) = @ARGV;
open my $camt, '>', $camt_file or die "$camt_file: $!";
open my $csv, '>', $csv_file or die "$csv_file: $!";
print $csv "Date;Amount;Currency;Reference;Payer;IBAN\r\n";
print $camt qq{<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">\n}
  . "<BkToCstmrStmt><GrpHdr><MsgId>BENCH-1</MsgId><CreDtTm>2026-12-04T18:00:00+01:00</CreDtTm></GrpHdr>\n"
  . "<Stmt><Id>BENCH-STMT-1</Id><ElctrncSeqNb>1</ElctrncSeqNb><CreDtTm>2026-12-04T18:00:00+01:00</CreDtTm>\n"
  . "<Acct><Id><IBAN>DE02100100109307118603</IBAN></Id><Ccy>EUR</Ccy><Svcr><FinInstnId><BICFI>PBNKDEFFXXX</BICFI></FinInstnId></Svcr></Acct>\n";
sub cents { 100 + ($_[0] * 7919) % 500000 }
# the balances first, as CAMT puts them: opening 0.00, closing the sum
my $sum = 0;
$sum += cents($_) for 1 .. $entries;
printf $camt '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
  . "<Dt><Dt>2026-01-01</Dt></Dt></Bal>\n"
  . '<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">%d.%02d</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
  . "<Dt><Dt>2026-12-31</Dt></Dt></Bal>\n", $sum / 100, $sum % 100;
for my $n (1 .. $entries) {
    my $cents = cents($n);
    my $amount = sprintf '%d.%02d', $cents / 100, $cents % 100;
    my $day = sprintf '2026-%02d-%02d', 1 + $n % 12, 1 + $n % 28;
    my $ref = sprintf 'Invoice BENCH-%07d order %d, thank you', $n, $n * 3;
    my $payer = sprintf 'Bench Payer %d GmbH', $n % 40000;
    my $iban = sprintf 'DE%02d1001001093%08d', $n % 90 + 10, $n;
    print $csv join(';', $day, $amount =~ tr/./,/r, 'EUR', qq{"$ref"}, qq{"$payer"}, $iban), "\r\n";
    print $camt "<Ntry><NtryRef>$n</NtryRef><Amt Ccy=\"EUR\">$amount</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
      . "<BookgDt><Dt>$day</Dt></BookgDt><ValDt><Dt>$day</Dt></ValDt><AcctSvcrRef>ASR-$n</AcctSvcrRef>"
      . "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn>"
      . "<Prtry><Cd>NTRF+166</Cd><Issr>DK</Issr></Prtry></BkTxCd>"
      . "<NtryDtls><TxDtls><Refs><MsgId>MSG-$n</MsgId><AcctSvcrRef>ASR-$n</AcctSvcrRef><PmtInfId>PMT-$n</PmtInfId>"
      . "<InstrId>INSTR-$n</InstrId><EndToEndId>E2E-$n</EndToEndId><TxId>TX-$n</TxId></Refs>"
      . "<Amt Ccy=\"EUR\">$amount</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
      . "<RltdPties><Dbtr><Pty><Nm>$payer</Nm><PstlAdr><StrtNm>Hauptstrasse</StrtNm><BldgNb>$n</BldgNb>"
      . "<PstCd>10115</PstCd><TwnNm>Berlin</TwnNm><Ctry>DE</Ctry></PstlAdr></Pty></Dbtr>"
      . "<DbtrAcct><Id><IBAN>$iban</IBAN></Id></DbtrAcct>"
      . "<Cdtr><Pty><Nm>Payment Recovery Bench AG</Nm></Pty></Cdtr><CdtrAcct><Id><IBAN>DE02100100109307118603</IBAN></Id></CdtrAcct></RltdPties>"
      . "<RltdAgts><DbtrAgt><FinInstnId><BICFI>COBADEFFXXX</BICFI></FinInstnId></DbtrAgt></RltdAgts>"
      . "<Purp><Cd>GDDS</Cd></Purp><RmtInf><Ustrd>$ref</Ustrd></RmtInf>"
      . "<RltdDts><AccptncDtTm>${day}T09:00:00+01:00</AccptncDtTm></RltdDts></TxDtls></NtryDtls>"
      . "<AddtlNtryInf>SEPA-GUTSCHRIFT</AddtlNtryInf></Ntry>\n";
}
print $camt "</Stmt></BkToCstmrStmt></Document>\n";
close $camt or die;
close $csv or die;
