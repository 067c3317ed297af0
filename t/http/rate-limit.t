#!/usr/bin/perl
# limit_req on login (the template's guard against password guessing), on a
# stack of its own with a low rate: the excess gets a JSON 429.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http);
use Recovery::Stack;

my $stack = Recovery::Stack->new(LOGIN_RATE => '1r/m', LOGIN_BURST => 2);
my @statuses = map {
    http(POST => '/api/v1/auth/login', base => $stack->base,
         json => { email => 'nobody@example.com', password => 'guess' })
} 1 .. 5;

is_deeply([map { $_->{status} } @statuses], [401, 401, 401, 429, 429],
          'at 1 login a minute with a burst of 2, the 4th and 5th attempts get 429');
is($statuses[3]{json}{error}, 'too_many_requests', 'as JSON with a stable code');
is($statuses[3]{headers}{'retry-after'}, '1', 'and Retry-After');
like($statuses[3]{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/, 'and a request id');
is(http(GET => '/healthz', base => $stack->base)->{status}, 200, 'other locations are not limited');

done_testing();
