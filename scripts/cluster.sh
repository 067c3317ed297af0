#!/bin/sh
# A PostgreSQL 15 cluster in a folder, owned by the postgres user, with
# pg_cron preloaded and the database "recovery" holding the extension.
#
#   cluster.sh start DIR PORT   create (once) and start; idempotent
#   cluster.sh stop DIR         stop, if running
#   cluster.sh destroy DIR      stop and remove the cluster and its folder
#   cluster.sh psql DIR ...     psql as the superuser into "recovery"
#   cluster.sh free-port        print a free TCP port on 127.0.0.1
set -eu

PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
DB=recovery

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# postgres must reach DIR; a checkout under a private home cannot be, so
# the cluster then lives under /var/tmp and DIR links to it.
prepare_dir() {
    dir=$1
    mkdir -p "$dir"
    if ! as_postgres test -x "$dir" 2>/dev/null; then
        real=$(mktemp -d /var/tmp/pg_recovery.XXXXXX)
        rmdir "$dir"
        ln -s "$real" "$dir"
        echo "cluster: $dir is not reachable by the postgres user; using $real" >&2
    fi
    chown postgres:postgres "$dir/"
    chmod 700 "$dir/"
}

start() {
    dir=$1 port=$2
    data=$dir/data sock=$dir/sock
    if [ ! -f "$data/PG_VERSION" ]; then
        prepare_dir "$dir"
        as_postgres "$PGBIN/initdb" -D "$data" -U postgres -A trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; exit 1; }
        as_postgres mkdir -p "$sock"
        # Superuser over the socket only; other logins need a password.
        as_postgres sh -c "cat > '$data/pg_hba.conf'" <<HBA
local   all   all                 trust
host    all   all   127.0.0.1/32  scram-sha-256
HBA
    fi
    if [ ${#sock} -gt 100 ]; then
        echo "cluster: socket path $sock is too long; clone to a shorter path" >&2
        exit 1
    fi
    as_postgres sh -c "cat > '$data/postgresql.auto.conf'" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
shared_preload_libraries = 'pg_cron,pg_recovery'
cron.use_background_workers = on
max_worker_processes = 16
cron.database_name = '$DB'
max_connections = 100
shared_buffers = 256MB
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
# Every business write is audited: room for WAL between checkpoints, and
# compressed full-page images, keep that affordable (see bench/).
max_wal_size = 4GB
checkpoint_timeout = 15min
wal_compression = lz4
CONF
    if ! as_postgres "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_postgres "$PGBIN/pg_ctl" -D "$data" -l "$dir/postgresql.log" -w -t 60 start >/dev/null ||
            { tail -20 "$dir/postgresql.log" >&2; exit 1; }
    fi
    if ! psql_super "$dir" postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        psql_super "$dir" postgres -qc "CREATE DATABASE $DB"
    fi
    psql_super "$dir" "$DB" -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS pg_recovery;
ALTER EXTENSION pg_recovery UPDATE;
SQL
}

stop() {
    data=$1/data
    [ -f "$data/postmaster.pid" ] || return 0
    as_postgres "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
}

destroy() {
    dir=$1
    stop "$dir" || true
    if [ -L "$dir" ]; then rm -rf "$(readlink "$dir")"; fi
    rm -rf "$dir"
}

psql_super() {
    dir=$1 db=$2
    shift 2
    port=$(sed -n 's/^port = //p' "$dir/data/postgresql.auto.conf")
    as_postgres "$PGBIN/psql" -X -h "$dir/sock" -p "$port" -U postgres -d "$db" "$@"
}

free_port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 1)->sockport, "\n"'
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    start) start "$@" ;;
    stop) stop "$@" ;;
    destroy) destroy "$@" ;;
    psql) dir=$1; shift; psql_super "$dir" "$DB" "$@" ;;
    free-port) free_port ;;
    *) echo "usage: cluster.sh start DIR PORT | stop DIR | destroy DIR | psql DIR ... | free-port" >&2; exit 2 ;;
esac
