#!/bin/sh
# nginx with the ngx_recovery module, in a folder of its own.
#   nginx.sh start DIR PORT PGPORT [TLS_PORT]
#                                    PGPORT may be a list (5501,5502,5503): the
#                                    nodes of make run HA=1, the primary wanted
#                                    render conf/nginx.conf.in into DIR, start;
#                                    HTTPS on TLS_PORT (a free one if not given,
#                                    written to DIR/tls-port) with a
#                                    self-signed certificate made in DIR/tls
#   nginx.sh stop DIR                stop it (graceful, then forced)
# REPLICAS=5502,5503 adds a recovery_replicas pool on those standbys.
# Settings (environment): WORKERS=2 POOL_SIZE=2 PIPELINE_DEPTH=4 QUEUE_TIMEOUT=2s LOCK_TIMEOUT=1s READ_RESERVE=1
#   LOGIN_RATE=10r/s LOGIN_BURST=20 API_RATE=100r/s API_BURST=200
#   WORKER_CONNECTIONS=1024 EVENTS_BUFFER=256k EVENTS_HEARTBEAT=15s
#   LOG_LEVEL=notice MODULE=build/...so
#   AUTHENTICATOR_PASSWORD=authenticator (into DIR/pgpass, libpq's passfile)
# DIR/jwt-secret signs tokens (made once); DIR/jwt-secret.previous, when
# there is one, still verifies the tokens it signed (a rotation).
#   NGINX_UNDER="valgrind ..." runs one nginx process in the foreground
#   under that command; its exit status is in DIR/under.rc.
#   NGINX_PRELOAD=/path/libasan.so runs nginx (only) with it preloaded, and
#   its workers as the invoking user, so that LeakSanitizer can work.
set -eu
cd "$(dirname "$0")/.."

run_nginx() {
    if [ -n "${NGINX_PRELOAD:-}" ]; then
        env LD_PRELOAD="$NGINX_PRELOAD" nginx "$@"
    else
        nginx "$@"
    fi
}

# "5501,5502": "host=127.0.0.1,127.0.0.1 port=5501,5502", a libpq host list
loopback() {
    echo "host=$(echo "$1" | sed 's/[0-9][0-9]*/127.0.0.1/g') port=$1"
}

