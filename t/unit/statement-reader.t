#!/usr/bin/perl
# The statement reader's thread (pg_recovery/statement_reader.c) under
# ThreadSanitizer: make builds build/statement-reader-test.
use strict;
use warnings;
use FindBin;

my $bin = "$FindBin::Bin/../../build/statement-reader-test";
-x $bin or die "$bin is missing: run make\n";
$ENV{TSAN_OPTIONS} = 'halt_on_error=1 abort_on_error=1';
exec $bin or die "cannot run $bin: $!\n";
