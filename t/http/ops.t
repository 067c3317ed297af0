#!/usr/bin/perl
# Operations: liveness, readiness, and Prometheus metrics counted in shared
# memory across workers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);

my $res = http(GET => '/healthz');
is($res->{status}, 200, '/healthz: 200');
is($res->{json}{status}, 'alive', 'alive');

$res = http(GET => '/readyz');
is($res->{status}, 200, '/readyz: 200 while the database is reachable');
cmp_ok($res->{json}{connections}, '>=', 1, 'with the connections of the answering worker');

sub metric {
    my ($text, $name, $labels) = @_;
    my ($value) = $text =~ /^\Q$name\E\{\Q$labels\E\} (\S+)$/m;
    return $value // 0;
}

my $before = http(GET => '/metrics')->{content};
my $agent = login('agent@demo.example', 'agent-demo-pass');
http(GET => '/api/v1/recovery-cases/1', token => $agent) for 1 .. 20;
http(GET => '/api/v1/recovery-cases/987654321', token => $agent) for 1 .. 3;
http(DELETE => '/api/v1/recovery-cases/1');
my $route = 'route="GET recovery.api_case_get"';

# a request is counted in its log phase, just after its response went out:
# read the metrics until the last requests are in (or a second has passed)
my $after;
for (1 .. 20) {
    $res = http(GET => '/metrics');
    $after = $res->{content};
    last if metric($after, 'recovery_http_requests_total', "$route,status=\"404\"")
            - metric($before, 'recovery_http_requests_total', "$route,status=\"404\"") >= 3
         && metric($after, 'recovery_http_requests_total', 'route="none",status="405"') >= 1;
    select(undef, undef, undef, 0.05);
}
is($res->{status}, 200, '/metrics: 200');
like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'in the Prometheus text format');

is(metric($after, 'recovery_http_requests_total', "$route,status=\"200\"")
   - metric($before, 'recovery_http_requests_total', "$route,status=\"200\""),
   20, 'requests are counted by route and status (20 x 200), across workers');
is(metric($after, 'recovery_http_requests_total', "$route,status=\"404\"")
   - metric($before, 'recovery_http_requests_total', "$route,status=\"404\""),
   3, 'and 3 x 404');
cmp_ok(metric($after, 'recovery_http_requests_total', 'route="none",status="405"'), '>=', 1,
       'a request that matched no route is counted as route "none"');
cmp_ok(metric($after, 'recovery_http_request_duration_seconds_count', $route), '>=', 23,
       'the latency histogram counts them');
my @le = $after =~ /^recovery_http_request_duration_seconds_bucket\{\Q$route\E,le="([^"]+)"\}/mg;
is("@le", '0.001 0.002 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1.0 2.5 5.0 10.0 +Inf',
   'its buckets are labelled as Prometheus\' client libraries label them');
is(metric($after, 'recovery_http_request_duration_seconds_bucket', "$route,le=\"+Inf\""),
   metric($after, 'recovery_http_request_duration_seconds_count', $route),
   'its +Inf bucket holds every request');
like($after, qr/^recovery_pool_connections\{worker="\d+",state="idle"\} \d+$/m, 'pool connections by worker and state');
like($after, qr/^recovery_pool_queue_length\{worker="\d+"\} \d+$/m, 'the queue length by worker');
like($after, qr/^recovery_database_errors_total \d+$/m, 'database errors');

done_testing();
