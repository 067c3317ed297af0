#!/usr/bin/perl
# Every answer the HTTP tests got, checked against conf/openapi.json
# (responses.mjs, TAP): runs after t/http/, whose answers scripts/test.sh
# has t/lib/Recovery/HTTP.pm record in $RECOVERY_CONTRACT_LOG.
use strict;
use warnings;
use FindBin;
chdir "$FindBin::Bin/../.." or die $!;
exec 'node', "$FindBin::Bin/responses.mjs" or die "cannot run node: $!";
