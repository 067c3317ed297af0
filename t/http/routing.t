#!/usr/bin/perl
# Routes come from nginx.conf: an undeclared path is 404, an undeclared
# method on a routed location is 405 with Allow; both answer in JSON.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);

my $token = login('agent@demo.example', 'agent-demo-pass');

for my $path ('/api/v1/nothing', '/api/v1/recovery-cases/abc', '/api/v1/recovery-cases/1/',
              '/api/v2/recovery-cases', '/api/v1/recovery-cases/1/transitions/x') {
    my $res = http(GET => $path, token => $token);
    is($res->{status}, 404, "GET $path: 404");
    is($res->{json}{error}, 'not_found', "GET $path: JSON with error not_found");
    like($res->{json}{request_id} // '', qr/^[0-9a-f]{32}$/, "GET $path: with the request id");
}

for my $case (['DELETE', '/api/v1/recovery-cases/1', 'GET, PATCH'],
              ['PUT', '/api/v1/recovery-cases/1', 'GET, PATCH'],
              ['GET', '/api/v1/recovery-cases/1/transitions', 'POST'],
              ['GET', '/api/v1/auth/login', 'POST'],
              ['POST', '/api/v1/auth/me', 'GET']) {
    my ($method, $path, $allow) = @$case;
    my $res = http($method => $path, token => $token,
                   $method eq 'GET' ? () : (json => {}));
    is($res->{status}, 405, "$method $path: 405");
    is($res->{headers}{allow}, $allow, "$method $path: Allow: $allow");
    is($res->{json}{error}, 'method_not_allowed', "$method $path: JSON error");
}

# a 405 is decided before authentication: it tells nothing about the data
is(http(DELETE => '/api/v1/recovery-cases/1')->{status}, 405,
   'an undeclared method without credentials: 405');
is(http(GET => '/api/v1/recovery-cases/1')->{status}, 401,
   'a declared method without credentials: 401');

my $head = http(HEAD => '/api/v1/recovery-cases/1', token => $token);
is($head->{status}, 200, 'HEAD on a GET route: 200');
ok(!length($head->{content} // ''), 'without a body');
cmp_ok($head->{headers}{'content-length'}, '>', 0, 'but with the length the GET body has');

my $res = http(GET => '/api/v1/recovery-cases/1', token => $token);
is($res->{status}, 200, 'GET a routed case: 200');
is($res->{headers}{'content-type'}, 'application/json', 'as application/json');
is($res->{json}{id}, 1, 'the case asked for');

done_testing();
