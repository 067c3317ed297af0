#!/usr/bin/perl
# Hostile requests, generated from a fixed seed: random bytes, deep and wide
# JSON, odd encodings and headers, on every kind of route.  Every answer is
# a client error in JSON (never a 5xx), and no worker crashes.  make test
# runs this a second time with the module under AddressSanitizer.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login json_text);

srand(20261125);
my $agent = login('agent@demo.example', 'agent-demo-pass');

sub junk { my ($n) = @_; join '', map { chr int rand 256 } 1 .. $n }
sub junk_ascii { my ($n) = @_; join '', map { chr(32 + int rand 95) } 1 .. $n }

my @bodies = (
    sub { junk(1 + int rand 300) },
    sub { '{' x (1 + int rand 100) },
    sub { '[' x 40 . ']' x 40 },
    sub { '{"amount":' . ('9' x (1 + int rand 60)) . '}' },
    sub { '{"amount":-' . ('9' x 30) . ',"currency":"EUR"}' },
    sub { '{"amount":1e999,"currency":"EUR"}' },
    sub { '{"event":"' . ('\\u0000' x 3) . '","expected_version":1}' },
    sub { '{"event":"\\ud800","expected_version":1}' },
    sub { '{"body":"' . ('x' x 20000) . '"}' },
    sub { json_text({ map { ("k$_" => $_) } 1 .. 200 }) },
    sub { json_text({ details => { reason => junk_ascii(50) }, event => junk_ascii(10), expected_version => 'x' }) },
    sub { '{"amount": 100, "currency": "EUR"' . (' ' x 1000) . '}' . junk(5) },
    sub { "\xef\xbb\xbf" . '{"amount":1,"currency":"EUR"}' },
    sub { '' },
);
my @paths = ('/api/v1/recovery-cases/1/payments', '/api/v1/recovery-cases/1/transitions',
             '/api/v1/recovery-cases/1/notes', '/api/v1/customers', '/api/v1/payments',
             '/api/v1/automation/tasks/schedule', '/api/v1/auth/login', '/api/v1/dunning-policies',
             '/api/v1/extractions', '/api/v1/extractions/statements', '/api/v1/bank-mappings');
my @queries = ('?state=%00', '?limit=-1', '?limit=99999999999999999999', '?cursor=' . ('A' x 500),
               '?cursor=%ff%fe', '?sort=' . ('-' x 50), '?q=' . ('%25' x 100), '?' . ('a=1&' x 200),
               '?min_balance=1e9', '?state=open&state=closed');
my @headers = (
    {}, { Authorization => 'Bearer ' . junk_ascii(100) }, { Authorization => 'Bearer a.b.c' },
    { Authorization => 'Bearer ' . ('x' x 5000) }, { 'X-API-Key' => junk_ascii(300) },
    { 'X-Request-Id' => junk_ascii(200) }, { 'Idempotency-Key' => junk_ascii(250) },
);

my (%statuses, @bad);
for my $round (1 .. 300) {
    my $path = $paths[rand @paths];
    my $body = $bodies[rand @bodies]->();
    my %h = %{ $headers[rand @headers] };
    my $token = (exists $h{Authorization} || exists $h{'X-API-Key'}) ? undef : $agent;
    my $type = (rand) < 0.8 ? 'application/json' : junk_ascii(20);
    my $res = http(POST => $path, token => $token, body => $body,
                   headers => { 'Content-Type' => $type, %h });
    $statuses{$res->{status}}++;
    push @bad, "POST $path -> $res->{status}" if $res->{status} >= 500 || !$res->{json};

    my $query = $queries[rand @queries];
    $res = http(GET => "/api/v1/recovery-cases$query", token => $agent);
    $statuses{$res->{status}}++;
    push @bad, "GET $query -> $res->{status}" if $res->{status} >= 500 || !$res->{json};
}

is_deeply(\@bad, [], '600 hostile requests: every answer is JSON and none is a 5xx')
    or diag explain [@bad[0 .. ($#bad < 9 ? $#bad : 9)]];
note('statuses: ' . join ', ', map { "$_ x $statuses{$_}" } sort keys %statuses);
cmp_ok(scalar(grep { $_ >= 400 && $_ < 500 } keys %statuses), '>=', 3,
       'refused for several reasons (400, 401, 415)');

my $log = do { local (@ARGV, $/) = "$ENV{RECOVERY_NGINX_DIR}/error.log"; <> } // '';
unlike($log, qr/exited on signal/, 'no nginx worker crashed');
is(http(GET => '/api/v1/recovery-cases/1', token => $agent)->{status}, 200, 'and the gateway still serves');

done_testing();
