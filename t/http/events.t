#!/usr/bin/perl
# Live events (GET /api/v1/events), on a stack of their own (two workers):
# each kind of event reaches a stream within a second of its commit; a
# viewer never receives what its role may not read; a stream resumed with
# Last-Event-ID after 1,000 commits gets all 1,000 in order, none twice; a
# reader that stops reading is cut off and the worker does not grow; the
# database restarting under open streams loses no event; tickets, token
# expiry, heartbeats and bad requests.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use Recovery::HTTP qw(http jwt claims);
use Recovery::SSE;
use Recovery::Stack;
use Recovery::Test qw(new_case case_version wait_for);

# Under AddressSanitizer (make test's second stage) freed memory waits in a
# quarantine of 256 MB before it is reused, which would grow the workers by
# whatever they free: a small one, full after the first round, keeps the
# memory check below meaningful there too.
local $ENV{ASAN_OPTIONS} = "$ENV{ASAN_OPTIONS}:quarantine_size_mb=8" if $ENV{ASAN_OPTIONS};
my $stack = Recovery::Stack->new(WORKERS => 2, POOL_SIZE => 2, EVENTS_HEARTBEAT => '1s',
                                 EVENTS_BUFFER => '64k');
my $base = $stack->base;
my $dbh = $stack->dbh;

sub user {
    my ($email, $role) = @_;
    $dbh->do('SET ROLE recovery_admin');
    my ($id) = $dbh->selectrow_array('SELECT recovery.user_create($1, $2, $3, $4)', undef,
                                     $email, "Events $role", $role, 'events-test-password');
    $dbh->do('RESET ROLE');
    return jwt(claims(sub => "$id", role => $role, email => $email), dir => $stack->nginx_dir);
}
my $agent = user('agent@events.test', 'recovery_agent');
my $viewer = user('viewer@events.test', 'recovery_viewer');
my $admin = user('admin@events.test', 'recovery_admin');
$dbh->do('SET ROLE recovery_admin');
my ($key) = $dbh->selectrow_array(q{SELECT recovery.api_key_create('events-test', 'recovery_automation')});
$dbh->do('RESET ROLE');
my %automation = (headers => { 'X-API-Key' => $key }, base => $base);

