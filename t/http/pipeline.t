#!/usr/bin/perl
# Calls pipelined on one database connection (recovery_pipeline_depth): each
# request is its own transaction with its own context, so a request that
# fails leaves the others' answers intact, and no request's role, user,
# request id or read-only setting reaches the next one's.  One worker with
# one connection, a pipeline 8 deep, and twelve clients at once: every answer
# must equal the one the same request got alone, and the writes sent in
# the pipelines must be there, each with its own author, and only those.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP;
use Recovery::HTTP qw(http jwt claims);
use Recovery::Stack;
use Recovery::Test qw(new_case case_version wait_for);

my $stack = Recovery::Stack->new(WORKERS => 1, POOL_SIZE => 1, READ_RESERVE => 0, PIPELINE_DEPTH => 8);
my $base = $stack->base;
my $dbh = $stack->dbh;
my $json = JSON::PP->new->canonical;

my ($read_case, $noted_case, $stale_case) = map { new_case($dbh) } 1 .. 3;
my $stale = case_version($dbh, $stale_case) - 1;

# a user of each role, and one disabled: its token fails in the request's
# context statement, the first of its call
$dbh->do('SET ROLE recovery_admin');
my %user;
for my $role (qw(agent manager viewer disabled)) {
    ($user{$role}) = $dbh->selectrow_array(
        'SELECT recovery.user_create($1, $2, $3, $4)', undef,
        "$role\@pipeline.test", "Pipeline \u$role", $role eq 'disabled' ? 'recovery_agent' : "recovery_$role",
        'pipeline-test-password');
}
$dbh->do('SELECT recovery.user_disable($1)', undef, $user{disabled});
$dbh->do('RESET ROLE');
my %token = map {
    my $role = $_ eq 'disabled' ? 'recovery_agent' : "recovery_$_";
    ($_ => jwt(claims(role => $role, sub => "$user{$_}", email => "$_\@pipeline.test"), dir => $stack->nginx_dir))
} keys %user;

# The requests: reads that succeed, reads that fail (no such case, a bad
# argument, a disabled user, a role without the right), who is asking
# (each role), and writes that go in behind reads (a note) or fail (a stale
# version).  {id} is the request's own X-Request-Id.
my @kinds = (
    [case_agent   => GET => "/api/v1/recovery-cases/$read_case", 'agent'],
    [users_viewer => GET => '/api/v1/users', 'viewer'],
    [no_case      => GET => '/api/v1/recovery-cases/999999999', 'agent'],
    [bad_limit    => GET => '/api/v1/recovery-cases?limit=many', 'manager'],
    [me_agent     => GET => '/api/v1/auth/me', 'agent'],
    [me_manager   => GET => '/api/v1/auth/me', 'manager'],
    [me_viewer    => GET => '/api/v1/auth/me', 'viewer'],
    [me_disabled  => GET => '/api/v1/auth/me', 'disabled'],
    [stale        => POST => "/api/v1/recovery-cases/$stale_case/transitions", 'agent',
                     { event => 'contact', expected_version => $stale }],
);
my %note = (note => "/api/v1/recovery-cases/$noted_case/notes");

