#!/usr/bin/perl
# The OpenAPI document served at /api/v1/openapi.json describes exactly the
# routes of the nginx configuration: every path and method, every query
# parameter and every body field, and nothing that is not configured.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http);

my $res = http(GET => '/api/v1/openapi.json');
is($res->{status}, 200, '/api/v1/openapi.json: 200 without credentials');
my $doc = $res->{json} or BAIL_OUT('the OpenAPI document is not JSON');
is($doc->{openapi}, '3.1.0', 'OpenAPI 3.1');

# routes from the rendered nginx.conf: location, then its recovery_* lines
open my $fh, '<', "$ENV{RECOVERY_NGINX_DIR}/nginx.conf" or die $!;
my $conf = do { local $/; <$fh> };
$conf =~ s/#[^\n]*//g;
my %configured;
while ($conf =~ /location\s+(=|~)\s+(\S+)\s*\{(.*?)\}/sg) {
    my ($kind, $pattern, $block) = ($1, $2, $3);
    my $path = $pattern;
    if ($kind eq '~') {
        $path =~ s/^\^//;
        $path =~ s/\$$//;
        $path =~ s/\(\?<(\w+)>[^)]*\)/{$1}/g;
    }
    while ($block =~ /recovery_(call|login|events_ticket|events)\s+([^;]+);/g) {
        my ($directive, $args) = ($1, $2);
        my @words = split ' ', $args;
        my $method = { login => 'post', events_ticket => 'post', events => 'get' }->{$directive} // lc shift @words;
        shift @words;    # the function
        my (%query, %body);
        $query{ticket} = 1 if $directive eq 'events';    # the stream's credentials
        for (@words) {
            $query{$1} = 1 if /^\w+=\?(\w+)$/;
            $query{filename} = 1 if /^\w+=%filename$/;
            $body{$1} = 1 if /^\w+=\@(\w+)$/;
        }
        $configured{"$method $path"} = { query => \%query, body => \%body };
    }
}
cmp_ok(scalar keys %configured, '>=', 15, 'routes read from nginx.conf (' . scalar(keys %configured) . ')');

my %documented;
for my $path (keys %{ $doc->{paths} }) {
    next unless $path =~ m{^/api/v1/} && $path ne '/api/v1/openapi.json';    # nginx's own, not routes
    for my $method (grep { /^(get|post|put|patch|delete)$/ } keys %{ $doc->{paths}{$path} }) {
        my $op = $doc->{paths}{$path}{$method};
        my %query = map { $_->{name} => 1 } grep { $_->{in} eq 'query' } @{ $op->{parameters} // [] };
        my $schema = $op->{requestBody} ? $op->{requestBody}{content}{'application/json'}{schema} : {};
        $documented{"$method $path"} = { query => \%query, body => { map { $_ => 1 } keys %{ $schema->{properties} // {} } } };
    }
}

is_deeply([sort keys %documented], [sort keys %configured], 'the same paths and methods')
    or diag explain { missing => [grep { !$documented{$_} } sort keys %configured],
                      not_configured => [grep { !$configured{$_} } sort keys %documented] };
for my $route (sort keys %configured) {
    next unless $documented{$route};
    is_deeply([sort keys %{ $documented{$route}{query} }], [sort keys %{ $configured{$route}{query} }],
              "$route: the same query parameters");
    is_deeply([sort keys %{ $documented{$route}{body} }], [sort keys %{ $configured{$route}{body} }],
              "$route: the same body fields");
}

# every $ref resolves
my @refs = (do { my $text = $res->{content}; $text =~ /"\$ref"\s*:\s*"([^"]+)"/g });
my @broken = grep {
    my @parts = split m{/}, substr($_, 2);
    my $node = $doc;
    $node = ref $node eq 'HASH' ? $node->{$_} : undef for @parts;
    !defined $node;
} @refs;
is_deeply(\@broken, [], 'every $ref points to a definition');

done_testing();