start() {
    dir=$1 port=$2 pgport=$3
    tls_port=${4:-$(scripts/cluster.sh free-port "$port" $(echo "$pgport" | tr , ' '))}
    module=${MODULE:-$(pwd)/build/ngx_http_recovery_module.so}
    mkdir -p "$dir/tls"
    echo "$tls_port" > "$dir/tls-port"
    # a certificate for loopback, made again when it is about to expire
    openssl x509 -checkend 86400 -noout -in "$dir/tls/cert.pem" >/dev/null 2>&1 || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -days 30 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" 2>/dev/null ||
        { echo "nginx: openssl cannot make a certificate" >&2; exit 1; }
    [ -f "$dir/jwt-secret" ] || { head -c 48 /dev/urandom | base64 -w0 > "$dir/jwt-secret"; chmod 600 "$dir/jwt-secret"; }
    # a rotation: the secret before, still verifying the tokens it signed
    jwt_previous=""
    [ -f "$dir/jwt-secret.previous" ] && jwt_previous=" $dir/jwt-secret.previous"

    user="" master="daemon on;"
    [ "$(id -u)" -eq 0 ] && [ -z "${NGINX_PRELOAD:-}" ] && user="user nobody nogroup;"
    # the gateway's database password, for libpq (passfile=): readable by
    # the workers alone (nginx started by root runs them as nobody, with or
    # without a user directive), and out of nginx.conf
    (umask 077; printf '*:*:recovery:recovery_authenticator:%s\n' "${AUTHENTICATOR_PASSWORD:-authenticator}" > "$dir/pgpass")
    if [ "$(id -u)" -eq 0 ]; then chown nobody "$dir/pgpass"; fi
    [ -n "${NGINX_UNDER:-}" ] && master="daemon off; master_process off;"

    # one connection of each worker's pool for GETs only, when there are two
    reserve=0
    [ "${POOL_SIZE:-2}" -gt 1 ] && reserve=1
    case "$pgport" in
        *,*) pghosts="$(loopback "$pgport") target_session_attrs=read-write" ;;
        *) pghosts=$(loopback "$pgport") ;;
    esac
    replicas="# recovery_replicas  \"host=db2,db3 port=5432,5432 target_session_attrs=standby ...\";"
    if [ -n "${REPLICAS:-}" ]; then
        replicas="recovery_replicas  \"$(loopback "$REPLICAS") target_session_attrs=standby dbname=recovery user=recovery_authenticator passfile=$dir/pgpass connect_timeout=2\";"
    fi
    sed -e "s|@MODULE@|$module|g" -e "s|@PGHOSTS@|$pghosts|g" -e "s|@REPLICAS@|$replicas|" -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$port|g" \
        -e "s|@HTML@|$(pwd)/html|g" -e "s|@CONF@|$(pwd)/conf|g" -e "s|@TLS_PORT@|$tls_port|g" \
        -e "s|@USER@|$user|" -e "s|@MASTER@|$master|" -e "s|@JWT_PREVIOUS@|$jwt_previous|" \
        -e "s|@WORKERS@|${WORKERS:-2}|" -e "s|@POOL_SIZE@|${POOL_SIZE:-2}|" \
        -e "s|@PIPELINE_DEPTH@|${PIPELINE_DEPTH:-4}|" \
        -e "s|@QUEUE_TIMEOUT@|${QUEUE_TIMEOUT:-2s}|" \
        -e "s|@LOCK_TIMEOUT@|${LOCK_TIMEOUT:-1s}|" -e "s|@READ_RESERVE@|${READ_RESERVE:-$reserve}|" \
        -e "s|@LOGIN_RATE@|${LOGIN_RATE:-10r/s}|" -e "s|@LOGIN_BURST@|${LOGIN_BURST:-20}|" \
        -e "s|@API_RATE@|${API_RATE:-100r/s}|" -e "s|@API_BURST@|${API_BURST:-200}|" \
        -e "s|@LOG_LEVEL@|${LOG_LEVEL:-notice}|" \
        -e "s|@WORKER_CONNECTIONS@|${WORKER_CONNECTIONS:-1024}|" \
        -e "s|@WORKER_NOFILE@|$(( ${WORKER_CONNECTIONS:-1024} * 2 + 64 ))|" \
        -e "s|@EVENTS_BUFFER@|${EVENTS_BUFFER:-256k}|" -e "s|@EVENTS_HEARTBEAT@|${EVENTS_HEARTBEAT:-15s}|" \
        conf/nginx.conf.in > "$dir/nginx.conf"

    run_nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || {
        echo "nginx: the configuration in $dir/nginx.conf is invalid" >&2; exit 1; }

    rm -f "$dir/nginx.pid" "$dir/under.rc"
    if [ -n "${NGINX_UNDER:-}" ]; then
        # shellcheck disable=SC2086
        ( set +e; $NGINX_UNDER nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
            >"$dir/under.log" 2>&1; echo $? > "$dir/under.rc" ) &
    else
        run_nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    fi

    i=0
    until curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; do
        i=$((i + 1))
        if [ $i -gt 600 ]; then
            echo "nginx: did not answer on port $port; $dir/error.log says:" >&2
            tail -20 "$dir/error.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

stop() {
    dir=$1
    [ -f "$dir/nginx.pid" ] || return 0
    pid=$(cat "$dir/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || return 0
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        [ $i -eq 100 ] && kill -TERM "$pid" 2>/dev/null
        [ $i -gt 200 ] && { kill -KILL "$pid" 2>/dev/null; break; }
        sleep 0.1
    done
    if [ -n "${NGINX_UNDER:-}" ]; then
        while [ ! -f "$dir/under.rc" ]; do sleep 0.1; done
    fi
    rm -f "$dir/nginx.pid"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop)  shift; stop "$@" ;;
    *) echo "usage: $0 start DIR PORT PGPORT [TLS_PORT] | stop DIR" >&2; exit 2 ;;
esac