sub stream {
    my ($path, %opt) = @_;
    return Recovery::SSE->open($base, $path // '/api/v1/events', %opt);
}

# the first event of that type (and case) on the stream, with the seconds
# from the commit (the moment the action returned) to its arrival
sub arrives {
    my ($sse, $type, $committed, %match) = @_;
    my $wanted = sub {
        my ($e) = @_;
        $e->{event} eq $type && !grep { ($e->{json}{$_} // '') ne $match{$_} } keys %match;
    };
    my ($e) = reverse $sse->events_until($wanted, 10);
    return ($e && $wanted->($e)) ? ($e, $e->{at} - $committed) : (undef, undef);
}

sub within_a_second {
    my ($sse, $type, $what, $action, %match) = @_;
    my $committed = $action->();
    my ($e, $latency) = arrives($sse, $type, $committed, %match);
    ok($e, "$what: a $type event arrives");
    ok(defined $latency && $latency < 1, "$what: within 1 s of the commit")
        or diag(sprintf 'latency %s', $latency // 'none');
    return $e;
}

# --- opening ------------------------------------------------------------------
my $sse = stream(undef, token => $agent);
is($sse->status, 200, 'an agent opens the stream: 200');
like($sse->headers->{'content-type'}, qr{^text/event-stream}, 'as text/event-stream');
is($sse->headers->{'cache-control'}, 'no-store', 'not to be cached');
my $watcher = stream(undef, token => $admin);
is($watcher->status, 200, 'an admin opens one too');

# --- each kind of event within a second of its commit --------------------------
my $case = new_case($dbh);
my $version = case_version($dbh, $case);
my $e = within_a_second($sse, 'case.changed', 'a transition', sub {
    my $res = http(POST => "/api/v1/recovery-cases/$case/transitions", token => $agent, base => $base,
                   json => { event => 'contact', expected_version => $version });
    die "transition: $res->{status} $res->{content}" unless $res->{status} == 200;
    time;
}, case_id => $case, change => 'transition');
is($e && $e->{json}{actor}, 'agent@events.test', 'it says who changed the case');
is($e && $e->{json}{state}, 'contacted', 'and its new state');
like($e && $e->{id}, qr/^\d+$/, 'each event has an id');
is($e && $e->{json}{id}, $e && $e->{id}, 'the same as in its data');
within_a_second($sse, 'case.changed', 'money received', sub {
    my $res = http(POST => "/api/v1/recovery-cases/$case/payments", token => $agent, base => $base,
                   json => { amount => 1000, currency => 'EUR', reference => 'events test' });
    die "payment: $res->{status} $res->{content}" unless $res->{status} == 201;
    time;
}, case_id => $case, change => 'payment');
within_a_second($sse, 'case.changed', 'a note', sub {
    http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent, base => $base,
         json => { body => 'called' })->{status} == 201 or die 'note';
    time;
}, case_id => $case, change => 'note');
within_a_second($sse, 'case.changed', 'an assignment', sub {
    my $res = http(PATCH => "/api/v1/recovery-cases/$case", token => $agent, base => $base,
                   json => { expected_version => case_version($dbh, $case), priority => 1,
                             assigned_user_id => undef });
    die "assign: $res->{status} $res->{content}" unless $res->{status} == 200;
    time;
}, case_id => $case);
within_a_second($sse, 'case.changed', 'a document', sub {
    http(POST => "/api/v1/recovery-cases/$case/documents?filename=a.pdf", token => $agent, base => $base,
         headers => { 'Content-Type' => 'application/pdf' },
         body => "%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n")->{status} == 201 or die 'document';
    time;
}, case_id => $case, change => 'document');

# a notification's outcomes, as the delivery worker writes them
my ($notification) = $dbh->selectrow_array(q{
    INSERT INTO recovery.notifications (case_id, customer_id, channel, created_by)
    SELECT id, customer_id, 'email', 'events.t' FROM recovery.recovery_cases WHERE id = $1 RETURNING id},
    undef, $case);
for my $status (qw(failed sent dead cancelled)) {
    within_a_second($sse, "notification.$status", "a notification $status", sub {
        $dbh->do('UPDATE recovery.notifications SET status = $2 WHERE id = $1', undef, $notification, $status);
        time;
    }, notification_id => $notification);
}

# an extraction with a payment to review
my $other = new_case($dbh);
my $payer = "Payer Events $$";
$dbh->do(q{UPDATE recovery.customers SET name = $2
            WHERE id = (SELECT customer_id FROM recovery.recovery_cases WHERE id = $1)}, undef, $other, $payer);
my $statement = "Date;Amount;Currency;Reference;Payer\r\n2026-11-25;1.00;EUR;part payment $$;$payer\r\n";
my $committed;
my $finished = within_a_second($sse, 'extraction.finished', 'a statement import', sub {
    my $res = http(POST => '/api/v1/extractions/statements', token => $agent, base => $base,
                   headers => { 'Content-Type' => 'text/csv' }, body => $statement);
    die "import: $res->{status} $res->{content}" unless $res->{status} == 200;
    $committed = time;
});
is($finished && $finished->{json}{by_status}{review}, 1, 'the extraction says one line waits for review');
my ($review, $latency) = arrives($sse, 'reconciliation.review', $committed);
ok($review && $latency < 1, 'a reconciliation.review event arrives within 1 s');
is($review && $review->{json}{lines}, 1, 'naming one line to review');

# a task dead-lettered: automation and admins see it; agents and viewers do not
my $kind = "events.test-$$";
my $task = http(POST => '/api/v1/automation/tasks/schedule', %automation,
                json => { kind => $kind, max_attempts => 1 })->{json}{id};
http(POST => '/api/v1/automation/tasks/claim', %automation, json => { kinds => [$kind] });
my $auto = stream(undef, %automation);
is($auto->status, 200, 'automation opens the stream with its API key');
$committed = time;
is(http(POST => "/api/v1/automation/tasks/$task/fail", %automation, json => { error => 'boom' })->{json}{state},
   'dead', 'the task fails its only attempt');
($e, $latency) = arrives($auto, 'task.dead', $committed, task_id => $task);
ok($e && $latency < 1, 'automation receives task.dead within 1 s');
ok((arrives($watcher, 'task.dead', $committed, task_id => $task))[0], 'so does an admin');

# --- a viewer receives what a viewer may read, and nothing else -------------------
my $seer = stream(undef, token => $viewer);
my $task2 = http(POST => '/api/v1/automation/tasks/schedule', %automation,
                 json => { kind => $kind, max_attempts => 1 })->{json}{id};
http(POST => '/api/v1/automation/tasks/claim', %automation, json => { kinds => [$kind] });
http(POST => "/api/v1/automation/tasks/$task2/fail", %automation, json => { error => 'boom' });
$committed = time;
http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent, base => $base, json => { body => 'after' });
# events arrive in commit order: once the note's is there, the task's would be
my @seen = $seer->events_until(sub { $_[0]{event} eq 'case.changed' && $_[0]{json}{change} eq 'note' }, 10);
ok((grep { $_->{event} eq 'case.changed' } @seen), 'the viewer receives the case change');
ok(!(grep { $_->{event} eq 'task.dead' } @seen), 'but not the dead task committed before it');
ok((arrives($auto, 'task.dead', $committed, task_id => $task2))[0], 'which automation received');
my $only = stream("/api/v1/events?types=task.dead", token => $viewer);
is($only->status, 200, 'a viewer asking only for task.dead gets a stream');
http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent, base => $base, json => { body => 'x' });
is($only->next_event(1.5), undef, 'that carries nothing');
$only->close;

# streams that are not read from now on would be cut off as slow readers below
$_->close for $sse, $watcher, $auto, $seer;

# --- filters ---------------------------------------------------------------------
my $one = stream("/api/v1/events?case_id=$other&types=case.changed", token => $agent);
http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent, base => $base, json => { body => 'not yours' });
http(POST => "/api/v1/recovery-cases/$other/notes", token => $agent, base => $base, json => { body => 'yours' });
@seen = $one->events_until(sub { $_[0]{json}{case_id} == $other }, 10);
is(scalar(@seen), 1, '?case_id= and ?types=: only that case');
is($seen[0] && $seen[0]{json}{case_id}, $other, 'the note on it');
$one->close;

