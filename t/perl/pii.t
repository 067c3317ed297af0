# Personal data encrypted at rest, on a stack of this test's own (its KEK
# is changed and its server restarted):
# - written through the API, read back through the API by each role, found
#   by email and phone through the blind indexes;
# - no name, email, phone, note, document or file name in the table files,
#   the WAL or pg_dump,
#   where the customer's reference (kept clear) is found;
# - a sealed value moved to another row does not decrypt; a wrong or
#   missing KEK is a clear error (503 over HTTP), the server keeps running,
#   and the right KEK brings everything back;
# - erasure: the old row versions (pageinspect) no longer open, the chain
#   verifies;
# - one customer's data key rotated: every copy sealed again, the old
#   ciphertext no longer opens, the gateway reads on at once;
# - the KEK rotated under a write load, then a restart with the new KEK
#   alone: everything reads back;
# - secrets and parameters stay out of sight: recovery.key_command is not
#   readable by other roles, and no personal value reaches the server's or
#   the gateway's log.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Find;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Recovery::HTTP qw(http jwt claims);
use Recovery::Stack;
use Recovery::Test qw(wait_for);

my $stack = Recovery::Stack->new(WORKERS => 1);
my $dir = $stack->pg_dir;
my $base = $stack->base;
my $tag = "pii$$";

my $dbh = $stack->dbh;
# old row versions stay where pageinspect finds them
$dbh->do(q{ALTER TABLE recovery.customers SET (autovacuum_enabled = false)});
my %token;
for my $role (qw(admin agent viewer auditor)) {
    my ($id) = $dbh->selectrow_array(q{SELECT recovery.user_create($1, $2, $3, 'pii-test-password')},
                                     undef, "$role\@$tag.test", "PII $role", "recovery_$role");
    $token{$role} = jwt(claims(role => "recovery_$role", sub => "$id", email => "$role\@$tag.test",
                               exp => time + 3600), dir => $stack->nginx_dir);
}

sub value {
    my ($sql, @bind) = @_;
    my $db = $stack->dbh;
    my ($v) = $db->selectrow_array($sql, undef, @bind);
    $db->disconnect;
    return $v;
}

# the error of a statement on a new connection, '' if none
sub error_of {
    my ($sql, @bind) = @_;
    return error_as(undef, $sql, @bind);
}

