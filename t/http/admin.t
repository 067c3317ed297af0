#!/usr/bin/perl
# Users and API keys over HTTP: admins only; an API key is shown once, then
# works, and stops working the moment it is revoked; a disabled user can no
# longer log in.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test;

my $admin = login('admin@demo.example', 'admin-demo-pass');
my $manager = login('manager@demo.example', 'manager-demo-pass');
my $tag = "admin-$$-" . time;

# --- users --------------------------------------------------------------------
my $res = http(POST => '/api/v1/users', token => $admin,
               json => { email => "$tag\@demo.example", display_name => 'Temp Agent',
                         role => 'recovery_agent', password => 'a long enough passphrase' });
is($res->{status}, 201, 'an admin creates a user: 201');
ok(!exists $res->{json}{password_hash}, 'the answer has no password hash');
my $user = $res->{json}{id};
is(http(POST => '/api/v1/users', token => $manager,
        json => { email => "x$tag\@demo.example", display_name => 'X', role => 'recovery_agent',
                  password => 'a long enough passphrase' })->{status}, 403, 'a manager cannot: 403');
is(http(POST => '/api/v1/users', token => $admin,
        json => { email => "y$tag\@demo.example", display_name => 'Y', role => 'recovery_agent',
                  password => 'short' })->{status}, 400, 'a short password: 400');
is(http(POST => '/api/v1/users', token => $admin,
        json => { email => "z$tag\@demo.example", display_name => 'Z', role => 'postgres',
                  password => 'a long enough passphrase' })->{status}, 400, 'a role that is not ours: 400');
is(http(POST => '/api/v1/users', token => $admin,
        json => { email => "$tag\@demo.example", display_name => 'Twin', role => 'recovery_agent',
                  password => 'a long enough passphrase' })->{status}, 409, 'the same email twice: 409');

my $list = http(GET => '/api/v1/users?limit=200', token => $admin);
ok((grep { $_->{id} == $user } @{ $list->{json}{items} }), 'the new user is listed');
ok(!(grep { exists $_->{password_hash} } @{ $list->{json}{items} }), 'without password hashes');
is(http(GET => '/api/v1/users', token => $manager)->{status}, 403, 'a manager cannot list users: 403');

my $users_token = login("$tag\@demo.example", 'a long enough passphrase');
ok($users_token, 'the new user can log in');
is(http(GET => '/api/v1/auth/me', token => $users_token)->{status}, 200, 'and use the token');
$res = http(POST => "/api/v1/users/$user/disable", token => $admin);
is($res->{status}, 200, 'an admin disables the user: 200');
is($res->{json}{disabled}, JSON::PP::true, 'disabled');
is(http(POST => '/api/v1/auth/login',
        json => { email => "$tag\@demo.example", password => 'a long enough passphrase' })->{status},
   401, 'a disabled user cannot log in: 401');
$res = http(GET => '/api/v1/auth/me', token => $users_token);
is($res->{status}, 401, 'and the token it had stops working at once: 401');
is($res->{json}{message}, 'the token names no enabled user', 'saying why');
is(http(POST => '/api/v1/users/987654321/disable', token => $admin)->{status}, 404, 'an unknown user: 404');

# --- API keys -----------------------------------------------------------------
$res = http(POST => '/api/v1/api-keys', token => $admin, json => { name => "$tag worker", role => 'recovery_automation' });
is($res->{status}, 201, 'an admin issues an API key: 201');
my $key = $res->{json}{key};
like($key, qr/^\S{20,}$/, 'the key is in the answer, this once');
my $key_id = $res->{json}{api_key}{id};
is($res->{json}{api_key}{name}, "$tag worker", 'with its record');

# a key issued with an Idempotency-Key: the replay does not show it again,
# and the stored response auditors can read does not hold it
my $idem = { 'Idempotency-Key' => "$tag-key" };
my $first = http(POST => '/api/v1/api-keys', token => $admin, headers => $idem,
                 json => { name => "$tag retried", role => 'recovery_automation' });
like($first->{json}{key} // '', qr/^\S{20,}$/, 'a key issued with an Idempotency-Key is in the first answer');
my $replay = http(POST => '/api/v1/api-keys', token => $admin, headers => $idem,
                  json => { name => "$tag retried", role => 'recovery_automation' });
is($replay->{status}, 201, 'the retry gets the first answer\'s status');
ok(!exists $replay->{json}{key} && $replay->{json}{key_withheld}, 'but not the key: it is withheld')
    or diag explain $replay->{json};
is($replay->{json}{api_key}{id}, $first->{json}{api_key}{id}, 'and the same key record: none issued twice');
my $db = Recovery::Test::connect_db();
my ($stored) = $db->selectrow_array(q{SELECT response::text FROM recovery.idempotency_keys WHERE key = $1}, undef,
                                    "$tag-key");
ok(defined $stored && index($stored, $first->{json}{key}) < 0, 'the stored response does not hold the key');

$list = http(GET => '/api/v1/api-keys?limit=200', token => $admin);
my ($listed) = grep { $_->{id} == $key_id } @{ $list->{json}{items} };
ok($listed && !exists $listed->{key} && !exists $listed->{key_hash}, 'listed without the key or its hash');
is(http(POST => '/api/v1/api-keys', token => $manager, json => { name => 'x', role => 'recovery_automation' })->{status},
   403, 'a manager cannot issue keys: 403');

is(http(GET => '/api/v1/auth/me', headers => { 'X-API-Key' => $key })->{json}{role}, 'recovery_automation',
   'the key works');
is(http(POST => "/api/v1/api-keys/$key_id/revoke", token => $admin)->{status}, 200, 'revoke it: 200');
is(http(GET => '/api/v1/auth/me', headers => { 'X-API-Key' => $key })->{status}, 401, 'and it stops working at once');

done_testing();