# --- resume after 1,000 commits ---------------------------------------------------
my $resumable = stream("/api/v1/events?case_id=$case", token => $agent);
http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent, base => $base, json => { body => 'before' });
my $last = $resumable->next_event(10);
ok($last, 'a stream sees an event, then disconnects');
$resumable->close;
my $t0 = time;
$dbh->do('SELECT recovery.case_note_add($1, $2)', undef, $case, "missed $_") for 1 .. 1000;
diag(sprintf '1,000 notes committed in %.1f s', time - $t0);
$resumable = stream("/api/v1/events?case_id=$case", token => $agent,
                    headers => { 'Last-Event-ID' => $last->{id} });
my @notes;
while (@notes < 1000 && !$resumable->ended && time - $t0 < 60) {
    my $e = $resumable->next_event(1) or next;
    push @notes, $e if $e->{event} eq 'case.changed';
}
is(scalar(@notes), 1000, 'resumed with Last-Event-ID: the 1,000 events committed meanwhile');
my %ids;
$ids{$_->{id}}++ for @notes;
is(scalar(keys %ids), 1000, 'none twice');
is_deeply([map { $_->{id} } @notes], [sort { $a <=> $b } map { $_->{id} } @notes], 'in order');
ok(!(grep { $_->{id} <= $last->{id} } @notes), 'none from before the last one seen');
$resumable->close;
my $after = stream("/api/v1/events?case_id=$case&after=$notes[499]{id}", token => $agent);
@seen = ();
while (@seen < 500 && !$after->ended && time - $t0 < 90) {
    my $e = $after->next_event(1) or next;
    push @seen, $e if $e->{event} eq 'case.changed';
}
is_deeply([map { $_->{id} } @seen], [map { $_->{id} } @notes[500 .. 999]], '?after= resumes the same way');
$after->close;

