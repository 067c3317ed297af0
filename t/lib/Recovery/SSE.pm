package Recovery::SSE;
# A client of the gateway's event stream (GET /api/v1/events) for the tests:
# a plain socket, the HTTP/1.1 response with its chunked body decoded, and
# the server-sent events parsed as they arrive.  Core Perl only.
#
#   my $sse = Recovery::SSE->open($base, '/api/v1/events?types=case.changed',
#                                 token => $jwt, headers => {...}, rcvbuf => 4096,
#                                 raw => 1);   # data left undecoded: faster
#   $sse->status;                       # 200, or the error's status
#   my $e = $sse->next_event(5);        # { id, event, data, json, at } or undef
#   my @e = $sse->events_until(sub { ... }, 10);
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes ();

my $json = JSON::PP->new;

sub open {
    my ($class, $base, $path, %opt) = @_;
    my ($host, $port) = $base =~ m{^http://([^:/]+):(\d+)} or die "not a base URL: $base";
    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp',
                                     Timeout => 10, $opt{rcvbuf} ? (Blocking => 1) : ())
        or die "cannot connect to $base: $!";
    # a small receive buffer: a reader that stops reading is soon behind
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, $opt{rcvbuf}) if $opt{rcvbuf};
    my %headers = (Host => "$host:$port", Accept => 'text/event-stream', %{ $opt{headers} // {} });
    $headers{Authorization} = "Bearer $opt{token}" if $opt{token};
    my $request = "GET $path HTTP/1.1\r\n" . join('', map { "$_: $headers{$_}\r\n" } sort keys %headers) . "\r\n";
    syswrite($sock, $request) == length $request or die "cannot send the request: $!";
    my $self = bless { sock => $sock, raw => '', body => '', text => '', events => [],
                       closed => 0, decode => !$opt{raw} }, $class;
    $self->_read_headers($opt{timeout} // 10);
    return $self;
}

sub status { $_[0]{status} }
sub headers { $_[0]{headers} }
sub closed { $_[0]{closed} }

# the body of an error answer (JSON), once it has all arrived
sub error_json {
    my ($self) = @_;
    $self->_fill(0.2) until $self->{closed} || $self->{body} =~ /\}\s*\z/;
    return eval { $json->decode($self->{body}) };
}

sub _read_headers {
    my ($self, $seconds) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    until ($self->{raw} =~ /\r\n\r\n/) {
        die "no response headers in $seconds s\n" if Time::HiRes::time() > $deadline || $self->{closed};
        $self->_recv(0.2);
    }
    my ($head, $rest) = split /\r\n\r\n/, $self->{raw}, 2;
    my ($status_line, @lines) = split /\r\n/, $head;
    ($self->{status}) = $status_line =~ m{^HTTP/1\.[01] (\d{3})} or die "not HTTP: $status_line\n";
    $self->{headers} = { map { my ($k, $v) = split /:\s*/, $_, 2; (lc $k => $v) } @lines };
    $self->{chunked} = ($self->{headers}{'transfer-encoding'} // '') =~ /chunked/i;
    $self->{raw} = $rest;
    $self->_decode;
}

# bytes from the socket into raw; 0 when none came in time
sub _recv {
    my ($self, $seconds) = @_;
    return 0 if $self->{closed};
    return 0 unless IO::Select->new($self->{sock})->can_read($seconds);
    my $n = sysread($self->{sock}, my $buf, 65536);
    if (!$n) {
        $self->{closed} = 1;
        return 0;
    }
    $self->{raw} .= $buf;
    return $n;
}

# the chunked transfer coding, undone as far as it has arrived
sub _decode {
    my ($self) = @_;
    if (!$self->{chunked}) {
        $self->{body} .= $self->{raw};
        $self->{text} .= $self->{raw};
        $self->{raw} = '';
        return;
    }
    while ($self->{raw} =~ /\A([0-9a-fA-F]+)[^\r\n]*\r\n/) {
        my ($size, $head) = (hex $1, length($&));
        last if length($self->{raw}) < $head + $size + 2;
        my $chunk = substr($self->{raw}, $head, $size);
        substr($self->{raw}, 0, $head + $size + 2) = '';
        if ($size == 0) {
            $self->{ended} = 1;
            last;
        }
        $self->{body} .= $chunk;
        $self->{text} .= $chunk;
    }
}

sub _fill {
    my ($self, $seconds) = @_;
    my $n = $self->_recv($seconds);
    $self->_decode if $n;
    return $n;
}

# the events complete in text, in order; comments (heartbeats) are counted.
# An offset walks the text, which is cut only now and then: a stream of
# megabytes must not be copied once per event.
sub _parse {
    my ($self) = @_;
    my $pos = $self->{pos} // 0;
    while ((my $end = index($self->{text}, "\n\n", $pos)) >= 0) {
        my $block = substr($self->{text}, $pos, $end - $pos);
        $pos = $end + 2;
        my %e;
        for my $line (split /\n/, $block) {
            if ($line =~ /^:/) {
                $self->{comments}++;
                next;
            }
            my ($field, $value) = $line =~ /^([^:]+):\s?(.*)\z/ or next;
            $e{$field} = exists $e{$field} && $field eq 'data' ? "$e{$field}\n$value" : $value;
        }
        next unless exists $e{data} || exists $e{event} || exists $e{id};
        $e{event} //= 'message';
        $e{json} = $self->{decode} && defined $e{data} ? eval { $json->decode($e{data}) } : {};
        $e{at} = Time::HiRes::time();
        $self->{last_id} = $e{id} if defined $e{id};
        push @{ $self->{events} }, \%e;
    }
    if ($pos > 1 << 20 || $pos == length $self->{text}) {
        substr($self->{text}, 0, $pos) = '';
        $pos = 0;
    }
    $self->{pos} = $pos;
}

sub comments { $_[0]{comments} // 0 }
sub last_id { $_[0]{last_id} }
sub ended { $_[0]{ended} || $_[0]{closed} }

# the next event, waiting up to seconds for it; undef if none came
sub next_event {
    my ($self, $seconds) = @_;
    my $deadline = Time::HiRes::time() + ($seconds // 5);
    while (1) {
        $self->_parse;
        return shift @{ $self->{events} } if @{ $self->{events} };
        my $left = $deadline - Time::HiRes::time();
        return undef if $left <= 0 || $self->ended && !length $self->{raw};
        $self->_fill($left < 0.2 ? $left : 0.2);
    }
}

# events until one satisfies the condition (included) or the deadline;
# returns them all, the matching one last (if it came)
sub events_until {
    my ($self, $condition, $seconds) = @_;
    my $deadline = Time::HiRes::time() + ($seconds // 10);
    my @seen;
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0;
        my $e = $self->next_event($left) or last;
        push @seen, $e;
        last if $condition->($e);
    }
    return @seen;
}

# waits for a heartbeat comment or the end of the stream
sub wait_until {
    my ($self, $condition, $seconds) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    while (Time::HiRes::time() < $deadline) {
        $self->_parse;
        return 1 if $condition->($self);
        $self->_fill(0.2);
    }
    $self->_parse;
    return $condition->($self);
}

sub close {
    my ($self) = @_;
    CORE::close($self->{sock}) if $self->{sock};
    $self->{sock} = undef;
    $self->{closed} = 1;
}

sub DESTROY { $_[0]->close }

1;
