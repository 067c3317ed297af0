#!/usr/bin/perl
# Statements in every format through the REST doors: the raw body of
# POST /api/v1/extractions/statements (the bytes tell the format, or
# ?format= says it), a preview that keeps nothing, hostile files as precise
# JSON errors, and a PDF remittance advice uploaded as a case document and
# read by an automation task.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case wait_for);
use Recovery::Statements qw(camt mt940 statement_pdf);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
my $day = sprintf '2025-%02d-%02d', 1 + $$ % 12, 1 + ($$ >> 4) % 28;    # dates of this run only

sub post_statement {
    my ($bytes, $query, %opt) = @_;
    return http(POST => '/api/v1/extractions/statements' . ($query // ''), token => $opt{token} // $agent,
                body => $bytes, headers => { 'Content-Type' => $opt{type} // 'application/octet-stream' });
}
sub count_extractions { scalar $dbh->selectrow_array('SELECT count(*) FROM recovery.extractions') }
sub balance { scalar $dbh->selectrow_array('SELECT balance FROM recovery.recovery_cases WHERE id = $1', undef, $_[0]) }

my $case = new_case($dbh, 4_321);
my $statement = { id => 'HTTP-1', opening => '10.00', entries => [
    { date => $day, amount => '43.21', reference => sprintf('RC-%06d', $case), payer => 'HTTP Payer' },
    { date => $day, amount => '1.00', debit => 1, reference => 'fee' } ] };

# --- a preview first: the lines and what would happen, nothing kept ----------
my $before = count_extractions();
my $res = post_statement(camt(statements => [$statement]), '?preview=true', type => 'application/xml');
is($res->{status}, 200, 'a CAMT statement previewed: 200');
is($res->{json}{format}, 'camt.053.001.08', '... its format and version read from the bytes');
ok($res->{json}{preview}, '... a preview');
is_deeply([ map { [$_->{amount}, $_->{status}] } @{ $res->{json}{lines_found} } ], [[4321, 'applied'], [-100, 'ignored']],
          '... its lines, exact in cents, with what would become of them');
is($res->{json}{lines_found}[0]{case_id}, $case, '... and the case the payment goes to');
is(count_extractions(), $before, 'nothing was kept');
is(balance($case), 4_321, '... the case still owes it all');

# --- then the import ------------------------------------------------------------
$res = post_statement(camt(statements => [$statement]), undef, type => 'application/xml');
is($res->{status}, 200, 'the same statement imported: 200');
is($res->{json}{by_status}{applied}, 1, '... its payment applied');
is($res->{json}{statement}{statements}, 1, '... one statement, balanced');
is($res->{json}{statement}{unbalanced}, 0, '... (opening + entries = closing)');
is(balance($case), 0, 'the case is paid');
$res = post_statement(mt940(statements => [$statement]), '?format=mt940');
is($res->{json}{format}, 'mt940', 'the same statement as MT940 with ?format=mt940');
is($res->{json}{duplicates}, 2, '... adds nothing: both lines were imported from the CAMT');

# --- errors, as JSON ------------------------------------------------------------
$res = post_statement(camt(statements => [$statement]), '?format=pdf');
is($res->{status}, 400, 'a CAMT sent as ?format=pdf: 400');
like($res->{json}{message} // '', qr/cannot read the pdf statement: not a readable PDF/, '... saying why');
$res = post_statement('x', '?format=fax');
is($res->{status}, 400, 'an unknown ?format=: 400');
like($res->{json}{message} // '', qr/format is csv, camt, mt940, xlsx, xls or pdf/, '... naming the formats');
my $laughs = qq{<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n}
    . q{<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><x>&b;</x></Document>};
$res = post_statement($laughs, undef, type => 'application/xml');
is($res->{status}, 400, 'a CAMT with entities: 400');
like($res->{json}{message} // '', qr/declares a DTD/, '... "declares a DTD"');
$res = post_statement(statement_pdf(scan => 1));
is($res->{status}, 400, 'a scanned PDF: 400');
like($res->{json}{message} // '', qr/no text: needs a person/, '... "no text: needs a person"');
is(post_statement(camt(statements => [$statement]), undef, token => $viewer)->{status}, 403,
   'a viewer cannot import: 403');
$res = http(GET => '/api/v1/recovery-cases/' . $case, token => $agent);
is($res->{status}, 200, 'the gateway answers on after all of them');

# --- a PDF remittance advice, uploaded to a case, read by an automation task ----
my $pdf_case = new_case($dbh, 98_765);
my $advice = statement_pdf(title => 'Remittance advice', text => [
    'Dear collections team,', sprintf('we paid EUR 987.65 for RC-%06d on %s.', $pdf_case, $day), 'Kind regards' ]);
$res = http(POST => "/api/v1/recovery-cases/$pdf_case/documents?filename=advice.pdf", token => $agent,
            body => $advice, headers => { 'Content-Type' => 'application/pdf' });
is($res->{status}, 201, 'a PDF remittance advice uploaded to its case: 201');
my ($key) = $dbh->selectrow_array(q{SELECT recovery.api_key_create('statements.t worker', 'recovery_automation')});
$res = http(POST => '/api/v1/automation/extractions', headers => { 'X-API-Key' => $key },
            json => { source => 'document', document_id => $res->{json}{id} });
is($res->{status}, 201, 'an automation client schedules its extraction: 201');
my $task = $res->{json}{id};
# pg_cron runs the job every minute; the test runs it now, as pg_cron would
$dbh->do('SELECT recovery.perform_extraction_tasks()');
my $done = wait_for('the extraction task to finish', sub {
    my ($state) = $dbh->selectrow_array('SELECT state FROM recovery.tasks WHERE id = $1', undef, $task);
    $state && $state ne 'scheduled' ? $state : undef }, 30);
is($done, 'done', 'the task is done');
my ($result) = $dbh->selectrow_array(q{SELECT result ->> 'format' FROM recovery.tasks WHERE id = $1}, undef, $task);
is($result, 'pdf (text)', '... it read the PDF\'s text');
is(balance($pdf_case), 0, '... and the EUR 987.65 it names went to the case');

done_testing();