my $serial = 0;
sub ask {
    my ($kind, $method, $path, $who, $body) = @_;
    my $id = sprintf 'pipeline%08x%016x', $$, ++$serial;
    my $res = http($method => $path, token => $token{$who}, base => $base,
                   headers => { 'X-Request-Id' => $id }, $body ? (json => $body) : ());
    my $content = $res->{content} // '';
    $content =~ s/\Q$id\E/{id}/g;
    $content = $json->encode($json->decode($content)) if ($res->{headers}{'content-type'} // '') =~ /json/;
    return "$res->{status} $content";
}

# each request alone first: nothing is pipelined one at a time
my %alone = map { ($_->[0] => ask(@$_)) } @kinds;
like($alone{case_agent}, qr/^200 /, 'alone: the agent reads the case');
like($alone{no_case}, qr/^404 /, 'alone: no such case is 404');
like($alone{bad_limit}, qr/^4\d\d /, 'alone: a bad limit is refused');
like($alone{me_disabled}, qr/^40[13] /, "alone: a disabled user's token is refused");
like($alone{stale}, qr/^409 /, 'alone: a stale version is 409');
like($alone{users_viewer}, qr/^403 /, 'alone: a viewer may not list the users');
like($alone{"me_$_"}, qr/"user_id":$user{$_}\b/, "alone: /auth/me names the $_") for qw(agent manager viewer);

my ($pipelined_before) = pipelined();

# twelve clients, each its own shuffled order of every kind and a note,
# twenty times: the answers are compared in the children, which report
# each mismatch and the notes they wrote
my ($clients, $rounds) = (12, 20);
my @children;
for my $client (1 .. $clients) {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        srand($$);
        for my $round (1 .. $rounds) {
            my @order = sort { rand() <=> 0.5 } (@kinds, 'note');
            for my $k (@order) {
                if (!ref $k) {
                    my $text = "pipeline note $client.$round";
                    my $got = ask(note => POST => $note{note}, 'agent', { body => $text });
                    print $got =~ /^201 / ? "noted $text\n" : "differs note $got\n";
                    next;
                }
                my $got = ask(@$k);
                print $got eq $alone{$k->[0]} ? "same $k->[0]\n" : "differs $k->[0] $got\n";
            }
        }
        exit 0;
    }
    push @children, $fh;
}
my @lines = map { my $fh = $_; my @l = <$fh>; close $fh; @l } @children;

my @differs = grep { /^differs / } @lines;
my $same = grep { /^same / } @lines;
is($same, $clients * $rounds * @kinds, "every answer in the pipelines equals the request's answer alone ($same)")
    or diag explain [@differs[0 .. ($#differs < 9 ? $#differs : 9)]];
my %noted = map { /^noted (.*)$/ ? ($1 => 1) : () } @lines;
is(scalar keys %noted, $clients * $rounds, 'every note sent behind reads was written');

# what the database holds: each note once, by the agent, and nothing of
# the refused transitions
my $notes = $dbh->selectall_arrayref(
    'SELECT body, author_user_id FROM recovery.case_notes_decrypted WHERE case_id = $1', undef, $noted_case);
my %stored;
$stored{$_->[0]}++ for @$notes;
is_deeply(\%stored, { map { ($_ => 1) } keys %noted }, 'the notes stored are those answered 201, each once');
is(scalar(grep { $_->[1] != $user{agent} } @$notes), 0, "each note's author is the agent whose request wrote it");
is(case_version($dbh, $stale_case), $stale + 1, 'the refused transitions changed nothing');
# the audit trail saw each note's own request: its user and request id
my $audit = $dbh->selectall_arrayref(q{SELECT actor_user_id, request_id FROM recovery.audit_log
    WHERE table_name = 'case_notes' AND action = 'INSERT' AND (new_row->>'case_id')::bigint = $1}, undef, $noted_case);
is(scalar @$audit, $clients * $rounds, 'each note has its audit row');
is(scalar(grep { ($_->[0] // 0) != $user{agent} || ($_->[1] // '') !~ /^pipeline/ } @$audit), 0,
   "each audit row names the agent and a request id the test sent");
my %ids = map { ($_->[1] // '') => 1 } @$audit;
is(scalar keys %ids, scalar @$audit, 'no two notes carry the same request id: no context reached the next call');

my $pipelined = pipelined() - $pipelined_before;
cmp_ok($pipelined, '>', 0, "requests were sent behind others on the one connection ($pipelined)");

done_testing();

# calls sent behind others, as /metrics counts them
sub pipelined {
    my $total = 0;
    my $res = http(GET => '/metrics', base => $base);
    $total += $1 while $res->{content} =~ /^recovery_pool_pipelined_total\{[^}]*\} (\d+)$/mg;
    return $total;
}
