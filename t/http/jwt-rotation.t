# The gateway's HS256 secret rotated with two keys valid at once, on an
# nginx of this test's own: tokens signed before the rotation are taken
# until the previous secret is dropped, tokens signed after name the new
# key (kid), and a token of the dropped secret is refused.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP qw(decode_json);
use MIME::Base64 qw(decode_base64url);
use Recovery::HTTP qw(http);
use Recovery::Stack;

my $root = "$FindBin::Bin/../..";
my $stack = Recovery::Stack->new(WORKERS => 1);
my $base = $stack->base;
my $dir = $stack->nginx_dir;

my $dbh = $stack->dbh;
$dbh->do(q{SELECT recovery.user_create('rotation@jwt.test', 'JWT Rotation', 'recovery_agent', 'jwt-rotation-pass')});

sub login {
    my $res = http(POST => '/api/v1/auth/login', base => $base,
                   json => { email => 'rotation@jwt.test', password => 'jwt-rotation-pass' });
    die "login: $res->{status} $res->{content}" unless $res->{status} == 200;
    return $res->{json}{token};
}
sub kid { decode_json(decode_base64url((split /\./, $_[0])[0]))->{kid} }
sub me { http(GET => '/api/v1/auth/me', token => $_[0], base => $base)->{status} }
sub restart_nginx {
    system("$root/scripts/nginx.sh", 'stop', $dir) == 0 or die 'nginx stop';
    system("$root/scripts/nginx.sh", 'start', $dir, $stack->{http_port}, $stack->{pg_port}) == 0
        or die 'nginx start';
}

my $before = login();
like(kid($before), qr/^[0-9a-f]{16}$/, 'a token minted at login names its key (kid)');
is(me($before), 200, 'and is taken');

# the rotation: the secret moves to jwt-secret.previous, a new one signs
rename "$dir/jwt-secret", "$dir/jwt-secret.previous" or die "rename: $!";
system("head -c 48 /dev/urandom | base64 -w0 > '$dir/jwt-secret' && chmod 600 '$dir/jwt-secret'") == 0 or die;
restart_nginx();
is(me($before), 200, 'during the rotation, a token of the previous secret is still taken');
my $after = login();
isnt(kid($after), kid($before), 'a new token names the new key');
is(me($after), 200, 'and is taken');

# the rotation ends: the previous secret goes
unlink "$dir/jwt-secret.previous" or die "unlink: $!";
restart_nginx();
is(me($before), 401, 'once the previous secret is gone, its tokens are refused');
is(me($after), 200, 'and the new ones are taken');

done_testing();
