#!/usr/bin/perl
# Documents: the raw body with its Content-Type, checked against the bytes
# (PDF, PNG, JPEG, UTF-8 text and CSV only), stored with its SHA-256, listed
# per case, and downloaded byte for byte as an attachment with nosniff.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Digest::SHA qw(sha256_hex);
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
my $case = new_case($dbh, 5_000);
my $docs = "/api/v1/recovery-cases/$case/documents";

sub upload {
    my ($type, $bytes, %opt) = @_;
    return http(POST => $docs . '?filename=' . ($opt{filename} // 'file'), token => $opt{token} // $agent,
                body => $bytes, headers => { 'Content-Type' => $type, %{ $opt{headers} // {} } });
}

my $pdf = "%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n";
my $res = upload('application/pdf', $pdf, filename => 'statement.pdf');
is($res->{status}, 201, 'upload a PDF: 201');
is($res->{json}{sha256}, sha256_hex($pdf), 'its SHA-256 is stored');
is($res->{json}{size}, length $pdf, 'and its size');
my $id = $res->{json}{id};

# every byte value, behind a PNG signature: the download must be identical
my $png = "\x89PNG\r\n\x1a\n" . join '', map { chr } 0 .. 255;
my $png_id = upload('image/png', $png, filename => 'all-bytes.png')->{json}{id};
$res = http(GET => "/api/v1/documents/$png_id/content", token => $viewer);
is($res->{status}, 200, 'a viewer downloads a document: 200');
ok($res->{content} eq $png, 'byte for byte (all 256 byte values)');
is($res->{headers}{'content-type'}, 'image/png', 'with its content type');
is($res->{headers}{'content-disposition'}, 'attachment; filename="all-bytes.png"', 'as an attachment');
is($res->{headers}{'x-content-type-options'}, 'nosniff', 'with nosniff');

is(upload('image/jpeg', "\xff\xd8\xff\xe0rest of a jpeg")->{status}, 201, 'a JPEG: 201');
is(upload('text/csv; charset=utf-8', "date,amount\n2026-11-01,12.50\n")->{status}, 201, 'a CSV: 201');

for my $case (['image/png', $pdf, 'a PDF sent as PNG'],
              ['application/pdf', "<html>not a pdf</html>", 'HTML sent as PDF'],
              ['text/html', "<script>alert(1)</script>", 'HTML'],
              ['application/x-msdownload', "MZ\x90\x00", 'an executable'],
              ['text/plain', "nul\x00inside", 'text with a NUL byte'],
              ['text/plain', "bad \xff\xfe utf-8", 'text that is not UTF-8']) {
    my ($type, $bytes, $name) = @$case;
    $res = upload($type, $bytes);
    is($res->{status}, 400, "$name: 400");
}
is(upload('application/pdf', '')->{status}, 400, 'an empty document: 400');
is(upload('application/pdf', $pdf, token => $viewer)->{status}, 403, 'a viewer cannot upload: 403');
$res = upload('application/pdf', '%PDF-' . ('x' x (10 * 1024 * 1024 + 10)));
is($res->{status}, 413, 'over 10 MiB: 413');
is($res->{json}{error}, 'body_too_large', 'as JSON');

$res = upload('application/pdf', $pdf, filename => '..%2F..%2Fetc%2Fpasswd%22%3B%20x%3D1');
my $odd = $res->{json}{id};
is($res->{json}{filename}, '../../etc/passwd"; x=1', 'an odd filename is kept as data');
is(http(GET => "/api/v1/documents/$odd/content", token => $viewer)->{headers}{'content-disposition'},
   'attachment; filename=".._.._etc_passwd___x_1"', 'but never reaches the header as it is');

$res = http(GET => $docs, token => $viewer);
is(scalar @{ $res->{json}{items} }, 5, 'the case lists its five documents');
is(http(GET => "/api/v1/documents/$id", token => $viewer)->{json}{filename}, 'statement.pdf', 'metadata of one');
is(http(GET => '/api/v1/documents/987654321/content', token => $viewer)->{status}, 404, 'an unknown one: 404');
is(http(GET => "/api/v1/recovery-cases/987654321/documents", token => $viewer)->{json}{items}[0], undef,
   'no documents for an unknown case');

# --- multipart/form-data, as a browser's file input sends it ---------------
sub multipart {
    my ($boundary, @parts) = @_;
    my $body = '';
    for my $part (@parts) {
        my ($headers, $content) = @$part;
        $body .= "--$boundary\r\n" . join('', map { "$_\r\n" } @$headers) . "\r\n$content\r\n";
    }
    return $body . "--$boundary--\r\n";
}
my $boundary = '----recovery' . ('x' x 20);
my $form = multipart($boundary,
    [['Content-Disposition: form-data; name="note"'], 'a field before the file'],
    [['Content-Disposition: form-data; name="file"; filename="scan 7.png"', 'Content-Type: image/png'], $png]);
$res = http(POST => $docs, token => $agent, body => "preamble\r\n" . $form,
            headers => { 'Content-Type' => "multipart/form-data; boundary=\"$boundary\"" });
is($res->{status}, 201, 'a multipart upload (a field, then the file): 201');
is_deeply([$res->{json}{filename}, $res->{json}{content_type}, $res->{json}{size}], ['scan 7.png', 'image/png', length $png],
          'the file part\'s name, type and size');
ok(http(GET => "/api/v1/documents/$res->{json}{id}/content", token => $viewer)->{content} eq $png,
   'and its bytes, every one of them');
for my $case (
    [substr($form, 0, -20), "multipart/form-data; boundary=$boundary", 'without its closing boundary'],
    [multipart($boundary, [['Content-Disposition: form-data; name="note"'], 'no file']),
     "multipart/form-data; boundary=$boundary", 'without a file part'],
    [$form, 'multipart/form-data', 'without a boundary parameter'],
    [$form, 'multipart/form-data; boundary=' . ('b' x 71), 'with a boundary over 70 characters'],
    ["--$boundary\r\n" . ('X-Pad: ' . ('p' x 100) . "\r\n") x 100, "multipart/form-data; boundary=$boundary",
     'with part headers that never end'],
) {
    my ($body, $type, $name) = @$case;
    $res = http(POST => $docs, token => $agent, body => $body, headers => { 'Content-Type' => $type });
    is_deeply([$res->{status}, $res->{json}{error}], [400, 'malformed_multipart'], "a multipart body $name: 400");
}
$res = http(POST => $docs, token => $agent,
            body => multipart($boundary, [['Content-Disposition: form-data; name="file"; filename="x.png"',
                                           'Content-Type: image/png'], $pdf]),
            headers => { 'Content-Type' => "multipart/form-data; boundary=$boundary" });
is($res->{status}, 400, 'a multipart file whose bytes are not its type: 400');

my $timeline = http(GET => "/api/v1/recovery-cases/$case", token => $viewer)->{json}{timeline};
ok((grep { $_->{kind} eq 'document' && $_->{filename} eq 'statement.pdf' } @$timeline),
   'documents are in the case\'s timeline');

my $key = "doc-$$-" . time;
my $first = upload('application/pdf', $pdf, headers => { 'Idempotency-Key' => $key })->{json}{id};
$res = upload('application/pdf', $pdf, headers => { 'Idempotency-Key' => $key });
is_deeply([$res->{json}{id}, $res->{headers}{'idempotent-replayed'}], [$first, 'true'],
          'an upload retried with its Idempotency-Key is stored once');

$dbh->do('SET ROLE recovery_admin');
my ($api_key) = $dbh->selectrow_array(q{SELECT recovery.api_key_create('documents.t extractor', 'recovery_automation')});
$dbh->do('RESET ROLE');
$res = http(GET => "/api/v1/automation/documents/$id", headers => { 'X-API-Key' => $api_key });
ok($res->{status} == 200 && $res->{content} eq $pdf, 'a worker fetches the document from the automation route');

my ($audit) = $dbh->selectrow_array(q{SELECT new_row::text FROM recovery.audit_log
                                      WHERE table_name = 'documents' AND row_key = $1::text}, undef, $id);
like($audit, qr/"content":null/, 'the audit row leaves the content out (its digest is in sha256)');
unlike($audit, qr/255044462d/i, 'not even as hex');

done_testing();
