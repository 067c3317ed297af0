#!/usr/bin/perl
# The gateway's authentication matrix: who gets in with what, and what every
# refusal looks like (401 with WWW-Authenticate, 403 for too little privilege).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Temp qw(tempdir);
use JSON::PP ();
use Test::More;
use Time::HiRes ();
use Recovery::HTTP qw(http login jwt claims json_text);
use Recovery::Test qw(connect_db);

my $me = '/api/v1/auth/me';

sub refused {
    my ($res, $name, $description) = @_;
    is($res->{status}, 401, "$name: 401");
    like($res->{headers}{'www-authenticate'} // '', qr/^Bearer realm="recovery"/,
         "$name: WWW-Authenticate names the Bearer scheme");
    like($res->{headers}{'www-authenticate'} // '', qr/error_description="\Q$description\E"/,
         "$name: says why ($description)") if $description;
    ok($res->{json} && $res->{json}{error} && $res->{json}{request_id},
       "$name: JSON error with a code and the request id");
}

# --- no or malformed credentials ------------------------------------------
my $res = http(GET => $me);
refused($res, 'no credentials');
unlike($res->{headers}{'www-authenticate'}, qr/error=/,
       'no credentials: no error code (RFC 6750 3.1)');
is($res->{json}{error}, 'authentication_required', 'no credentials: authentication_required');

refused(http(GET => $me, headers => { Authorization => 'Basic YWdlbnQ6cGFzcw==' }),
        'Basic scheme', 'use the Bearer scheme with a token or an API key');

# --- login ------------------------------------------------------------------
$res = http(POST => '/api/v1/auth/login',
            json => { email => 'agent@demo.example', password => 'agent-demo-pass' });
is($res->{status}, 200, 'login with the right password: 200');
is($res->{headers}{'cache-control'}, 'no-store', 'login: the token is not cacheable');
is($res->{json}{token_type}, 'Bearer', 'login: a Bearer token');
is($res->{json}{expires_in}, 900, 'login: expires in 15 minutes (recovery_jwt_ttl)');
is($res->{json}{user}{role}, 'recovery_agent', 'login: returns the user and role');
my $token = $res->{json}{token};

for my $case (['wrong password', 'agent@demo.example', 'nope'],
              ['unknown user', 'nobody@demo.example', 'agent-demo-pass'],
              ['missing password', 'agent@demo.example', undef]) {
    my ($name, $email, $password) = @$case;
    $res = http(POST => '/api/v1/auth/login', json => { email => $email, password => $password });
    is($res->{status}, 401, "login, $name: 401");
    is($res->{json}{message}, 'invalid email or password',
       "login, $name: the same message whatever was wrong");
}

# --- tokens -----------------------------------------------------------------
$res = http(GET => $me, token => $token);
is($res->{status}, 200, 'a token from login: 200');
is($res->{json}{role}, 'recovery_agent', 'the request runs as the token\'s role');
is($res->{json}{user_id}, 3, 'and as its user');
is($res->{json}{authenticated_by}, 'token', 'authenticated by token');
is($res->{json}{read_only}, JSON::PP::true, 'a GET runs in a read-only transaction');

is(http(GET => $me, token => jwt(claims()))->{status}, 200, 'a token minted with the secret: 200');

# change the first character of the signature (the last one also carries
# padding bits, which base64url decoding checks first)
(my $bad_signature = $token) =~ s/\.(.)([^.]*)$/'.' . ($1 eq 'A' ? 'B' : 'A') . $2/e;
refused(http(GET => $me, token => $bad_signature), 'bad signature', 'token signature is invalid');
refused(http(GET => $me, token => jwt(claims(), secret => 'another-secret-of-32-bytes-or-more!!')),
        'another secret', 'token signature is invalid');
refused(http(GET => $me, token => jwt(claims(), header => { alg => 'none' }, unsigned => 1)),
        'alg none', 'token algorithm is not allowed');
refused(http(GET => $me, token => jwt(claims(), header => { alg => 'RS256' })),
        'RS256 not in the allowlist', 'token algorithm is not allowed');

# The classic confusion: HS256 keyed with the RSA public key of the issuer.
my $tmp = tempdir(CLEANUP => 1);
system("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $tmp/key.pem 2>/dev/null") == 0
    && system("openssl pkey -in $tmp/key.pem -pubout -out $tmp/pub.pem 2>/dev/null") == 0
    or BAIL_OUT('openssl cannot make an RSA key');
my $public_pem = do { local (@ARGV, $/) = "$tmp/pub.pem"; <> };
refused(http(GET => $me, token => jwt(claims(), secret => $public_pem)),
        'HS256 signed with an RSA public key', 'token signature is invalid');

refused(http(GET => $me, token => jwt(claims(exp => time - 100))), 'expired', 'token has expired');
is(http(GET => $me, token => jwt(claims(exp => time - 10)))->{status}, 200,
   'expired 10 s ago, within the 30 s leeway: 200');

# A worker keeps a token it verified (ngx_http_recovery_tokens.c) only until
# exp + leeway: one that expires within seconds is accepted by each worker
# while it holds, and refused by every worker afterwards.
{
    my $exp = time - 25;
    my $fleeting = jwt(claims(exp => $exp));
    my @before = map { http(GET => $me, token => $fleeting)->{status} } 1 .. 6;
    is_deeply(\@before, [(200) x 6], 'a token within its leeway is accepted, by each worker (and kept)');
    Time::HiRes::sleep(0.2) while time <= $exp + 31;
    refused(http(GET => $me, token => $fleeting), "kept token after its expiry ($_)", 'token has expired') for 1 .. 4;
}
refused(http(GET => $me, token => jwt(claims(exp => undef))), 'no exp', 'token has no numeric exp claim');
refused(http(GET => $me, token => jwt(claims(nbf => time + 100))), 'not yet valid', 'token is not valid yet');
refused(http(GET => $me, token => jwt(claims(aud => 'another-api'))), 'wrong audience',
        'token audience is not accepted');
