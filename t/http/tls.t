#!/usr/bin/perl
# The template's TLS server: the API over HTTPS and HTTP/2, with the
# self-signed certificate that scripts/nginx.sh makes (curl, since HTTP::Tiny
# would need IO::Socket::SSL).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(login);

open my $fh, '<', "$ENV{RECOVERY_NGINX_DIR}/tls-port" or BAIL_OUT("no tls-port: $!");
chomp(my $port = <$fh>);
my $base = "https://127.0.0.1:$port";
my $token = login('viewer@demo.example', 'viewer-demo-pass');

my $out = `curl -sk --http2 -o /dev/null -w '%{http_version} %{http_code}' $base/healthz`;
is($out, '2 200', '/healthz over TLS answers with HTTP/2');

$out = `curl -sk --http2 -H 'Authorization: Bearer $token' $base/api/v1/auth/me`;
like($out, qr/"role": "recovery_viewer"/, 'the API answers over HTTP/2 with TLS');

$out = `curl -sk --http1.1 --tlsv1.3 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $token' $base/api/v1/recovery-cases/1`;
is($out, '200', 'and over HTTP/1.1 with TLS 1.3');

$out = `curl -sk --tls-max 1.1 -o /dev/null -w '%{http_code}' $base/healthz 2>/dev/null`;
is($out, '000', 'TLS 1.1 is refused');

done_testing();
