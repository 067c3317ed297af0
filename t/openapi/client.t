#!/usr/bin/perl
# A client generated from conf/openapi.json with openapi-typescript: an
# agent's day (client.ts) type-checks under tsc --strict without a cast,
# and what the document forbids (client-wrong.ts) does not.
use strict;
use warnings;
use FindBin;
use Test::More;

chdir $FindBin::Bin or die $!;
my $bin = "$FindBin::Bin/node_modules/.bin";
my @tsc = ("$bin/tsc", qw(--strict --noEmit --target es2022 --module nodenext
                          --moduleResolution nodenext --skipLibCheck));

my $generated = `'$bin/openapi-typescript' ../../conf/openapi.json -o api.d.ts 2>&1`;
is($?, 0, 'openapi-typescript generates the types of the document') or diag($generated);

my $right = `@tsc client.ts 2>&1`;
is($?, 0, "an agent's day through the generated client type-checks under --strict") or diag($right);
open my $fh, '<', 'client.ts' or die $!;
ok(!(grep { /\bas\s+(unknown|any|[A-Z]\w*)\b|<any>|\bany\b/ } <$fh>), 'without a cast or an any');

my $wrong = `@tsc client-wrong.ts 2>&1`;
isnt($?, 0, 'what the document forbids does not type-check');
open $fh, '<', 'client-wrong.ts' or die $!;
my @lines = <$fh>;
my @marked = grep { $lines[$_ - 1] =~ m{// refused} } 1 .. @lines;
my %refused = map { $_ => 1 } $wrong =~ /client-wrong\.ts\((\d+),/g;
is_deeply([sort { $a <=> $b } keys %refused], \@marked, 'refused exactly where marked: ' . join(', ', @marked))
    or diag($wrong);

unlink 'api.d.ts';
done_testing();
