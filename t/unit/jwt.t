#!/usr/bin/perl
# The C unit tests of ngx_recovery's base64url and JWT code (TAP), which
# make builds into build/jwt-test with AddressSanitizer.
use strict;
use warnings;
use FindBin;

my $bin = "$FindBin::Bin/../../build/jwt-test";
-x $bin or die "$bin is missing: run make\n";
exec $bin or die "cannot run $bin: $!\n";
