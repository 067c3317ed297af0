#!/usr/bin/perl
# Idempotency-Key on POST: a retry with the same key and body gets the first
# response and writes nothing, also when the retries race; another body with
# the key is 422; a failed request leaves no key; keys belong to their sender
# and expire.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Recovery::HTTP qw(http login);
use Recovery::Test qw(connect_db new_case case_version);

my $dbh = connect_db();
my $agent = login('agent@demo.example', 'agent-demo-pass');
my $manager = login('manager@demo.example', 'manager-demo-pass');
my $case = new_case($dbh, 50_000);
my $pay = "/api/v1/recovery-cases/$case/payments";
my $key = "idem-$$-" . time;

sub receipts {
    my ($n) = $dbh->selectrow_array('SELECT count(*) FROM recovery.receipts WHERE case_id = $1', undef, $case);
    return $n;
}

my $first = http(POST => $pay, token => $agent, headers => { 'Idempotency-Key' => $key },
                 json => { amount => 1_000, currency => 'EUR', reference => 'idem 1' });
is($first->{status}, 201, 'first request with a key: 201');
ok(!$first->{headers}{'idempotent-replayed'}, 'not a replay');

my $again = http(POST => $pay, token => $agent, headers => { 'Idempotency-Key' => $key },
                 json => { amount => 1_000, currency => 'EUR', reference => 'idem 1' });
is($again->{status}, 201, 'the retry: the first status');
is($again->{headers}{'idempotent-replayed'}, 'true', 'marked Idempotent-Replayed');
is_deeply($again->{json}, $first->{json}, 'the first body, unchanged');
is(receipts(), 1, 'and one receipt only');

my $other = http(POST => $pay, token => $agent, headers => { 'Idempotency-Key' => $key },
                 json => { amount => 2_000, currency => 'EUR', reference => 'idem 1' });
is($other->{status}, 422, 'the key with another body: 422');
is($other->{json}{error}, 'idempotency_key_reused', 'idempotency_key_reused');
is(receipts(), 1, 'nothing written');

my $theirs = http(POST => $pay, token => $manager, headers => { 'Idempotency-Key' => $key },
                  json => { amount => 1_000, currency => 'EUR', reference => 'idem 1' });
is($theirs->{status}, 201, 'another user with the same key: their own request');
ok(!$theirs->{headers}{'idempotent-replayed'}, 'not a replay of someone else\'s');
is(receipts(), 2, 'a second receipt');

# a failed request leaves no key behind
my $key2 = "$key-failed";
is(http(POST => $pay, token => $agent, headers => { 'Idempotency-Key' => $key2 },
        json => { amount => 1_000, currency => 'USD' })->{status}, 422, 'a request that fails (currency): 422');
is(http(POST => $pay, token => $agent, headers => { 'Idempotency-Key' => $key2 },
        json => { amount => 1_000, currency => 'EUR' })->{status}, 201,
   'the same key then works for the corrected request');

# concurrent retries: one write
my $key3 = "$key-race";
my @children;
for (1 .. 6) {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        my $res = http(POST => $pay, token => $agent, headers => { 'Idempotency-Key' => $key3 },
                       json => { amount => 500, currency => 'EUR', reference => 'race' });
        print "$res->{status} " . ($res->{json}{receipt}{id} // '-');
        exit 0;
    }
    push @children, $fh;
}
my @answers = map { local $/; scalar <$_> } @children;
my %ids = map { (split ' ')[1] => 1 } @answers;
is(scalar(grep { /^201 / } @answers), 6, 'six racing requests with one key: all 201')
    or diag explain \@answers;
is(scalar keys %ids, 1, 'all with the same receipt');
my ($raced) = $dbh->selectrow_array(q{SELECT count(*) FROM recovery.receipts WHERE case_id = $1 AND reference = 'race'},
                                    undef, $case);
is($raced, 1, 'one receipt was written');

# transitions too
my $version = case_version($dbh, $case);
my $t1 = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
              headers => { 'Idempotency-Key' => "$key-contact" },
              json => { event => 'contact', expected_version => $version });
my $t2 = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent,
              headers => { 'Idempotency-Key' => "$key-contact" },
              json => { event => 'contact', expected_version => $version });
is_deeply([$t1->{status}, $t2->{status}], [200, 200],
          'a transition retried with its key: 200 both times, not a 409');
my ($events) = $dbh->selectrow_array(q{SELECT count(*) FROM recovery.case_events WHERE case_id = $1 AND event = 'contact'},
                                     undef, $case);
is($events, 1, 'one contact event');

# expiry
$dbh->do(q{UPDATE recovery.idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1}, undef, $key);
my $later = http(POST => $pay, token => $agent, headers => { 'Idempotency-Key' => $key },
                 json => { amount => 1_000, currency => 'EUR', reference => 'idem 1' });
ok($later->{status} == 201 && !$later->{headers}{'idempotent-replayed'},
   'after the key expired the same request is a new one');

# a created resource's Location comes with the replay too
my $customer_key = "idem-customer-$$-" . time;
my @created = map {
    http(POST => '/api/v1/customers', token => $agent, headers => { 'Idempotency-Key' => $customer_key },
         json => { external_ref => $customer_key, name => 'Idempotent Customer' })
} 1 .. 2;
like($created[0]{headers}{location}, qr{^/api/v1/customers/\d+$}, 'a created customer: Location');
is($created[1]{headers}{'idempotent-replayed'}, 'true', 'its retry is a replay');
is($created[1]{headers}{location}, $created[0]{headers}{location}, 'with the same Location');

my $receipts = receipts();
for my $bad ('', 'two words', 'x' x 201) {
    my $res = http(POST => $pay, token => $agent, headers => { 'Idempotency-Key' => $bad },
                   json => { amount => 1, currency => 'EUR' });
    is($res->{status}, 400, 'an Idempotency-Key of "' . substr($bad, 0, 10) . '": 400');
}
# A refused request must stop at its 400: the gateway once went on to run
# the call after answering.  Such a write lands within moments; watch for 2 s.
my $deadline = time + 2;
my $written = 0;
while (!$written && time < $deadline) {
    $written = receipts() != $receipts;
    select(undef, undef, undef, 0.05);
}
ok(!$written, 'a request refused for its Idempotency-Key writes nothing');

done_testing();
