#!/usr/bin/perl
# conf/openapi.json passes Redocly's recommended rules (redocly.yaml) with
# no error and no warning: operation ids, tags, 4xx answers, no unused or
# broken references, valid schemas.
use strict;
use warnings;
use FindBin;
use Test::More;

chdir $FindBin::Bin or die $!;
local $ENV{REDOCLY_TELEMETRY} = 'off';
local $ENV{REDOCLY_SUPPRESS_UPDATE_NOTICE} = 'true';
my $out = `'$FindBin::Bin/node_modules/.bin/redocly' lint ../../conf/openapi.json --config redocly.yaml --format=summary 2>&1`;
is($?, 0, 'redocly lint passes') or diag($out);
my @problems = grep { /^\s*(error|warning)\s/ } split /\n/, $out;
ok(!@problems, 'with no error and no warning') or diag(join "\n", @problems);
like($out, qr/is valid/, 'and calls the document valid');
done_testing();
