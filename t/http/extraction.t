#!/usr/bin/perl
# Extraction and reconciliation over HTTP: an SMS and a statement (raw CSV
# body) read and applied, the review queue with confirm and reject, bank
# mappings for managers, and malformed input as a JSON 400 that names the
# line; each with who may use it.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Encode qw(encode);
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $manager = login('manager@demo.example', 'manager-demo-pass');
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
my $tag = "h$$" . time;

sub case_balance {
    return scalar $dbh->selectrow_array('SELECT balance FROM recovery.recovery_cases WHERE id = $1', undef, $_[0]);
}

# an SMS that pays a case by its reference
my $case = new_case($dbh);
my ($balance, $currency) = $dbh->selectrow_array('SELECT balance, currency FROM recovery.recovery_cases WHERE id = $1',
                                                 undef, $case);
my $amount = sprintf '%d.%02d', $balance / 100, $balance % 100;
my $res = http(POST => '/api/v1/extractions', token => $agent,
               json => { source => 'sms', content => "Paid $currency $amount for RC-$case, thanks ($tag)" });
is($res->{status}, 200, 'an agent sends an SMS to be read: 200');
is($res->{json}{lines}, 1, 'one payment found');
is($res->{json}{by_status}{applied}, 1, 'and applied');
is(case_balance($case), 0, 'the case is paid');
is(http(POST => '/api/v1/extractions', token => $viewer,
        json => { source => 'sms', content => 'paid' })->{status}, 403, 'a viewer cannot: 403');
$res = http(POST => '/api/v1/extractions', token => $agent, json => { source => 'fax', content => 'x' });
is($res->{status}, 400, 'an unknown source: 400');

# a statement as the raw body, with a line for review
my $other = new_case($dbh);
my ($name) = $dbh->selectrow_array(q{SELECT cu.name FROM recovery.customers cu
                                      JOIN recovery.recovery_cases c ON c.customer_id = cu.id WHERE c.id = $1},
                                   undef, $other);
my $unique_name = "Payer $tag";
$dbh->do(q{UPDATE recovery.customers SET name = $2 WHERE id = (SELECT customer_id FROM recovery.recovery_cases WHERE id = $1)},
         undef, $other, $unique_name);
my $csv = encode('cp1252', "Buchungstag;Betrag;Währung;Verwendungszweck;Auftraggeber\r\n"
                         . "25.11.2026;1,00;EUR;Teilzahlung $tag;$unique_name\r\n");
$res = http(POST => '/api/v1/extractions/statements', token => $agent,
            headers => { 'Content-Type' => 'text/csv' }, body => $csv);
is($res->{status}, 200, 'a Windows-1252 statement as the raw body: 200');
is($res->{json}{by_status}{review}, 1, 'the payer-name match waits for review');
my $extraction = $res->{json}{id};
$res = http(GET => "/api/v1/extractions/$extraction", token => $viewer);
is($res->{status}, 200, 'the extraction can be read');
my $line = $res->{json}{lines}[0];
is($line->{payer}, $unique_name, 'with its lines');
is($line->{reason}, 'payer name', 'and why each was matched');

$res = http(GET => '/api/v1/reconciliation?status=review&limit=200', token => $viewer);
ok((grep { $_->{id} == $line->{id} } @{ $res->{json}{items} }), 'the review queue lists it');
$res = http(GET => "/api/v1/reconciliation?extraction_id=$extraction", token => $viewer);
is_deeply([map { $_->{extraction_id} } @{ $res->{json}{items} }], [$extraction], 'and lists one extraction\'s lines alone');
$res = http(GET => '/api/v1/reconciliation?status=unmatched', token => $viewer);
is($res->{status}, 400, 'lines that matched no case, of all extractions at once: 400');
like($res->{json}{hint}, qr/extraction_id/, 'with a hint to name the extraction');
is(http(GET => '/api/v1/reconciliation?status=unmatched&extraction_id=999999999', token => $viewer)->{status}, 404,
   'of an extraction that does not exist: 404');
is(http(POST => "/api/v1/reconciliation/$line->{id}/confirm", token => $viewer, json => {})->{status}, 403,
   'a viewer cannot confirm: 403');
$res = http(POST => "/api/v1/reconciliation/$line->{id}/confirm", token => $agent, json => {});
is($res->{status}, 200, 'an agent confirms it: 200');
is($res->{json}{status}, 'confirmed', 'confirmed');
is($res->{json}{decided_by}, 'agent@demo.example', 'by whom');
is(http(POST => "/api/v1/reconciliation/$line->{id}/reject", token => $agent, json => { reason => 'x' })->{status}, 409,
   'a decided line cannot be rejected: 409');

# malformed input
$res = http(POST => '/api/v1/extractions/statements', token => $agent,
            headers => { 'Content-Type' => 'text/csv' }, body => "amount,reference\n\"never closed,1\n");
is($res->{status}, 400, 'an unterminated quote: 400');
like($res->{json}{message}, qr/never closed/, 'saying what is wrong');
like($res->{json}{detail} // '', qr/line 2/, 'and on which line');
is(http(POST => '/api/v1/extractions/statements?mapping=no-such-bank', token => $agent,
        headers => { 'Content-Type' => 'text/csv' }, body => "amount,reference\n1,x\n")->{status}, 404,
   'an unknown bank mapping: 404');

# bank mappings
my %mapping = (name => "bank-$tag", mapping => { amount => 'Betrag', reference => 'Zweck', delimiter => ';', decimal => ',' });
is(http(POST => '/api/v1/bank-mappings', token => $agent, json => \%mapping)->{status}, 403, 'an agent cannot save a mapping: 403');
is(http(POST => '/api/v1/bank-mappings', token => $manager, json => \%mapping)->{status}, 200, 'a manager can: 200');
$res = http(POST => '/api/v1/bank-mappings', token => $manager,
            json => { name => "bad-$tag", mapping => { amount => 'A', colour => 'blue' } });
is($res->{status}, 400, 'a mapping with an unknown key: 400');
like($res->{json}{message}, qr/colour/, 'naming it');
$res = http(GET => '/api/v1/bank-mappings', token => $viewer);
ok((grep { $_->{name} eq "bank-$tag" } @{ $res->{json}{items} }), 'everyone reads the mappings');

done_testing();