sub error_as {
    my ($role, $sql, @bind) = @_;
    my $db = $stack->dbh;
    $db->do("SET ROLE $role") if $role;
    eval { $db->selectrow_array($sql, undef, @bind) };
    my $error = $@ ? ($db->state // '') . ' ' . $@ : '';
    $db->disconnect;
    return $error;
}

sub api {
    my ($method, $path, $role, $json) = @_;
    return http($method => $path, token => $token{$role}, base => $base,
                defined $json ? (json => $json) : ());
}

sub new_customer {
    my ($n, %c) = @_;
    my $res = api(POST => '/api/v1/customers', 'agent',
                  { external_ref => "REF-$tag-$n", name => $c{name} // "Customer $tag $n",
                    email => $c{email} // "c$n\@$tag.test", phone => $c{phone} });
    die "customer $n: $res->{status} $res->{content}" unless $res->{status} == 201;
    return $res->{json}{id};
}

# a case of the customer, for notes (the API opens cases from payments)
sub case_of {
    my ($customer) = @_;
    my $payment = value(q{SELECT (recovery.payment_create($1, 'INV-1', 5000, 'EUR', current_date - 10)).id},
                        $customer);
    return value(q{SELECT (recovery.payment_fail($1, 'insufficient funds')).id}, $payment);
}

# --- written and read through the API ---------------------------------------
my %secret = (name => "Quokka Zanzibar$$", email => "quokka$$\@pii.test",
              phone => '+4930' . sprintf('%08d', $$), note => "Pays after the divorce settlement quokkanote$$");
my $alice = new_customer(1, name => $secret{name}, email => $secret{email}, phone => $secret{phone});
my $case = case_of($alice);
is(api(POST => "/api/v1/recovery-cases/$case/notes", 'agent', { body => $secret{note} })->{status}, 201,
   'a note is added: 201');

my $doc_content = "Copy of the ID card of quokkadoc$$\n";
my $doc_name = "id-card-quokkafile$$.txt";
my $doc = http(POST => "/api/v1/recovery-cases/$case/documents?filename=$doc_name", token => $token{agent},
               base => $base, headers => { 'Content-Type' => 'text/plain' }, body => $doc_content);
is($doc->{status}, 201, 'a document is uploaded: 201');
is($doc->{json}{filename}, $doc_name, 'and answered with its file name');
my $download = api(GET => "/api/v1/documents/$doc->{json}{id}/content", 'viewer');
is($download->{content}, $doc_content, 'the viewer downloads the content as uploaded');
like($download->{headers}{'content-disposition'} // '', qr/\Q$doc_name\E/, 'under its file name');
is(api(GET => "/api/v1/recovery-cases/$case/documents", 'viewer')->{json}{items}[0]{filename}, $doc_name,
   'the case lists it by name');
$secret{document} = "quokkadoc$$";
$secret{filename} = "quokkafile$$";

for my $role (qw(agent viewer auditor)) {
    my $got = api(GET => "/api/v1/customers/$alice", $role)->{json};
    is_deeply([@$got{qw(name email phone)}], [@secret{qw(name email phone)}],
              "the $role reads the customer's name, email and phone as written");
}
my $read_case = api(GET => "/api/v1/recovery-cases/$case", 'viewer')->{json};
is($read_case->{customer}{name}, $secret{name}, 'the viewer reads the customer\'s name in the case');
ok((grep { ($_->{body} // '') eq $secret{note} } @{ $read_case->{timeline} }),
   'and the note in its timeline');
my $audit = api(GET => "/api/v1/audit?table=customers&row=$alice", 'auditor')->{json};
is((grep { $_->{action} eq 'INSERT' } @{ $audit->{items} })[0]{new_row}{name}, $secret{name},
   'the auditor reads the name in the audit trail');

my $found = api(GET => '/api/v1/customers?email=' . uc($secret{email}), 'viewer')->{json}{items};
is_deeply([map { $_->{id} } @$found], [$alice], 'the customer is found by email, in any case, through its blind index');
(my $spaced = $secret{phone}) =~ s/^(\+\d\d)(\d\d)/$1 $2 /;
$spaced =~ s/\+/%2B/;
$spaced =~ s/ /%20/g;
$found = api(GET => "/api/v1/customers?phone=$spaced", 'viewer')->{json}{items};
is_deeply([map { $_->{id} } @$found], [$alice], 'and by phone, written with spaces');
is_deeply(api(GET => "/api/v1/customers?email=nobody\@$tag.test", 'viewer')->{json}{items}, [],
          'an email nobody has finds nobody');
$found = api(GET => '/api/v1/customers?q=zanzibar', 'viewer')->{json}{items};
is_deeply([map { $_->{id} } @$found], [$alice], 'a part of the name is still found (each name decrypted)');

# --- what else is personal: an SMS read for the case, a hold's reason,
#     statement lines' payer and IBAN, an event's reason and details ----------
$secret{mail} = "paid from my late husband's account quokkamail$$";
my $res = api(POST => '/api/v1/extractions', 'agent',
              { source => 'email', case_id => $case,
                content => "From: Quokka <quokka$$\@pii.test>\r\nSubject: $secret{mail}\r\n"
                         . "Content-Type: text/plain\r\n\r\nPaid EUR 1.00 for RC-$case\r\n" });
is($res->{status}, 200, 'an email for the case is read: 200') or diag $res->{content};
like(api(GET => "/api/v1/extractions/$res->{json}{id}", 'viewer')->{content}, qr/\Q$secret{mail}\E/,
     'the viewer reads its subject in the extraction\'s result');
ok(value(q{SELECT recovery.pii_is_sealed(result) FROM recovery.extractions WHERE id = $1}, $res->{json}{id}),
   'which is sealed');

$secret{hold} = "in hospital after the accident quokkahold$$";
my $until = value(q{SELECT to_char((now() + interval '10 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')});
$res = api(POST => "/api/v1/recovery-cases/$case/holds", 'agent', { reason => $secret{hold}, ends_at => $until });
is($res->{status}, 201, 'a hold with its reason: 201');
is($res->{json}{reason}, $secret{hold}, 'answered with the reason as written');
is(api(GET => "/api/v1/recovery-cases/$case/holds", 'viewer')->{json}{items}[0]{reason}, $secret{hold},
   'the viewer reads it in the case\'s holds');

$secret{payer} = "Quokka Payer$$";
$secret{iban} = sprintf 'DE89370400440%09d', $$;
my $spaced_iban = lc join ' ', unpack '(A4)*', $secret{iban};
$res = http(POST => '/api/v1/extractions/statements', token => $token{agent}, base => $base,
            headers => { 'Content-Type' => 'text/csv' },
            body => "date,amount,currency,reference,payer,iban\n"
                  . "2026-11-02,2.00,EUR,RC-$case,$secret{payer},$secret{iban}\n"
                  . "2026-11-03,3.00,EUR,nothing of ours $tag,$secret{payer},$secret{iban}\n");
is($res->{status}, 200, 'a statement is imported: 200') or diag $res->{content};
my $statement = $res->{json}{id};
my @lines = @{ api(GET => "/api/v1/extractions/$statement", 'viewer')->{json}{lines} };
is_deeply([map { [@$_{qw(status payer iban)}] } @lines],
          [['applied', $secret{payer}, $secret{iban}], ['unmatched', $secret{payer}, $secret{iban}]],
          'the viewer reads both lines\' payer and IBAN as the statement had them');
is(value(q{SELECT count(*) FROM recovery.extraction_lines
            WHERE extraction_id = $1 AND recovery.pii_is_sealed(payer) AND recovery.pii_is_sealed(iban)}, $statement),
   2, 'both are sealed: the matched one for the customer, the other under the shared key');
my $db = $stack->dbh;
$db->do('SET ROLE recovery_viewer');
my $by_iban = $db->selectcol_arrayref(q{SELECT id FROM recovery.statement_lines_by_iban($1)}, undef, $spaced_iban);
$db->disconnect;
is_deeply($by_iban, [map { $_->{id} } @lines], 'both are found by the IBAN, written in lower case with spaces');
$res = api(POST => "/api/v1/reconciliation/$lines[1]{id}/confirm", 'agent', { case_id => $case });
is($res->{status}, 200, 'the unmatched line is given to the case: 200') or diag $res->{content};
is($res->{json}{payer}, $secret{payer}, 'and still reads');
like(error_of(q{SELECT recovery.pii_open(payer, 'extraction_lines', 'payer', id, 0)
                  FROM recovery.extraction_lines WHERE id = $1}, $lines[1]{id}),
     qr/does not decrypt/, 'its payer moved from the shared key to the customer\'s');

$secret{reason} = "disputes since the burglary quokkareason$$";
$secret{detail} = "said so at the funeral quokkadetail$$";
my $version = api(GET => "/api/v1/recovery-cases/$case", 'viewer')->{json}{version};
$res = api(POST => "/api/v1/recovery-cases/$case/transitions", 'agent',
           { event => 'dispute', expected_version => $version,
             details => { reason => $secret{reason}, heard => $secret{detail} } });
is($res->{status}, 200, 'a dispute with a reason and a field of the agent\'s own: 200') or diag $res->{content};
my ($dispute) = grep { ($_->{event} // '') eq 'dispute' } @{ api(GET => "/api/v1/recovery-cases/$case", 'viewer')->{json}{timeline} };
is_deeply([$dispute->{reason}, $dispute->{details}{reason}, $dispute->{details}{heard}],
          [$secret{reason}, $secret{reason}, $secret{detail}],
          'the timeline shows the event\'s reason and its details as sent');
is(value(q{SELECT details::text FROM recovery.case_events WHERE case_id = $1 AND event = 'dispute'}, $case), '{}',
   'the details kept in clear hold none of them');
my $payment_event = value(q{SELECT details ->> 'amount' FROM recovery.case_events
                             WHERE case_id = $1 AND event = 'payment_received' ORDER BY id LIMIT 1}, $case);
is($payment_event, 100, 'while a payment\'s amount stays clear for reports');

# --- nothing personal at rest ------------------------------------------------
sub files_under {
    my ($top) = @_;
    my @files;
    find(sub { push @files, $File::Find::name if -f $_ }, $top);
    return @files;
}

sub holding {
    my ($needle, @files) = @_;
    my @hits;
    for my $file (@files) {
        open my $fh, '<:raw', $file or next;
        local $/;
        my $content = <$fh>;
        push @hits, $file if index($content, $needle) >= 0;
    }
    return @hits;
}

$dbh->do('CHECKPOINT');
my $db_oid = value(q{SELECT oid FROM pg_database WHERE datname = 'recovery'});
my @table_files = files_under("$dir/data/base/$db_oid");
my @wal_files = grep { m{/[0-9A-F]{24}$} } files_under("$dir/data/pg_wal");
ok(holding("REF-$tag-1", @table_files) && holding("REF-$tag-1", @wal_files),
   'the customer\'s reference, kept clear, is found in the table files and the WAL (the scan works)');
for my $what (sort keys %secret) {
    is_deeply([holding($secret{$what}, @table_files, @wal_files)], [],
              "the $what is in no table file and no WAL segment");
}
my $dump = `runuser -u postgres -- pg_dump -h '$dir/sock' -p $stack->{pg_port} -d recovery 2>&1`;
ok(index($dump, "REF-$tag-1") >= 0, 'pg_dump holds the reference');
ok(!(grep { index($dump, $_) >= 0 } values %secret), 'and none of the personal values');

# --- a sealed value moved to another row ------------------------------------
my $bob = new_customer(2);
$dbh->do(q{UPDATE recovery.customers SET name = (SELECT name FROM recovery.customers WHERE id = $1) WHERE id = $2},
         undef, $alice, $bob);
like(error_of(q{SELECT name FROM recovery.customers_decrypted WHERE id = $1}, $bob),
     qr/^XX001 .*customers\.name of row $bob \(customer $bob\) does not decrypt/,
     'a name copied from another customer does not decrypt: XX001, naming the table, column and row');
$res = api(GET => "/api/v1/customers/$bob", 'agent');
is($res->{status}, 500, 'its GET is answered 500');
ok(index($res->{content}, $secret{name}) < 0, 'with nothing of the other customer\'s name');
is(api(GET => "/api/v1/customers/$alice", 'agent')->{json}{name}, $secret{name}, 'the original still reads');
$dbh->do(q{UPDATE recovery.customers SET name = convert_to('Bob Again', 'UTF8') WHERE id = $1}, undef, $bob);
is(api(GET => "/api/v1/customers/$bob", 'agent')->{json}{name}, 'Bob Again', 'a name written anew is sealed for its own row');

# --- a wrong or missing KEK --------------------------------------------------
sub key_command {
    my ($command) = @_;
    if (defined $command) {
        $dbh->do(qq{ALTER SYSTEM SET recovery.key_command = '$command'});
    } else {
        $dbh->do(q{ALTER SYSTEM RESET recovery.key_command});
    }
    $dbh->do(q{SELECT pg_reload_conf()});
}
system('runuser', '-u', 'postgres', '--', 'sh', '-c',
       "umask 077; printf 'k1 %s\\n' " . ('ab' x 32) . " > '$dir/kek-wrong'") == 0 or die 'kek-wrong';
key_command("cat $dir/kek-wrong");
like(wait_for('a new backend to read the wrong KEK',
              sub { error_of(q{SELECT name FROM recovery.customers_decrypted WHERE id = $1}, $alice) }),
     qr/^PR012 .*key-encryption key "k1" does not unwrap the customer key $alice/,
     'a wrong KEK: PR012, the KEK that does not unwrap is named');
is(wait_for('the gateway\'s connections to reload', sub {
       my $r = api(GET => "/api/v1/customers/$alice", 'agent');
       $r->{status} == 503 ? $r : undef })->{json}{error}, 'key_unavailable',
   'over HTTP: 503 key_unavailable, never garbage');
is(api(GET => "/api/v1/customers?q=Searchsecret$$", 'agent')->{status}, 503,
   'a search that needs the key fails too (its query string is checked against the logs below)');
key_command('cat /nonexistent/kek');
like(wait_for('a new backend to find no KEK', sub {
         my $e = error_of(q{SELECT name FROM recovery.customers_decrypted WHERE id = $1}, $alice);
         $e =~ /not available/ ? $e : undef }),
     qr/^PR012 .*the key-encryption key of personal data is not available.*recovery\.key_command failed/s,
     'a KEK command that fails: PR012, not available, and why');
is(value('SELECT 1'), 1, 'the server keeps running');
is(api(GET => '/api/v1/case-states', 'agent')->{status}, 200, 'and answers what needs no key');
key_command(undef);
is(wait_for('the right KEK to be read again', sub {
       my $r = api(GET => "/api/v1/customers/$alice", 'agent');
       $r->{status} == 200 ? $r : undef })->{json}{name}, $secret{name}, 'the right KEK back: the name reads again');

# --- erasure -------------------------------------------------------------------
my $erin = new_customer(3, name => "Erin Erasable$$");
my $erin_case = case_of($erin);
api(POST => "/api/v1/recovery-cases/$erin_case/notes", 'agent', { body => "Erin's note $$" });
is(api(PATCH => "/api/v1/customers/$erin", 'agent', { expected_version => 1, name => "Erin Renamed$$" })->{status},
   200, 'the customer to erase is renamed (an old row version)');
is(api(POST => "/api/v1/recovery-cases/$erin_case/holds", 'agent',
        { reason => "Erin's hold $$", ends_at => $until })->{status}, 201, 'a hold of theirs');
is(api(POST => '/api/v1/extractions', 'agent',
       { source => 'sms', content => "Paid EUR 1.00 for RC-$erin_case, Erin's SMS $$", case_id => $erin_case })->{status},
   200, 'an SMS of theirs read');
is(api(POST => "/api/v1/recovery-cases/$erin_case/transitions", 'agent',
       { event => 'dispute', expected_version => api(GET => "/api/v1/recovery-cases/$erin_case", 'viewer')->{json}{version},
         details => { reason => "Erin's dispute $$", heard => "Erin's detail $$" } })->{status}, 200,
   'and a dispute with a reason and a detail');
is(api(POST => "/api/v1/customers/$erin/erase", 'admin')->{status}, 200, 'and erased: 200');
is_deeply($dbh->selectall_arrayref(q{
              SELECT DISTINCT convert_from(reason, 'UTF8'), personal_details FROM recovery.case_events
               WHERE customer_id = $1 AND reason IS NOT NULL}, undef, $erin),
          [['[erased]', undef]], 'their events keep the erasure\'s words for reasons, and no personal details');
is(value(q{SELECT string_agg(convert_from(reason, 'UTF8'), ',') FROM recovery.dunning_holds WHERE customer_id = $1}, $erin),
   '[erased]', 'their hold\'s reason is erased');
is(value(q{SELECT count(*) FROM recovery.extractions WHERE customer_id = $1 AND result IS NOT NULL}, $erin), 0,
   'what their SMS said is gone');
is(api(POST => "/api/v1/recovery-cases/$erin_case/transitions", 'agent',
       { event => 'dispute_rejected', expected_version => api(GET => "/api/v1/recovery-cases/$erin_case", 'viewer')->{json}{version},
         details => { reason => "Erin's later reason $$" } })->{status}, 200,
   'their case is still worked after the erasure');
is(value(q{SELECT convert_from(reason, 'UTF8') FROM recovery.case_events WHERE case_id = $1 ORDER BY id DESC LIMIT 1},
         $erin_case), '[erased]', 'its new event stores the erasure\'s words, not the reason given');
is(value(q{SELECT wrapped IS NULL AND destroyed_at IS NOT NULL FROM recovery.customer_keys WHERE customer_id = $1},
         $erin), 1, 'their data key is destroyed');
$dbh->do('CREATE EXTENSION IF NOT EXISTS pageinspect');
my $versions = $dbh->selectall_arrayref(q{
    SELECT encode(v.attrs[3], 'hex') FROM (
        SELECT t_attrs AS attrs
          FROM generate_series(0, pg_relation_size('recovery.customers') / 8192 - 1) b,
               heap_page_item_attrs(get_raw_page('recovery.customers', b::integer), 'recovery.customers'::regclass)
         WHERE t_attrs IS NOT NULL) v
     WHERE position(convert_to($1, 'UTF8') IN v.attrs[2]) > 0}, undef, "REF-$tag-3");
cmp_ok(scalar @$versions, '>=', 3, 'pageinspect finds the customer\'s row versions, old and new');
$dbh->do(q{CREATE FUNCTION pg_temp.opened(v bytea, id bigint) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    RETURN recovery.pii_open(v, 'customers', 'name', id, id);
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END
$f$});
# a short varlena header is one byte, a long one four
my $opened = $dbh->selectall_arrayref(q{
    SELECT recovery.pii_is_sealed(v.name), pg_temp.opened(v.name, $1)
      FROM (SELECT substr(a, CASE WHEN get_byte(x.a, 0) & 1 = 1 THEN 2 ELSE 5 END) AS name
              FROM (SELECT decode(h, 'hex') AS a FROM unnest($2::text[]) h) x) v}, undef, $erin,
    [map { $_->[0] } @$versions]);
my @sealed = grep { $_->[0] } @$opened;
cmp_ok(scalar @sealed, '>=', 2, 'the old versions hold sealed names');
is_deeply([grep { $_->[1] !~ /^PR012 customer $erin was erased: their personal data can no longer be decrypted/ } @sealed],
          [], 'none of them can be decrypted any more: the key is gone');
is_deeply([map { $_->[1] } grep { !$_->[0] } @$opened], ["erased customer $erin"],
          'the live version holds the erasure\'s placeholder');
is_deeply([holding("Erin Renamed$$", files_under("$dir/data/base/$db_oid"), @wal_files)], [],
          'the names were never in the table files or the WAL');
is(api(GET => "/api/v1/customers/$erin", 'viewer')->{json}{name}, "erased customer $erin", 'the API shows the erasure');
is(api(GET => '/api/v1/audit/verify', 'auditor')->{json}{ok}, JSON::PP::true, 'the audit chain verifies');

# --- one customer's data key rotated -------------------------------------------
my $old_sealed_name = value(q{SELECT encode(name, 'hex') FROM recovery.customers WHERE id = $1}, $alice);
is(api(GET => "/api/v1/customers/$alice", 'viewer')->{json}{name}, $secret{name},
   'the gateway\'s backends hold the customer\'s key (read once more)');
my $as_admin = $stack->dbh;
$as_admin->do('SET ROLE recovery_admin');
my $rotation = JSON::PP::decode_json($as_admin->selectrow_array(q{SELECT recovery.customer_rotate_key($1)}, undef, $alice));
$as_admin->disconnect;
is_deeply([@$rotation{qw(key_version customers notes documents)}], [2, 1, 1, 1],
          'customer_rotate_key(): key version 2, the customer, the note and the document sealed again');
is_deeply([@$rotation{qw(holds statement_lines extractions)}], [1, 3, 1],
          'the hold, the statement\'s two lines and the email\'s, and the email\'s result too');
cmp_ok($rotation->{events}, '>=', 2, "and the events with a reason or details ($rotation->{events})");
cmp_ok($rotation->{audit_rows}, '>=', 3, "and the audit trail's copies ($rotation->{audit_rows} rows)");
my $after_rotation = api(GET => "/api/v1/customers/$alice", 'viewer')->{json};
is_deeply([@$after_rotation{qw(name email phone)}], [@secret{qw(name email phone)}],
          'the gateway reads the customer under the new key at once (its backends dropped the old one at commit)');
is(api(GET => "/api/v1/documents/$doc->{json}{id}/content", 'viewer')->{content}, $doc_content,
   'the document downloads as uploaded');
ok((grep { ($_->{body} // '') eq $secret{note} } @{ api(GET => "/api/v1/recovery-cases/$case", 'viewer')->{json}{timeline} }),
   'the note reads');
$audit = api(GET => "/api/v1/audit?table=customers&row=$alice", 'auditor')->{json};
is((grep { $_->{action} eq 'INSERT' } @{ $audit->{items} })[0]{new_row}{name}, $secret{name},
   'the audit trail\'s copy opens under the new key');
like(error_of(q{SELECT recovery.pii_open(decode($1, 'hex'), 'customers', 'name', $2, $2)}, $old_sealed_name, $alice),
     qr/^XX001 .*sealed with data key version 1; the customer's key is version 2/s,
     'the name as it was sealed before no longer opens');
is(api(GET => '/api/v1/audit/verify', 'auditor')->{json}{ok}, JSON::PP::true, 'the audit chain verifies');

# --- KEK rotation under a write load, then the new KEK alone -----------------
my $old_kek = do { local (@ARGV, $/) = ("$dir/kek"); <> };
my ($old_line) = $old_kek =~ /^(k1 [0-9a-f]{64})$/m or die 'no k1 in kek';
my $new_line = 'k2 ' . join('', map { sprintf '%02x', int rand 256 } 1 .. 32);
my $stop = "$dir/stop-writers";
unlink $stop;
my @writers;
for my $w (1 .. 2) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my ($n, $failed) = (0, 0);
        until (-e $stop) {
            $n++;
            my $r = api(POST => '/api/v1/customers', 'agent',
                        { external_ref => "ROT-$tag-$w-$n", name => "Rotating $w $n", email => "r$w.$n\@$tag.test" });
            $failed++ unless $r->{status} == 201;
        }
        exit($failed ? 1 : 0);
    }
    push @writers, $pid;
}
ok(wait_for('the writers to create customers',
            sub { value(q{SELECT count(*) FROM recovery.customers WHERE external_ref LIKE $1}, "ROT-$tag-%") >= 20 }),
   'writers create customers');
system('runuser', '-u', 'postgres', '--', 'sh', '-c', "umask 077; printf '%s\\n%s\\n' '$new_line' '$old_line' > '$dir/kek'") == 0
    or die 'kek';
$dbh->do(q{SELECT pg_reload_conf()});
my $before_rotation = value(q{SELECT count(*) FROM recovery.customers WHERE external_ref LIKE $1}, "ROT-$tag-%");
$dbh->do(q{CALL recovery.rotate_kek(10)});
my $during = value(q{SELECT count(*) FROM recovery.customers WHERE external_ref LIKE $1}, "ROT-$tag-%");
diag("customers written while rotate_kek() ran: " . ($during - $before_rotation));
ok(wait_for('20 more customers after the rotation',
            sub { value(q{SELECT count(*) FROM recovery.customers WHERE external_ref LIKE $1}, "ROT-$tag-%")
                  >= $during + 20 }),
   'the writers went on while the keys were re-wrapped, and after');
open my $fh, '>', $stop or die;
close $fh;
my $writer_failures = 0;
for my $pid (@writers) {
    waitpid $pid, 0;
    $writer_failures++ if $?;
}
is($writer_failures, 0, 'no write failed during the rotation');
# a key made by a backend that had not reloaded yet: run again (a no-op if none)
$dbh->do(q{CALL recovery.rotate_kek(10)});
is_deeply($dbh->selectall_arrayref(q{SELECT kek_id, current FROM recovery.key_rotation_progress}),
          [['k2', 1]], 'key_rotation_progress: every key under k2');
system('runuser', '-u', 'postgres', '--', 'sh', '-c', "umask 077; printf '%s\\n' '$new_line' > '$dir/kek'") == 0
    or die 'kek';
$dbh->disconnect;
$stack->stop_db;
$stack->start_db;
$dbh = $stack->dbh;
is(value(q{SELECT count(*) FROM recovery.customers_decrypted WHERE name LIKE 'Rotating %' AND email LIKE 'r%'}),
   value(q{SELECT count(*) FROM recovery.customers WHERE external_ref LIKE $1}, "ROT-$tag-%"),
   'restarted with k2 alone, every customer written during the rotation reads back');
is(value(q{SELECT count(*) FROM recovery.case_notes_decrypted WHERE body IS NOT NULL}),
   value(q{SELECT count(*) FROM recovery.case_notes}), 'and every note');
is(wait_for('the gateway to reconnect', sub {
       my $r = api(GET => "/api/v1/customers/$alice", 'agent');
       $r->{status} == 200 ? $r : undef })->{json}{email}, $secret{email}, 'the API reads the first customer again');
is(api(GET => '/api/v1/customers?email=' . $secret{email}, 'viewer')->{json}{items}[0]{id}, $alice,
   'and the blind index still finds them');

# --- secrets and parameters out of sight --------------------------------------
my $nginx_conf = do { local (@ARGV, $/) = ($stack->nginx_dir . '/nginx.conf'); <> };
unlike($nginx_conf, qr/password=(?!@)/, 'the gateway\'s database password is not in nginx.conf');
like($nginx_conf, qr{passfile=\S+/pgpass}, 'but in a libpq password file');
is((stat($stack->nginx_dir . '/pgpass'))[2] & 077, 0, 'that only its owner may read');
like(error_as('recovery_admin', q{SHOW recovery.key_command}), qr/must be superuser|permission denied/,
     'recovery.key_command cannot be read by the application roles');
my $as_gateway = $stack->dbh;
$as_gateway->do('SET ROLE recovery_authenticator');
is($as_gateway->selectrow_array(q{SELECT count(*) FROM pg_settings WHERE name = 'recovery.key_command'}),
   0, 'nor seen in pg_settings by the gateway\'s login role');
$as_gateway->disconnect;
is(api(POST => '/api/v1/customers', 'agent', { external_ref => "REF-$tag-1", name => "Logsecret$$",
                                               email => "logsecret$$\@pii.test" })->{status},
   409, 'a request that fails with personal values in it: 409');
ok(wait_for('the failure in the server log', sub { $stack->server_log =~ /REF-\Q$tag\E-1/ }),
   'the server logs the failure');
ok(index($stack->server_log, "Logsecret$$") < 0 && index($stack->server_log, "logsecret$$") < 0,
   'without the name or email it was sent with (no parameters in the log)');
sub gateway_logs {
    my $logs = '';
    for my $file (glob($stack->nginx_dir . '/*.log')) {
        open my $log, '<', $file or next;
        local $/;
        $logs .= <$log>;
    }
    return $logs;
}
# the access log is written every second
my $logs = wait_for('the failed request in the access log',
                    sub { my $l = gateway_logs(); $l =~ m{"POST /api/v1/customers HTTP/1\.1" 409} ? $l : undef });
ok($logs && index($logs, "/api/v1/recovery-cases/$case/documents") >= 0,
   'the gateway\'s access log has the requests, the failed one too');
ok(index($logs // '', 'request: "GET /api/v1/customers HTTP/1.1"') >= 0,
   'the error log names the failed search by its path alone');
is_deeply([grep { index($logs // '', $_) >= 0 } (values %secret, "Logsecret$$", "Searchsecret$$")], [],
          'nor does the gateway log any personal value: no query string in its logs');

done_testing();
