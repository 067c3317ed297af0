package Recovery::Sink;
# Real SMTP and HTTP servers on loopback for the delivery tests.  Each
# message received is kept as a file in the sink's folder, each attempt is
# logged with its time, and the sink answers with the status a test sets
# (respond(451), respond(503)) to play a provider that fails; stop() and
# start() take it off the network altogether.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time);

sub new {
    my ($class, $kind) = @_;
    die "kind is smtp or http\n" unless $kind =~ /^(smtp|http)$/;
    my $self = bless { kind => $kind, dir => tempdir(CLEANUP => 1), owner => $$ }, $class;
    my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
        or die "no free port: $!\n";
    $self->{port} = $probe->sockport;
    close $probe;
    $self->start;
    return $self;
}

sub url {
    my ($self) = @_;
    return $self->{kind} eq 'smtp' ? "smtp://127.0.0.1:$self->{port}"
                                    : "http://127.0.0.1:$self->{port}/hook";
}

sub start {
    my ($self) = @_;
    my $listen;
    for (1 .. 50) {
        $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $self->{port},
                                        Listen => 16, ReuseAddr => 1) and last;
        select(undef, undef, undef, 0.1);
    }
    die "sink cannot listen on $self->{port}: $!\n" unless $listen;
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        # _exit: the parent's database handles are not ours to close
        $SIG{TERM} = sub { POSIX::_exit(0) };
        while (my $client = $listen->accept) {
            $client->autoflush(1);
            $self->{kind} eq 'smtp' ? $self->serve_smtp($client) : $self->serve_http($client);
            close $client;
        }
        POSIX::_exit(0);
    }
    close $listen;
    $self->{pid} = $pid;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

# The status of the next answers (SMTP reply code or HTTP status); undef: success.
sub respond {
    my ($self, $status) = @_;
    my $file = "$self->{dir}/respond";
    if (defined $status) {
        open my $fh, '>', "$file.tmp" or die $!;
        print $fh $status;
        close $fh;
        rename "$file.tmp", $file or die $!;
    } else {
        unlink $file;
    }
}

sub status_now {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/respond" or return undef;
    my $status = <$fh>;
    return $status;
}

sub log_attempt {
    my ($self, $status) = @_;
    open my $fh, '>>', "$self->{dir}/attempts" or die $!;
    printf $fh "%.6f %s\n", time, $status;
    close $fh;
}

# [time, status] of every attempt so far
sub attempts {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/attempts" or return ();
    return map { chomp; [split / /] } <$fh>;
}

sub keep {
    my ($self, $content) = @_;
    my $n = () = glob "$self->{dir}/message-*";
    my $file = sprintf "%s/message-%06d", $self->{dir}, $n + 1;
    open my $fh, '>', "$file.tmp" or die $!;
    binmode $fh;
    print $fh $content;
    close $fh;
    rename "$file.tmp", $file or die $!;
}

# the messages received, oldest first, as raw text
sub messages {
    my ($self) = @_;
    my @messages;
    for my $file (sort glob "$self->{dir}/message-*") {
        open my $fh, '<', $file or die $!;
        binmode $fh;
        local $/;
        push @messages, scalar <$fh>;
    }
    return @messages;
}

sub serve_smtp {
    my ($self, $client) = @_;
    print $client "220 sink.test ESMTP\r\n";
    while (defined(my $line = <$client>)) {
        if ($line =~ /^EHLO/i) {
            print $client "250-sink.test\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n";
        } elsif ($line =~ /^HELO/i) {
            print $client "250 sink.test\r\n";
        } elsif ($line =~ /^MAIL FROM/i) {
            my $status = $self->status_now;
            $self->log_attempt($status // 250);
            if ($status) {
                print $client "$status sink refuses for now\r\n";
                next;
            }
            print $client "250 ok\r\n";
        } elsif ($line =~ /^RCPT TO/i) {
            print $client "250 ok\r\n";
        } elsif ($line =~ /^DATA/i) {
            print $client "354 go ahead\r\n";
            my $data = '';
            while (defined(my $l = <$client>)) {
                last if $l eq ".\r\n";
                $l =~ s/^\.\././;
                $data .= $l;
            }
            $self->keep($data);
            print $client "250 ok queued\r\n";
        } elsif ($line =~ /^QUIT/i) {
            print $client "221 bye\r\n";
            return;
        } else {
            print $client "250 ok\r\n";
        }
    }
}

sub serve_http {
    my ($self, $client) = @_;
    my $head = '';
    while (defined(my $line = <$client>)) {
        $head .= $line;
        last if $line eq "\r\n";
    }
    my ($length) = $head =~ /^Content-Length:\s*(\d+)/mi;
    my $body = '';
    read $client, $body, $length // 0;
    my $status = $self->status_now // 200;
    $self->log_attempt($status);
    my $answer = '{"error":"sink refuses for now"}';
    if ($status == 200) {
        my $n = () = glob "$self->{dir}/message-*";
        $self->keep($head . $body);
        $answer = sprintf '{"id":"sink-%d"}', $n + 1;
    }
    print $client "HTTP/1.1 $status Sink\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($answer) . "\r\nConnection: close\r\n\r\n$answer";
}

sub DESTROY {
    my ($self) = @_;
    $self->stop if $$ == $self->{owner};
}

1;
