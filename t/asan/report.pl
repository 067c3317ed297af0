#!/usr/bin/perl
# Run last by scripts/test.sh, after the HTTP tests ran against nginx with
# the module built with AddressSanitizer: stop nginx, so that LeakSanitizer
# checks every process as it exits, then read the reports.  Any invalid
# memory access fails; so does any leak whose stack passes through the
# module or the libraries it calls (nginx leaks 72 bytes of its own at exit,
# the same whatever the requests).
use strict;
use warnings;
use FindBin;
use Test::More;

my $dir = $ENV{RECOVERY_NGINX_DIR} or BAIL_OUT('RECOVERY_NGINX_DIR is not set');
my $logs = $ENV{RECOVERY_ASAN_LOGS} or BAIL_OUT('RECOVERY_ASAN_LOGS is not set');

open my $pidfile, '<', "$dir/nginx.pid" or BAIL_OUT("nginx is not running in $dir");
my $pid = <$pidfile>;
chomp $pid;
open my $maps, '<', "/proc/$pid/maps" or BAIL_OUT("cannot read /proc/$pid/maps");
ok((grep { /libasan/ } <$maps>), 'nginx ran with AddressSanitizer loaded');

system("$FindBin::Bin/../../scripts/nginx.sh", 'stop', $dir) == 0 or BAIL_OUT('cannot stop nginx');

my (@errors, @ours, $theirs);
for my $log (glob "$logs/asan.*") {
    open my $fh, '<', $log or die "$log: $!";
    local $/ = '';    # one report block per paragraph
    while (my $block = <$fh>) {
        push @errors, $block if $block =~ /ERROR: AddressSanitizer/;
        next unless $block =~ /^(Direct|Indirect) leak of (\d+) byte/;
        if ($block =~ /ngx_http_recovery|libpq|libjson-c|libcrypto|libssl/) {
            push @ours, $block;
        } else {
            $theirs += $2;
        }
    }
}

is(scalar @errors, 0, 'no invalid memory access in any nginx process') or diag @errors;
is(scalar @ours, 0, 'no leak through the module, libpq, json-c or OpenSSL') or diag @ours;
note(sprintf 'nginx\'s own leaks at exit: %d bytes in %d reports', $theirs // 0,
     scalar(() = glob "$logs/asan.*"));

done_testing();
