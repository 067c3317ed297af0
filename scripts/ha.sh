#!/bin/sh
# Three PostgreSQL 15 nodes under Patroni, with a local etcd as its store,
# all on loopback, in a folder: DIR/etcd, and DIR/nodeN with each node's
# data, Patroni configuration, socket and logs.  Streaming replication is
# synchronous (Patroni's synchronous_mode): a write the primary acknowledged
# is on a standby too.  pg_cron and pg_recovery are preloaded on every node;
# the delivery worker and pg_cron's jobs run only where the server is not in
# recovery, so only on the primary.
#
#   ha.sh start DIR        start etcd and the nodes (created once), wait for
#                          a leader, create the database and the extensions
#   ha.sh stop DIR         stop the nodes and etcd
#   ha.sh destroy DIR      stop, and remove DIR
#   ha.sh leader DIR       the name of the node that leads (node1..node3)
#   ha.sh ready DIR        exit 0 when all three run and, with synchronous
#                          replication, a standby is synchronous
#   ha.sh hosts DIR        the nodes' PostgreSQL ports, comma-separated
#   ha.sh psql DIR NODE .. psql as the superuser into "recovery" on NODE
#                          (NODE "leader": the current one)
#   ha.sh patronictl DIR ..  patronictl with the cluster's configuration
#
# The ports are chosen free once and kept in DIR/ports.  SYNC=off for
# asynchronous replication.
set -eu

PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
here=$(cd "$(dirname "$0")" && pwd)
NODES="node1 node2 node3"

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

say() { echo "ha: $*"; }
fail() { echo "ha: $*" >&2; exit 1; }

port_of() {    # port_of DIR NAME: a port of DIR/ports ("etcd", "node1.pg", ...)
    sed -n "s/^$2=//p" "$1/ports"
}

choose_ports() {
    dir=$1
    [ -f "$dir/ports" ] && return 0
    taken=
    {
        for name in etcd etcd.peer $(for n in $NODES; do echo "$n.pg $n.api"; done); do
            p=$("$here/cluster.sh" free-port $taken)
            taken="$taken $p"
            echo "$name=$p"
        done
    } >"$dir/ports"
}

start_etcd() {
    dir=$1
    client=$(port_of "$dir" etcd) peer=$(port_of "$dir" etcd.peer)
    [ -f "$dir/etcd/pid" ] && kill -0 "$(cat "$dir/etcd/pid")" 2>/dev/null && return 0
    as_postgres mkdir -p "$dir/etcd"
    as_postgres sh -c "cd '$dir/etcd' && nohup etcd --name recovery-etcd --data-dir '$dir/etcd/data' \
        --listen-client-urls http://127.0.0.1:$client --advertise-client-urls http://127.0.0.1:$client \
        --listen-peer-urls http://127.0.0.1:$peer --initial-advertise-peer-urls http://127.0.0.1:$peer \
        --initial-cluster recovery-etcd=http://127.0.0.1:$peer --log-level warn \
        >'$dir/etcd/etcd.log' 2>&1 & echo \$! >'$dir/etcd/pid'"
    i=0
    until curl -sf "http://127.0.0.1:$client/health" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 300 ] && { tail -5 "$dir/etcd/etcd.log" >&2; fail "etcd did not start"; }
        sleep 0.1
    done
}

write_config() {
    dir=$1 node=$2
    pg=$(port_of "$dir" "$node.pg") api=$(port_of "$dir" "$node.api")
    sync=true
    [ "${SYNC:-on}" = off ] && sync=false
    as_postgres mkdir -p "$dir/$node/sock"
    as_postgres chmod 700 "$dir/$node"
    as_postgres sh -c "cat > '$dir/$node/patroni.yml'" <<YAML
# Written by scripts/ha.sh: node $node of the Payment Recovery cluster.
scope: payment-recovery
namespace: /payment-recovery/
name: $node
log:
  dir: $dir/$node
  level: INFO
restapi:
  listen: 127.0.0.1:$api
  connect_address: 127.0.0.1:$api
etcd3:
  hosts: 127.0.0.1:$(port_of "$dir" etcd)
bootstrap:
  dcs:
    # a leader that stops renewing its lock loses it after ttl seconds
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: $sync
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 100
        max_worker_processes: 16
        max_wal_senders: 10
        max_replication_slots: 10
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        shared_buffers: 128MB
        max_wal_size: 1GB
        wal_compression: lz4
        cron.database_name: recovery
        cron.use_background_workers: "on"
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  listen: 127.0.0.1:$pg
  connect_address: 127.0.0.1:$pg
  data_dir: $dir/$node/data
  bin_dir: $PGBIN
  pgpass: $dir/$node/pgpass
  use_unix_socket: true
  # a new standby copies the primary without waiting for its next checkpoint
  basebackup:
    - checkpoint: fast
  authentication:
    superuser:
      username: postgres
      password: ha-superuser
    replication:
      username: replicator
      password: ha-replicator
  parameters:
    unix_socket_directories: $dir/$node/sock
    shared_preload_libraries: pg_cron,pg_recovery
    log_line_prefix: '%m [%p] %q%u@%d '
    recovery.erasure_ledger: $dir/erasure-ledger
    recovery.key_command: cat $dir/kek
    log_parameter_max_length: 0
    log_parameter_max_length_on_error: 0
  pg_hba:
    - local all all trust
    - local replication all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all postgres 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
YAML
}

