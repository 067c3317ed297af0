#!/usr/bin/perl
# limit_req on login (the template's guard against password guessing) and
# on the rest of the API, on a stack of its own with low rates: the excess
# gets a JSON 429.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http);
use Recovery::Stack;

my $stack = Recovery::Stack->new(LOGIN_RATE => '1r/m', LOGIN_BURST => 2,
                                 API_RATE => '1r/m', API_BURST => 5);
my @statuses = map {
    http(POST => '/api/v1/auth/login', base => $stack->base,
         json => { email => 'nobody@example.com', password => 'guess' })
} 1 .. 5;

is_deeply([map { $_->{status} } @statuses], [401, 401, 401, 429, 429],
          'at 1 login a minute with a burst of 2, the 4th and 5th attempts get 429');
is($statuses[3]{json}{error}, 'too_many_requests', 'as JSON with a stable code');
is($statuses[3]{headers}{'retry-after'}, '1', 'and Retry-After');
like($statuses[3]{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/, 'and a request id');
my @api = map { http(GET => '/api/v1/auth/me', base => $stack->base)->{status} } 1 .. 8;
is_deeply(\@api, [401, 401, 401, 401, 401, 401, 429, 429],
          'the rest of the API at 1 a minute with a burst of 5: the 7th and 8th get 429');

done_testing();