# --- the database restarts under open streams --------------------------------------
my $survivor = stream("/api/v1/events?case_id=$case", token => $agent);
http(POST => "/api/v1/recovery-cases/$case/notes", token => $agent, base => $base, json => { body => 'up' });
ok($survivor->next_event(10), 'a stream is open and live');
$stack->stop_db;
$stack->start_db;
my $db = $stack->dbh;
# committed at once, before the workers' readers are back
$db->do('SELECT recovery.case_note_add($1, $2)', undef, $case, "after restart $_") for 1 .. 50;
my (%got, $resumed);
my $deadline = time + 30;
while (keys %got < 50 && time < $deadline) {
    my $e = $survivor->next_event(1);
    if (!$e && $survivor->ended) {
        # the stream ended with the database: resume where it was
        $resumed++;
        $survivor = stream("/api/v1/events?case_id=$case", token => $agent,
                           headers => { 'Last-Event-ID' => $survivor->last_id });
        next;
    }
    $got{$1}++ if $e && ($e->{json}{note_id} // '') =~ /^(\d+)$/;
}
is(scalar(keys %got), 50, 'every event committed right after the restart arrives'
                          . ($resumed ? ' (after the client resumed)' : ' on the same stream'));
ok(!(grep { $_ > 1 } values %got), 'none twice');
ok(wait_for('the reader to log its return', sub { $stack->error_log =~ /live events: connected to the database again/ }),
   'the worker\'s reader says it reconnected');
$survivor->close;

# --- a reader that stops reading is cut off; the worker does not grow ------------------
sub worker_rss {
    my $total = 0;
    for my $pid (split ' ', `pgrep -P \$(cat @{[ $stack->nginx_dir ]}/nginx.pid)`) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $total += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $total;    # kB, both workers
}
sub flood {
    # 10,000 events of 1 kB, 500 a transaction every 0.3 s: more than the
    # socket, the 64k bound and the 4,096 recent events each worker keeps
    # hold together, at a pace a reader that reads can follow
    my $payload = 'x' x 1000;
    for (1 .. 20) {
        $db->do(q{SELECT recovery.live_event('case.changed', $1, NULL, jsonb_build_object('change', 'flood', 'pad', $2::text))
                    FROM generate_series(1, 500)}, undef, $case, $payload);
        sleep 0.3;
    }
}
my @rss;
# a stream that has opened (after the restart above a busy machine's pool may
# still answer 503 for a moment, which a client retries)
sub opened {
    my ($what, %opt) = @_;
    my $sse;
    wait_for("$what to open", sub {
        $sse->close if $sse;
        $sse = stream("/api/v1/events?case_id=$case", token => $agent, %opt);
        ($sse->status // 0) == 200;
    }, 60) or diag("$what: the last answer was " . ($sse->status // 'none'));
    return $sse;
}
for my $round (1 .. 3) {
    my $slow = opened("round ${round}'s slow reader", rcvbuf => 4096);
    my $fast = opened("round ${round}'s reader that keeps up", raw => 1);
    is($fast->status, 200, "round $round: the streams open");
    my $deadline = time + 300;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $db = $stack->dbh;
        flood();
        POSIX::_exit(0);
    }
    my $count = 0;
    while ($count < 10000 && !$fast->ended && time < $deadline) {
        my $e = $fast->next_event(1) or next;
        $count++ if $e->{data} =~ /"change": ?"flood"/;
    }
    is($count, 10000, "round $round: a reader that keeps up gets all 10,000");
    ok(wait_for("the slow reader of round $round to be cut off", sub {
           my $n = () = $stack->error_log =~ /events client reads too slowly/g;
           $n >= $round;
       }, 30), "round $round: one that stops reading is cut off, with a log line");
    waitpid $pid, 0;
    $slow->close;
    $fast->close;
    push @rss, worker_rss();
}
diag("nginx workers' RSS after each round: @rss kB");
cmp_ok($rss[2] - $rss[1], '<', 4096, 'the workers do not grow from one round to the next (under 4 MB)');

# --- what /metrics says of them --------------------------------------------------
my @open = map { stream(undef, token => $agent) } 1 .. 3;
my $metrics;
ok(wait_for('/metrics to count three open streams', sub {
       $metrics = http(GET => '/metrics', base => $base)->{content} // '';
       my $n = 0;
       $n += $1 while $metrics =~ /^recovery_event_streams\{worker="\d+"\} (\d+)$/mg;
       $n == 3 }),
   '/metrics counts the streams open in each worker (three now)');
my ($cut_total) = $metrics =~ /^recovery_event_streams_cut_total (\d+)$/m;
is($cut_total, 3, 'and the three streams cut off for reading too slowly');
$_->close for @open;

# --- tickets, expiry, heartbeats, errors ---------------------------------------------
my $res = http(POST => '/api/v1/events/ticket', token => $viewer, base => $base);
is($res->{status}, 200, 'a signed-in user gets a ticket');
is($res->{json}{expires_in}, 30, 'good for 30 s');
is($res->{headers}{'cache-control'}, 'no-store', 'not to be cached');
my $ticket = $res->{json}{ticket};
my $by_ticket = stream("/api/v1/events?ticket=$ticket", timeout => 10);
is($by_ticket->status, 200, 'EventSource opens the stream with ?ticket=');
ok($by_ticket->wait_until(sub { $_[0]->comments >= 1 }, 5), 'a heartbeat comment comes (1 s here, 15 s shipped)');
$by_ticket->close;
is(http(GET => "/api/v1/recovery-cases/$case", token => $ticket, base => $base)->{status}, 401,
   'a ticket opens nothing else: 401');
is(stream("/api/v1/events?ticket=$viewer")->status, 401, 'a token in the URL is refused: 401');
is(http(POST => '/api/v1/events/ticket', %automation)->{status}, 403,
   'an API key gets no ticket (it opens the stream itself): 403');
my ($viewer_id) = $db->selectrow_array(q{SELECT id FROM recovery.users WHERE email = 'viewer@events.test'});
my $short = jwt(claims(sub => "$viewer_id", role => 'recovery_viewer', email => 'viewer@events.test',
                       scope => 'events', exp => time + 30, session_exp => time + 2),
                dir => $stack->nginx_dir);
my $expiring = stream("/api/v1/events?ticket=$short");
is($expiring->status, 200, 'a ticket whose session ends in 2 s opens a stream');
my @end = $expiring->events_until(sub { $_[0]{event} eq 'expired' }, 10);
is(@end && $end[-1]{event}, 'expired', 'which says "expired" when the session ends');
ok($expiring->wait_until(sub { $_[0]->ended }, 5), 'and ends');
is(stream('/api/v1/events')->status, 401, 'no credentials: 401');
my $bad = stream('/api/v1/events?types=case.changed,nonsense', token => $agent);
is($bad->status, 400, 'an unknown event type: 400');
like($bad->error_json->{hint} // '', qr/case\.changed/, 'the hint lists the types');
$bad = stream('/api/v1/events', token => $agent, headers => { 'Last-Event-ID' => q{1'; DROP TABLE x; --} });
is($bad->status, 400, 'a Last-Event-ID that is not an event id: 400');
is(stream('/api/v1/events?case_id=abc', token => $agent)->status, 400, 'a case_id that is not a number: 400');
is(stream('/api/v1/events?bogus=1', token => $agent)->status, 400, 'an unknown parameter: 400');
my $purged = stream('/api/v1/events', token => $agent, headers => { 'Last-Event-ID' => '999999999' });
is($purged->status, 200, 'resuming from an event that is gone');
is($purged->next_event(5)->{event}, 'reset', 'gets a reset event: reload');
is(http(POST => '/api/v1/events', token => $agent, base => $base)->{status}, 405, 'POST: 405');

# retention: the nightly job purges old events; resuming from one is a reset
my ($old_id) = $db->selectrow_array('SELECT max(id) FROM recovery.live_events');
$db->do(q{UPDATE recovery.live_events SET at = now() - interval '8 days' WHERE id <= $1}, undef, $old_id);
my ($purged_n) = $db->selectrow_array('SELECT recovery.live_events_purge()');
cmp_ok($purged_n, '>=', 1000, "live_events_purge() deletes the events older than 7 days ($purged_n)");
like(join(';', @{ $db->selectcol_arrayref(q{SELECT command FROM recovery.job_definitions()
                                             WHERE name = 'recovery-retention'}) }),
     qr/live_events_purge/, 'in the nightly retention job');
my $late = stream('/api/v1/events', token => $agent, headers => { 'Last-Event-ID' => $old_id });
is($late->next_event(5)->{event}, 'reset', 'a stream resuming from a purged event gets a reset');

unlike($stack->error_log, qr/\[(alert|emerg|crit)\]|signal \d+/, 'no worker crashed or complained');
done_testing;