is(http(GET => $me, token => jwt(claims(aud => ['another-api', 'payment-recovery-api'])))->{status},
   200, 'an audience list that holds ours: 200');
refused(http(GET => $me, token => jwt(claims(iss => 'someone-else'))), 'wrong issuer',
        'token issuer is not accepted');
# json-c reads numbers JSON has not: a token that would never expire
for my $exp ('NaN', 'Infinity', '1e400') {
    my $payload = json_text(claims(exp => undef)) =~ s/^\{/{"exp":$exp,/r;
    refused(http(GET => $me, token => jwt(undef, payload => $payload)), "exp $exp", 'token has no numeric exp claim');
}
refused(http(GET => $me, token => jwt(undef, payload => json_text(claims()) =~ s/^\{/{"nbf":NaN,/r)), 'nbf NaN',
        'token nbf claim is not a number');
# sub must name a user that exists and is enabled
$res = http(GET => $me, token => jwt(claims(sub => '987654321')));
is($res->{status}, 401, 'a token for a user who does not exist: 401');
is($res->{json}{message}, 'the token names no enabled user', 'saying why');
is(http(POST => '/api/v1/customers', token => jwt(claims(sub => '987654321')),
        json => { external_ref => "ghost-$$", name => 'Ghost' })->{status}, 401, 'and it writes nothing');
# claims are C strings: a NUL would cut them to another role, user or actor
for my $claim ([role => "recovery_admin\0-readonly"], [sub => "3\x{0}1"], [email => "admin\@demo.example\0\@evil"]) {
    refused(http(GET => $me, token => jwt(claims(@$claim))), "a NUL in $claim->[0]", 'token claims hold a NUL character');
}
for my $role ('postgres', 'recovery_authenticator', 'pg_read_server_files', 'recovery_agent; DROP') {
    refused(http(GET => $me, token => jwt(claims(role => $role))), "role \"$role\"",
            'token role is not accepted');
}
refused(http(GET => $me, token => jwt(claims(role => undef))), 'no role', 'token has no role claim');
refused(http(GET => $me, token => jwt(claims(sub => '3 OR 1=1'))), 'non-numeric sub',
        'token sub claim is not a user id');
refused(http(GET => $me, token => 'a.b'), 'two parts', 'token is not a compact JWS (three parts)');
refused(http(GET => $me, token => 'x.' . ('y' x 5000) . '.z'), 'oversized token',
        'token is empty or too long');

# --- privileges: authenticated, but not allowed --------------------------
my $viewer = login('viewer@demo.example', 'viewer-demo-pass');
$res = http(POST => '/api/v1/recovery-cases/1/payments', token => $viewer,
            json => { amount => 100, currency => 'EUR' });
is($res->{status}, 403, 'a viewer recording money: 403');
is($res->{json}{error}, 'permission_denied', 'permission_denied');

# --- API keys ---------------------------------------------------------------
my $dbh = connect_db();
$dbh->do('SET ROLE recovery_admin');
my ($key) = $dbh->selectrow_array(q{SELECT recovery.api_key_create('auth.t worker', 'recovery_automation')});
my ($revoked) = $dbh->selectrow_array(q{SELECT recovery.api_key_create('auth.t revoked', 'recovery_automation')});
$dbh->do('RESET ROLE');
$dbh->do(q{UPDATE recovery.api_keys SET revoked_at = now() WHERE name = 'auth.t revoked'});

$res = http(GET => $me, headers => { 'X-API-Key' => $key });
is($res->{status}, 200, 'an API key in X-API-Key: 200');
is($res->{json}{role}, 'recovery_automation', 'the request runs as the key\'s role');
is($res->{json}{authenticated_by}, 'api_key', 'authenticated by API key');
is($res->{json}{actor}, 'api-key:auth.t worker', 'the actor is the key\'s name');
is(http(GET => $me, token => $key)->{status}, 200, 'an API key as a Bearer token: 200');
$res = http(GET => '/api/v1/recovery-cases/1', headers => { 'X-API-Key' => $key });
is($res->{status}, 403, 'an API key on a route for people: 403');
is($res->{json}{error}, 'api_key_not_allowed', 'api_key_not_allowed: keys reach the automation routes');
is(http(GET => '/api/v1/automation/recovery-cases/pending?limit=1', headers => { 'X-API-Key' => $key })->{status},
   200, 'and do reach them');
$res = http(GET => '/api/v1/automation/nothing', headers => { 'X-API-Key' => $key });
is_deeply([$res->{status}, $res->{json}{error}], [404, 'not_found'], 'an unknown automation route: JSON 404');

$res = http(GET => $me, headers => { 'X-API-Key' => $revoked });
is($res->{status}, 401, 'a revoked API key: 401');
is($res->{json}{error}, 'authentication_failed', 'authentication_failed');
like($res->{headers}{'www-authenticate'} // '', qr/^Bearer/, 'with WWW-Authenticate');
is(http(GET => $me, headers => { 'X-API-Key' => 'rk_not-a-key' })->{status}, 401,
   'an unknown API key: 401');
is(http(GET => $me, headers => { 'X-API-Key' => 'rk_two words' })->{status}, 401,
   'an API key with a space in it: 401');

done_testing();
