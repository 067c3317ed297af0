package Recovery::HTTP;
# Helpers of the gateway tests: requests to the nginx that scripts/test.sh
# started ($RECOVERY_HTTP), JSON bodies, logins, and tokens minted with the
# gateway's own secret (or deliberately not) for the authentication matrix.
# Core Perl only: HTTP::Tiny, JSON::PP, Digest::SHA, MIME::Base64.
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256);
use Exporter 'import';
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(encode_base64url);

our @EXPORT_OK = qw(http login jwt claims secret json_text);

my $json = JSON::PP->new->canonical->allow_nonref;

sub json_text { return $json->encode($_[0]) }

# http(METHOD => '/api/v1/...', token => ..., json => {...}, body => '...',
#      headers => {...}, base => 'http://...', timeout => 10)
sub http {
    my ($method, $path, %opt) = @_;
    my %headers = %{ $opt{headers} // {} };
    $headers{Authorization} = "Bearer $opt{token}" if defined $opt{token};
    my $content = $opt{body};
    if (exists $opt{json}) {
        $content = json_text($opt{json});
        $headers{'Content-Type'} //= 'application/json';
    }
    my $ua = HTTP::Tiny->new(timeout => $opt{timeout} // 10, keep_alive => 0);
    my $res = $ua->request($method, ($opt{base} // $ENV{RECOVERY_HTTP}) . $path,
        { headers => \%headers, defined $content ? (content => $content) : () });
    my $type = $res->{headers}{'content-type'} // '';
    $res->{json} = eval { $json->decode($res->{content}) } if $type =~ m{^application/json};
    record($method, $path, $res) if $ENV{RECOVERY_CONTRACT_LOG} && !$opt{base};
    return $res;
}

# Every answer of the suite's gateway, for t/openapi/responses.t to check
# against the OpenAPI document: method, path, status, headers, JSON body.
sub record {
    my ($method, $path, $res) = @_;
    return if $res->{status} == 599;    # no answer at all (HTTP::Tiny's own)
    (my $bare = $path) =~ s/\?.*//s;
    my $type = $res->{headers}{'content-type'} // '';
    my %headers = map { my $v = $res->{headers}{$_}; ($_ => ref $v ? $v->[0] : $v) } keys %{ $res->{headers} };
    my $line = $json->encode({ method => lc $method, path => $bare, status => $res->{status} + 0,
                               headers => \%headers,
                               body => $type =~ m{^application/json} ? $res->{content} : undef });
    open my $fh, '>>', $ENV{RECOVERY_CONTRACT_LOG} or die "cannot write $ENV{RECOVERY_CONTRACT_LOG}: $!";
    print $fh "$line\n";
    close $fh;
}

sub login {
    my ($email, $password, %opt) = @_;
    my $res = http(POST => '/api/v1/auth/login',
        json => { email => $email, password => $password }, %opt);
    die "login of $email failed: $res->{status} $res->{content}\n" unless $res->{status} == 200;
    return $res->{json}{token};
}

sub secret {
    my ($dir) = @_;
    $dir //= $ENV{RECOVERY_NGINX_DIR};
    open my $fh, '<', "$dir/jwt-secret" or die "cannot read $dir/jwt-secret: $!";
    local $/;
    my $secret = <$fh>;
    $secret =~ s/[\r\n]+\z//;
    return $secret;
}

# Claims the gateway accepts, with overrides; an undef value removes a claim.
sub claims {
    my (%override) = @_;
    my %claims = (sub => '3', role => 'recovery_agent', email => 'agent@demo.example',
                  iss => 'payment-recovery', aud => 'payment-recovery-api',
                  iat => time, exp => time + 300);
    while (my ($k, $v) = each %override) {
        if (defined $v) { $claims{$k} = $v } else { delete $claims{$k} }
    }
    return \%claims;
}

# jwt(\%claims, header => {...}, secret => ...): a compact JWS signed with
# HMAC-SHA256 (whatever the header says), by default with the gateway's secret.
# payload => '{"exp": NaN}' signs that text instead of the claims.
sub jwt {
    my ($claims, %opt) = @_;
    my $header = $opt{header} // { alg => 'HS256', typ => 'JWT' };
    my $input = encode_base64url(json_text($header)) . '.'
              . encode_base64url($opt{payload} // json_text($claims));
    return "$input." if $opt{unsigned};
    my $key = $opt{secret} // secret($opt{dir});
    return "$input." . encode_base64url(hmac_sha256($input, $key));
}

1;
