package Recovery::Stack;
# A PostgreSQL cluster and an nginx of a test's own, on free ports, for the
# tests that stop the database or exhaust the pool without disturbing the
# others.  Everything is stopped and removed when the object goes away.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Recovery::Test qw(connect_db);

my $root = abs_path(dirname(__FILE__) . '/../../..');

sub run {
    my (@cmd) = @_;
    system(@cmd) == 0 or die "@cmd failed: $?\n";
}

# a free port other than the ones given (chosen, not bound yet)
sub free_port {
    my $port = `$root/scripts/cluster.sh free-port @_`;
    chomp $port;
    return $port;
}

# new(WORKERS => 1, POOL_SIZE => 2, QUEUE_TIMEOUT => '700ms', ...): nginx
# settings; NGINX => 0 for PostgreSQL alone; PRELOAD => 'pg_cron' for a
# server whose shared_preload_libraries lacks pg_recovery; ARCHIVE => 'on'
# for WAL archived to a pgBackRest repository of its own (scripts/backup.sh)
sub new {
    my ($class, %nginx) = @_;
    my $with_nginx = delete($nginx{NGINX}) // 1;
    my $pg_port = free_port();
    my $self = bless { pg_port => $pg_port, http_port => free_port($pg_port), owner => $$,
                       preload => delete($nginx{PRELOAD}),
                       archive => delete($nginx{ARCHIVE}) // 'off' }, $class;
    $self->{pg_dir} = "$root/tmp/stack-$self->{pg_port}";
    $self->{nginx_dir} = "$root/tmp/stack-nginx-$self->{http_port}";
    $self->start_db;
    # the password the nginx template logs in with (demo.sql sets it too)
    $self->dbh->do(q{ALTER ROLE recovery_authenticator PASSWORD 'authenticator'});
    return $self unless $with_nginx;
    # a test's own requests come fast from one address: no rate limits
    # unless the test sets them
    %nginx = (LOGIN_RATE => '1000r/s', LOGIN_BURST => 1000,
              API_RATE => '100000r/s', API_BURST => 100000, %nginx);
    local @ENV{keys %nginx} = values %nginx;
    run("$root/scripts/nginx.sh", 'start', $self->{nginx_dir}, $self->{http_port}, $self->{pg_port});
    return $self;
}

sub base { "http://127.0.0.1:$_[0]{http_port}" }
sub nginx_dir { $_[0]{nginx_dir} }
sub pg_dir { $_[0]{pg_dir} }

sub start_db {
    my ($self) = @_;
    local $ENV{PRELOAD} = $self->{preload} if defined $self->{preload};
    local $ENV{ARCHIVE} = $self->{archive};
    run("$root/scripts/cluster.sh start $self->{pg_dir} $self->{pg_port} >/dev/null");
}

sub stop_db {
    my ($self) = @_;
    run("$root/scripts/cluster.sh", 'stop', $self->{pg_dir});
}

sub dbh {
    my ($self) = @_;
    local $ENV{PGHOST} = "$self->{pg_dir}/sock";
    local $ENV{PGPORT} = $self->{pg_port};
    local $ENV{PGDATABASE} = 'recovery';
    local $ENV{PGUSER} = 'postgres';
    return connect_db();
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{nginx_dir}/error.log" or return '';
    local $/;
    return <$fh>;
}

# what PostgreSQL has logged so far
sub server_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{pg_dir}/postgresql.log" or return '';
    local $/;
    return <$fh>;
}

sub DESTROY {
    my ($self) = @_;
    return if $$ != $self->{owner};    # forked children leave it alone
    system("$root/scripts/nginx.sh", 'stop', $self->{nginx_dir});
    system("$root/scripts/cluster.sh", 'destroy', $self->{pg_dir});
    system('rm', '-rf', $self->{nginx_dir});
}

1;
