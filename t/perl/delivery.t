# Reminders end to end on a cluster of the test's own, with the delivery
# worker running and real SMTP and HTTP sinks on loopback: a due case gets
# exactly one rendered email; concurrent runs queue nothing twice; SMS go
# out as signed webhooks; every message is checked again before it is sent;
# failures are retried with growing delays, then dead-lettered; the circuit
# opens and closes; the worker survives a restart and a crash mid-send; and
# pg_cron really runs the reminders.  The SMTP URL and the webhook secret
# come from files (recovery.smtp_url_file, recovery.webhook_secret_file).
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep time);
use MIME::Base64 qw(decode_base64);
use Digest::SHA qw(hmac_sha256_hex);
use Recovery::Stack;
use Recovery::Test qw(wait_for);
use Recovery::Sink;

my $stack = Recovery::Stack->new(NGINX => 0);
my $db = $stack->dbh;
my $smtp = Recovery::Sink->new('smtp');
my $http = Recovery::Sink->new('http');

# the settings, once the delivery worker has read them (it logs each reload):
# the contact rules and the circuit run in its session
sub worker_reloads {
    my @lines = $stack->server_log =~ /pg_recovery delivery worker reloaded its settings/g;
    return scalar @lines;
}

sub configure {
    my (%settings) = @_;
    # a worker that is not running yet (it starts again 5 s after a failed start) reads them when it starts
    wait_for('the delivery worker to run', sub {
        value(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_recovery delivery'}) }, 30)
        or BAIL_OUT('the delivery worker does not run');
    my $before = worker_reloads();
    for my $name (sort keys %settings) {
        $db->do("ALTER SYSTEM SET recovery.$name = " . $db->quote($settings{$name}));
    }
    $db->do('SELECT pg_reload_conf()');
    wait_for('the delivery worker to reload its settings (' . join(', ', sort keys %settings) . ')',
             sub { worker_reloads() > $before }, 30)
        or BAIL_OUT('the delivery worker did not reload its settings');
}

sub value {
    my ($sql, @bind) = @_;
    return scalar $db->selectrow_array($sql, undef, @bind);
}

sub notification {
    my ($id) = @_;
    return $db->selectrow_hashref('SELECT * FROM recovery.notifications WHERE id = $1', undef, $id);
}

sub wait_status {
    my ($id, @statuses) = @_;
    my $wanted = join '|', @statuses;
    return wait_for("notification $id to be $wanted",
                    sub { my $n = notification($id); $n->{status} =~ /^($wanted)$/ ? $n : undef });
}

# the SMTP URL (where credentials go) and the webhook secret from files
# only the postgres user reads, as a secrets manager would leave them
sub secret_file {
    my ($name, $content) = @_;
    my $file = $stack->pg_dir . "/$name";
    system('runuser', '-u', 'postgres', '--', 'sh', '-c', "umask 077; printf '%s\\n' '$content' > '$file'") == 0
        or die "cannot write $file";
    return $file;
}
configure(smtp_url_file => secret_file('smtp-url', $smtp->url), sms_webhook_url => $http->url,
          webhook_secret_file => secret_file('webhook-secret', 'hook-secret'),
          smtp_from => 'Recovery Team <dunning@recovery.test>', message_id_domain => 'recovery.test',
          delivery_poll_interval => '300ms', delivery_retry_base => 1, delivery_max_attempts => 3,
          circuit_failure_threshold => 50, circuit_cooldown => 2,
          quiet_hours_start => '00:00', quiet_hours_end => '00:00', contact_cap => 100,
          payment_link_base => 'https://pay.recovery.test/');

# Templates, and policies: by default nothing is due for a year, so the
# pg_cron job below touches only the cases a test gives a due policy.
$db->do(q{SELECT recovery.template_save('overdue', 'email', 'en-GB',
    E'Dear {{customer_name}},\n{{amount}} was due on {{due_date}}.\nPay: {{payment_link}}\nReference: {{case_reference}}',
    'Overdue: {{amount}} – {{case_reference}}', NULL,
    '<p>Dear {{customer_name}},</p><p>{{amount}} is overdue.</p>')});
$db->do(q{SELECT recovery.template_save('overdue', 'sms', 'en-GB',
    '{{amount}} overdue, ref {{case_reference}}: {{payment_link}}')});
$db->do(q{SELECT recovery.dunning_policy_save('quiet', '[{"offset_days": 365, "channel": "email", "template": "overdue"}]', NULL, true)});
$db->do(q{SELECT recovery.dunning_policy_save('due', '[{"offset_days": -3, "channel": "sms", "template": "overdue"}, {"offset_days": 3, "channel": "email", "template": "overdue"}]')});
$db->do(q{SELECT recovery.dunning_policy_save('final', '[{"offset_days": 3, "channel": "email", "template": "overdue", "fee": {"fixed": 500}, "action": "escalate"}]')});

my $n_customer = 0;
# a case of a new customer, its payment due "overdue" days ago
sub new_case {
    my (%c) = @_;
    $n_customer++;
    my $customer = value(q{
        INSERT INTO recovery.customers (external_ref, name, email, phone, locale, time_zone, contact_preferences)
        VALUES ($1, $2, $3, $4, 'en-GB', $5, $6) RETURNING id},
        "D-$n_customer-" . time, $c{name} // "Customer $n_customer",
        exists $c{email} ? $c{email} : "customer$n_customer\@example.test", '+447700900' . sprintf('%03d', $n_customer),
        $c{time_zone} // 'Europe/London', $c{preferences} // '{"email": true, "sms": true}');
    my $payment = value(q{SELECT (recovery.payment_create($1, 'INV-1', $2, 'GBP', current_date - $3::integer)).id},
                        $customer, $c{amount} // 12000, $c{overdue} // 10);
    my $case = value(q{SELECT (recovery.payment_fail($1, 'card declined')).id}, $payment);
    $db->do(q{SELECT recovery.dunning_policy_assign($1, $2)}, undef, $c{policy}, $case) if $c{policy};
    return $case;
}

sub queue {
    my ($case, $channel, $send_after) = @_;
    return value(q{SELECT (recovery.api_notification_queue($1, $2, 'overdue', $3) ->> 'id')::bigint},
                 $case, $channel, $send_after);
}

# the email's header block and its decoded text and HTML parts
sub parse_email {
    my ($raw) = @_;
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    my %parts;
    for my $part (split /--=_recovery_\d+/, $rest) {
        my ($type) = $part =~ m{Content-Type: (text/\w+)} or next;
        my (undef, $encoded) = split /\r\n\r\n/, $part, 2;
        $parts{$type} = decode_base64($encoded);
    }
    return ($head, \%parts);
}

my $cron_case = new_case(policy => 'due', name => 'Cron Case');
ok(value(q{SELECT recovery.schedule_jobs() -> 'jobs' @> '[{"name": "recovery-reminders"}]'}),
   'schedule_jobs registers the reminders with pg_cron');

ok(wait_for('the worker', sub { value(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_recovery delivery'}) }),
   'the delivery worker runs in the cluster');

# 1. A due case: exactly one email, rendered
{
    my $case = new_case(policy => 'due', name => 'Ann <b>& Co</b>', amount => 123456);
    $db->do('CALL recovery.run_reminders()');
    my $id = value('SELECT id FROM recovery.notifications WHERE case_id = $1', $case);
    is(value('SELECT count(*) FROM recovery.notifications WHERE case_id = $1', $case), 1,
       'run_reminders queues one notification for the due case');
    is(value('SELECT step_no FROM recovery.notifications WHERE id = $1', $id), 2,
       'for the latest step that is due (day 3 after the due date, not the courtesy SMS)');
    my $sent = wait_status($id, 'sent');
    ok($sent, 'the worker sends it');
    my @mails = grep { /X-Recovery-Notification: $id\r\n/ } $smtp->messages;
    is(scalar @mails, 1, 'the SMTP sink received exactly one email');
    my ($head, $parts) = parse_email($mails[0] // '');
    my $reference = sprintf 'RC-%06d', $case;
    like($head, qr/^Message-ID: <notification-$id\@recovery\.test>\r$/m, 'with the stable Message-ID');
    is($sent->{message_id}, "<notification-$id\@recovery.test>", 'recorded on the notification');
    like($head, qr/^From: Recovery Team <dunning\@recovery\.test>\r$/m, 'from the configured sender');
    like($head, qr/^To: .*<customer\d+\@example\.test>\r$/m, 'to the customer');
    my ($subject) = $head =~ /^Subject: (.*(?:\r\n .*)*)/m;
    my $decoded = join '', map { decode_base64($_) } $subject =~ /=\?UTF-8\?B\?([^?]+)\?=/g;
    utf8::decode($decoded);
    is($decoded, "Overdue: \x{a3}1,234.56 \x{2013} $reference", 'the subject is rendered and RFC 2047 encoded');
    my $text = $parts->{'text/plain'} // '';
    utf8::decode($text);
    like($text, qr/Dear Ann <b>& Co<\/b>,/, 'the text part carries the name as it is');
    like($text, qr/\x{a3}1,234\.56 was due on \d\d\/\d\d\/\d{4}\./, 'amount and date written for en-GB');
    like($text, qr{Pay: https://pay\.recovery\.test/$reference}, 'with the payment link of the case');
    like($parts->{'text/html'} // '', qr{<p>Dear Ann &lt;b&gt;&amp; Co&lt;/b&gt;,</p>},
         'the HTML part escapes every value');
    is(value('SELECT state FROM recovery.recovery_cases WHERE id = $1', $case), 'contacted',
       'delivery of the first reminder moves the open case to contacted');
    is(value(q{SELECT actor FROM recovery.case_events WHERE case_id = $1 AND event = 'contact'}, $case),
       'delivery-worker', 'recorded as the delivery worker');
    $db->do('CALL recovery.run_reminders()');
    is(value('SELECT count(*) FROM recovery.notifications WHERE case_id = $1', $case), 1,
       'running the reminders again queues nothing more');
}

# 1b. A hostile name cannot add headers
{
    my $case = new_case(policy => 'due', name => "Eve\r\nBcc: evil\@example.test\r\n\r\nInjected body");
    $db->do('CALL recovery.run_reminders()');
    my $id = value('SELECT id FROM recovery.notifications WHERE case_id = $1', $case);
    ok(wait_status($id, 'sent'), 'a customer whose name holds CR LF and a header is still written to');
    my ($mail) = grep { /X-Recovery-Notification: $id\r\n/ } $smtp->messages;
    my ($head) = split /\r\n\r\n/, $mail // '', 2;
    unlike($head, qr/^Bcc:/mi, 'but no header comes from the name: it is an encoded word');
}

# 2. The last step: its fee as a line of its own, then escalation
{
    my $case = new_case(policy => 'final', amount => 10000);
    $db->do('CALL recovery.run_reminders()');
    my $id = value('SELECT id FROM recovery.notifications WHERE case_id = $1', $case);
    ok(wait_status($id, 'sent'), 'the final step is sent');
    ok(wait_for('escalation', sub { value(q{SELECT state = 'escalated' FROM recovery.recovery_cases WHERE id = $1}, $case) }),
       'its action escalates the case');
    is_deeply($db->selectall_arrayref(q{SELECT kind, amount, outstanding FROM recovery.payments WHERE case_id = $1 ORDER BY id},
                                      undef, $case),
              [['principal', 10000, 10000], ['fee', 500, 500]], 'its fee is a payment line of kind fee');
    is(value('SELECT balance FROM recovery.recovery_cases WHERE id = $1', $case), 10500,
       'and the balance includes it');
}

# 3. Two sessions run the reminders at once: nothing is queued twice
{
    my @cases = map { new_case(policy => 'due') } 1 .. 30;
    my @pids;
    for my $session (1 .. 2) {
        my $pid = fork // die;
        if ($pid == 0) {
            my $own = $stack->dbh;
            $own->do('CALL recovery.run_reminders(now(), 4)');
            exit 0;
        }
        push @pids, $pid;
    }
    waitpid $_, 0 for @pids;
    my $counts = $db->selectall_arrayref(q{SELECT case_id, count(*) FROM recovery.notifications
                                            WHERE case_id = ANY ($1) GROUP BY case_id}, undef, \@cases);
    is(scalar @$counts, 30, 'every due case got its reminder');
    is((grep { $_->[1] != 1 } @$counts), 0, 'and none got two');
}

# 4. SMS as a signed webhook
{
    my $case = new_case();
    my $id = queue($case, 'sms');
    my $sent = wait_status($id, 'sent');
    ok($sent, 'an SMS is delivered through the webhook');
    my ($request) = grep { /"notification_id": $id\b/ } $http->messages;
    my ($head, $body) = split /\r\n\r\n/, $request // '', 2;
    like($head, qr{^POST /hook HTTP/1\.1}, 'as a POST to the configured URL');
    like($head, qr/^Idempotency-Key: <notification-$id\@recovery\.test>\r$/m, 'with the message id as Idempotency-Key');
    my ($timestamp) = $head =~ /^X-Recovery-Timestamp: (\d+)\r$/m;
    my ($signature) = $head =~ /^X-Recovery-Signature: sha256=([0-9a-f]+)\r$/m;
    is($signature, hmac_sha256_hex("$timestamp.$body", 'hook-secret'),
       'signed with HMAC-SHA256 of timestamp and body under the shared secret');
    like($body, qr/"to": "\+447700900\d{3}"/, 'to the customer\'s phone');
    like($body, qr/"body": "\\u00a3120\.00 overdue|"body": "\x{c2}\x{a3}120\.00 overdue/, 'with the rendered text');
    like($sent->{provider_message_id}, qr/^sink-\d+$/, 'the provider\'s message id is recorded');
}

# 5. Checked again just before sending
{
    my $case = new_case();
    my $id = queue($case, 'email', '2099-01-01');
    $db->do(q{SELECT recovery.case_transition($1, 'dispute', (SELECT version FROM recovery.recovery_cases WHERE id = $1),
              '{"reason": "says it was paid"}')}, undef, $case);
    my $before = () = $smtp->messages;
    $db->do('UPDATE recovery.notifications SET send_after = now() WHERE id = $1', undef, $id);
    $db->do('NOTIFY recovery_outbox');
    my $n = wait_status($id, 'cancelled');
    is($n && $n->{cancel_reason}, 'the case is disputed', 'a case disputed since the message was queued gets nothing');

    $case = new_case(amount => 5000);
    $id = queue($case, 'email', '2099-01-01');
    $db->do(q{SELECT recovery.case_record_payment($1, 5000, 'GBP', 'bank transfer')}, undef, $case);
    $db->do('UPDATE recovery.notifications SET send_after = now() WHERE id = $1', undef, $id);
    $n = wait_status($id, 'cancelled');
    is($n && $n->{cancel_reason}, 'the case is resolved', 'nor a case paid since');

    $case = new_case(preferences => '{"email": true, "sms": false}');
    $id = queue($case, 'sms');
    $n = wait_status($id, 'cancelled');
    is($n && $n->{cancel_reason}, 'the customer opted out of sms', 'an opt-out holds');
    is(scalar(() = $smtp->messages), $before, 'and none of them reached a sink');
}

# 6. Quiet hours in the customer's time zone: the message waits
{
    my ($hour) = value(q{SELECT extract(hour FROM now() AT TIME ZONE 'Asia/Tokyo')::integer});
    configure(quiet_hours_start => sprintf('%02d:00', ($hour + 23) % 24),
              quiet_hours_end => sprintf('%02d:00', ($hour + 2) % 24));
    my $case = new_case(time_zone => 'Asia/Tokyo');
    my $id = queue($case, 'email');
    my $n = wait_for('deferral', sub { my $x = notification($id); $x->{last_error} ? $x : undef });
    like($n && $n->{last_error}, qr{quiet hours in Asia/Tokyo}, 'a message in the quiet hours is deferred');
    is($n && $n->{status}, 'queued', 'and stays queued');
    is(value(q{SELECT to_char(send_after AT TIME ZONE 'Asia/Tokyo', 'HH24:MI') FROM recovery.notifications WHERE id = $1},
             $id), sprintf('%02d:00', ($hour + 2) % 24), 'until the window opens in Tokyo');
    configure(quiet_hours_start => '00:00', quiet_hours_end => '00:00');
    $db->do('UPDATE recovery.notifications SET send_after = now() WHERE id = $1', undef, $id);
    ok(wait_status($id, 'sent'), 'and goes once it may');
}

# 7. The cap on contacts per customer per 7 days
{
    configure(contact_cap => 2);
    my $case = new_case();
    my @ids = map { my $id = queue($case, 'sms'); wait_status($id, 'sent', 'failed', 'dead'); $id } 1 .. 2;
    my $third = queue($case, 'sms');
    my $n = wait_for('deferral', sub { my $x = notification($third); $x->{last_error} ? $x : undef });
    like($n && $n->{last_error}, qr/2 messages in 7 days already/, 'a third message within 7 days is held back');
    ok(value(q{SELECT n.send_after >= (SELECT min(sent_at) FROM recovery.notifications WHERE id = ANY ($2)) + interval '7 days'
               FROM recovery.notifications n WHERE n.id = $1}, $third, \@ids),
       'until the first of them is 7 days old');
    configure(contact_cap => 100);
    $db->do(q{UPDATE recovery.notifications SET status = 'cancelled', cancel_reason = 'test' WHERE id = $1}, undef, $third);
}

# 8. A provider that fails: retries with growing delays, then a dead letter
{
    $smtp->respond(451);
    my $start = scalar(my @a = $smtp->attempts);
    my $id = queue(new_case(), 'email');
    my $n = wait_status($id, 'dead');
    ok($n, 'after the last attempt the message is a dead letter');
    is($n && $n->{attempts}, 3, 'after recovery.delivery_max_attempts attempts');
    like($n && $n->{last_error}, qr/SMTP 451/, 'with the provider\'s answer as the error');
    my @times = map { $_->[0] } grep { $_->[1] == 451 } (($smtp->attempts)[$start .. $start + 2]);
    my ($first_gap, $second_gap) = ($times[1] - $times[0], $times[2] - $times[1]);
    ok($first_gap >= 0.7 && $second_gap > $first_gap,
       sprintf('the delays grow (%.1f s, then %.1f s)', $first_gap, $second_gap));

    $smtp->respond(550);
    $id = queue(new_case(), 'email');
    $n = wait_status($id, 'dead');
    is($n && $n->{attempts}, 1, 'a permanent refusal (550) is not retried');
    $smtp->respond(undef);

    my $retried = value(q{SELECT (recovery.api_notification_retry($1) ->> 'status')}, $id);
    is($retried, 'queued', 'a dead letter can be queued again by hand');
    ok(wait_status($id, 'sent'), 'and is sent once the provider takes it');
    $db->do(q{UPDATE recovery.delivery_circuits SET state = 'closed', consecutive_failures = 0});
}

# 9. The circuit breaker: opens on a provider that is down, probes, closes
{
    configure(circuit_failure_threshold => 2, delivery_max_attempts => 10);
    $smtp->stop;
    my @ids = map { queue(new_case(), 'email') } 1 .. 3;
    ok(wait_for('the circuit to open', sub { value(q{SELECT state = 'open' FROM recovery.delivery_circuits WHERE channel = 'email'}) }),
       'two failures in a row open the email circuit');
    sleep 0.5;
    my $tried = value(q{SELECT count(*) FROM recovery.notifications WHERE id = ANY ($1) AND attempts > 0}, \@ids);
    is($tried, 2, 'while it is open no other email is tried');
    is(value(q{SELECT state FROM recovery.delivery_circuits WHERE channel = 'sms'}), 'closed',
       'the other channels are not affected');
    ok(wait_for('a failed probe', sub { value(q{SELECT sum(attempts) >= 3 FROM recovery.notifications WHERE id = ANY ($1)}, \@ids) }),
       'after the cool-down one probe goes out');
    # the probe's attempt is counted when it is claimed, its failure recorded after the send
    ok(wait_for('the probe\'s failure', sub { value(q{SELECT state = 'open' FROM recovery.delivery_circuits WHERE channel = 'email'}) }),
       'a failed probe opens the circuit again');
    $smtp->start;
    ok(wait_for('all three', sub { value(q{SELECT bool_and(status = 'sent') FROM recovery.notifications WHERE id = ANY ($1)}, \@ids) }, 30),
       'when the provider is back, the probe succeeds and every message is sent');
    is(value(q{SELECT state FROM recovery.delivery_circuits WHERE channel = 'email'}), 'closed', 'and the circuit is closed');
    configure(circuit_failure_threshold => 50, delivery_max_attempts => 3);
}

# 10. The worker survives a PostgreSQL restart and a crash in the middle of a send
{
    $stack->stop_db;
    $stack->start_db;
    $db = $stack->dbh;
    my $id = queue(new_case(), 'email');
    ok(wait_status($id, 'sent'), 'after a restart of PostgreSQL the worker delivers again');

    # a crash between sending and recording leaves "sending" behind
    my $case = new_case();
    $id = queue($case, 'email', '2099-01-01');
    $db->do(q{UPDATE recovery.notifications SET status = 'sending', attempts = 1, send_after = now(),
              message_id = '<notification-' || id || '@recovery.test>' WHERE id = $1}, undef, $id);
    $db->do(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_recovery delivery'});
    my $n = wait_status($id, 'sent');
    ok($n, 'a message left sending is sent when the worker is back');
    my @copies = grep { /^Message-ID: <notification-$id\@recovery\.test>\r$/m } $smtp->messages;
    is(scalar @copies, 1, 'with the same Message-ID, so the provider can recognise a resend');
}

# 11. pg_cron runs the reminders by itself
{
    ok(wait_for('the pg_cron job', sub {
        value(q{SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                 WHERE j.jobname = 'recovery-reminders' AND d.status = 'succeeded'}) }, 75),
       'the recovery-reminders job ran and succeeded');
    ok(wait_for('its notification', sub { value('SELECT count(*) FROM recovery.notifications WHERE case_id = $1', $cron_case) }),
       'and queued the reminder of the case that was due');
    ok(value(q{SELECT count(*) FROM recovery.reminder_runs WHERE run_by = 'postgres'}), 'its runs are recorded');
    is(value(q{SELECT recovery.unschedule_jobs()}), value(q{SELECT count(*) FROM recovery.job_definitions()}),
       'unschedule_jobs removes every job of the extension');
}

done_testing();
