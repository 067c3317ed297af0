#!/usr/bin/perl
# Runs the web app's end-to-end test (webapp.mjs, TAP) in Debian's Chromium.
use strict;
use warnings;
use FindBin;
chdir "$FindBin::Bin/../.." or die $!;
exec 'node', "$FindBin::Bin/webapp.mjs" or die "cannot run node: $!";