start_node() {
    dir=$1 node=$2
    [ -f "$dir/$node/patroni.pid" ] && kill -0 "$(cat "$dir/$node/patroni.pid")" 2>/dev/null && return 0
    as_postgres sh -c "nohup patroni '$dir/$node/patroni.yml' >'$dir/$node/patroni.out' 2>&1 &
        echo \$! >'$dir/$node/patroni.pid'"
}

leader() {
    dir=$1
    for n in $NODES; do
        if curl -sf "http://127.0.0.1:$(port_of "$dir" "$n.api")/leader" >/dev/null 2>&1; then
            echo "$n"
            return 0
        fi
    done
    return 1
}

wait_for_leader() {
    dir=$1 i=0
    until leader "$dir" >/dev/null; do
        i=$((i + 1))
        [ $((i % 50)) -eq 0 ] && say "waiting for a leader ($((i / 10)) s)"
        [ $i -gt 1200 ] && fail "no node leads after 120 s; see $dir/node*/patroni.out"
        sleep 0.1
    done
}

# every node running, and with synchronous replication a sync standby
cluster_ready() {
    curl -sf "http://127.0.0.1:$(port_of "$1" node1.api)/cluster" 2>/dev/null |
        SYNC=${SYNC:-on} perl -MJSON::PP -0777 -ne '
            my @m = @{ decode_json($_)->{members} };
            my $running = grep { $_->{state} =~ /^(running|streaming)$/ } @m;
            my $sync = grep { $_->{role} eq "sync_standby" } @m;
            exit($running == 3 && ($sync || $ENV{SYNC} eq "off") ? 0 : 1)'
}

wait_for_replicas() {
    dir=$1 i=0
    until cluster_ready "$dir"; do
        i=$((i + 1))
        [ $((i % 50)) -eq 0 ] && say "waiting for the standbys to stream ($((i / 10)) s)"
        [ $i -gt 1200 ] && fail "the standbys do not stream after 120 s; see $dir/node*/patroni.log"
        sleep 0.1
    done
}

psql_node() {
    dir=$1 node=$2
    shift 2
    [ "$node" = leader ] && node=$(leader "$dir")
    as_postgres "$PGBIN/psql" -X -h "$dir/$node/sock" -p "$(port_of "$dir" "$node.pg")" -U postgres \
        -d recovery "$@"
}

start() {
    dir=$1
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    chmod 700 "$dir"
    choose_ports "$dir"
    "$here/cluster.sh" kek "$dir"
    start_etcd "$dir"
    for n in $NODES; do
        write_config "$dir" "$n"
        start_node "$dir" "$n"
    done
    wait_for_leader "$dir"
    lead=$(leader "$dir")
    say "$lead leads"
    sock=$dir/$lead/sock pg=$(port_of "$dir" "$lead.pg")
    if ! as_postgres "$PGBIN/psql" -X -h "$sock" -p "$pg" -U postgres -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'recovery'" | grep -q 1; then
        as_postgres "$PGBIN/psql" -X -q -h "$sock" -p "$pg" -U postgres -d postgres -c 'CREATE DATABASE recovery'
    fi
    psql_node "$dir" "$lead" -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS pg_recovery;
ALTER EXTENSION pg_recovery UPDATE;
SQL
    wait_for_replicas "$dir"
    say "the standbys stream$( [ "${SYNC:-on}" = off ] || echo ', one synchronously')"
}

stop() {
    dir=$1
    [ -d "$dir" ] || return 0
    for n in $NODES; do
        pidfile=$dir/$n/patroni.pid
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        # Patroni stops its PostgreSQL on SIGTERM
        kill "$pid" 2>/dev/null || true
    done
    for n in $NODES; do
        pidfile=$dir/$n/patroni.pid
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile") i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do i=$((i + 1)); sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
        # a postmaster whose Patroni was killed outright
        if [ -f "$dir/$n/data/postmaster.pid" ]; then
            as_postgres "$PGBIN/pg_ctl" -D "$dir/$n/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
    done
    if [ -f "$dir/etcd/pid" ]; then
        kill "$(cat "$dir/etcd/pid")" 2>/dev/null || true
        rm -f "$dir/etcd/pid"
    fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    start) start "$1" ;;
    stop) stop "$1" ;;
    destroy) stop "$1"; rm -rf "$1" ;;
    leader) leader "$1" ;;
    ready) cluster_ready "$1" ;;
    hosts) dir=$1; echo "$(port_of "$dir" node1.pg),$(port_of "$dir" node2.pg),$(port_of "$dir" node3.pg)" ;;
    psql) psql_node "$@" ;;
    patronictl) dir=$1; shift; as_postgres patronictl -c "$dir/node1/patroni.yml" "$@" ;;
    *) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
