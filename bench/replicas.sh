#!/bin/bash
# Reads on standbys: three nodes under Patroni (scripts/ha.sh), synchronous
# replication, and two nginx in front of them, in one run:
#   (a) reads on the primary only (recovery_database alone);
#   (b) reads on the two standbys (recovery_replicas).
# wrk on GET /api/v1/recovery-cases/{id} with a JWT, rounds alternating (a)
# and (b); then the standbys' replay lag while pgbench runs the audited write
# mix of bench/audit-overhead.sh on the primary.  Prints medians and ratios.
#
#   ROUNDS=3 SECONDS_PER_RUN=10 CONNECTIONS=32 bench/replicas.sh
#
# All three servers, both nginx and wrk share the machine's cores: on 2
# cores, reading from standbys moves work from one PostgreSQL to two others
# on the same cores, so the ratio says what the routing costs or saves here,
# not what a machine per node would give (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-10}
connections=${CONNECTIONS:-32}
case_id=5
mkdir -p tmp
dir=$(pwd)/tmp/bench-replicas-$$
primary_port=$(scripts/cluster.sh free-port)
replicas_port=$(scripts/cluster.sh free-port)
primary_nginx=$(pwd)/tmp/bench-replicas-nginx-$primary_port
replicas_nginx=$(pwd)/tmp/bench-replicas-nginx-$replicas_port
PGBENCH=$(dirname "${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}")/pgbench

trap 'scripts/nginx.sh stop "$primary_nginx"; scripts/nginx.sh stop "$replicas_nginx";
      scripts/ha.sh destroy "$dir"; rm -rf "$primary_nginx" "$replicas_nginx"' EXIT
trap 'exit 130' INT TERM

echo "bench: three nodes under Patroni in $dir"
scripts/ha.sh start "$dir"
scripts/ha.sh psql "$dir" leader -q -v ON_ERROR_STOP=1 -f sql/demo.sql
scripts/ha.sh psql "$dir" leader -q -v ON_ERROR_STOP=1 -f bench/cases-setup.sql
hosts=$(scripts/ha.sh hosts "$dir")
settings="WORKERS=2 POOL_SIZE=2 LOG_LEVEL=warn API_RATE=1000000r/s API_BURST=1000000 LOGIN_RATE=1000r/s"
env $settings scripts/nginx.sh start "$primary_nginx" "$primary_port" "$hosts"
env $settings REPLICAS="$hosts" scripts/nginx.sh start "$replicas_nginx" "$replicas_port" "$hosts"

token=$(curl -sf -X POST "http://127.0.0.1:$primary_port/api/v1/auth/login" -H 'Content-Type: application/json' \
        -d '{"email":"agent@demo.example","password":"agent-demo-pass"}' |
        sed 's/.*"token":"\([^"]*\)".*/\1/')
# both nginx have secrets of their own: the second one's token
token2=$(curl -sf -X POST "http://127.0.0.1:$replicas_port/api/v1/auth/login" -H 'Content-Type: application/json' \
        -d '{"email":"agent@demo.example","password":"agent-demo-pass"}' |
        sed 's/.*"token":"\([^"]*\)".*/\1/')

# the standbys' pool is up once its connections show on the standbys
for i in $(seq 1 100); do
    n=0
    for node in node1 node2 node3; do
        [ "$node" = "$(scripts/ha.sh leader "$dir")" ] && continue
        c=$(scripts/ha.sh psql "$dir" "$node" -qtA -c \
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ngx_recovery'")
        [ "$c" -gt 0 ] && n=$((n + 1))
    done
    [ "$n" -eq 2 ] && break
    sleep 0.2
done
echo "bench: the gateway reads from $n standbys"

wrk_run() {
    wrk -t2 -c"$connections" -d"${seconds}s" --latency "$@" > "$dir/wrk.log" 2>&1
    perl -ne '
        sub ms { my ($v, $u) = @_; $u eq "us" ? $v / 1000 : $u eq "s" ? $v * 1000 : $v }
        $rps = $1 if /^Requests\/sec:\s+([\d.]+)/;
        $p99 = ms($1, $2) if /^\s+99%\s+([\d.]+)(us|ms|s)/;
        $bad = $1 if /Non-2xx or 3xx responses: (\d+)/;
        END { die "wrk: $bad responses were errors\n" if $bad; printf "%.0f %.3f\n", $rps, $p99 }
    ' "$dir/wrk.log"
}

: > "$dir/primary" ; : > "$dir/replicas" ; : > "$dir/ratio"
for round in $(seq 1 "$rounds"); do
    p=$(wrk_run -H "Authorization: Bearer $token" "http://127.0.0.1:$primary_port/api/v1/recovery-cases/$case_id")
    r=$(wrk_run -H "Authorization: Bearer $token2" "http://127.0.0.1:$replicas_port/api/v1/recovery-cases/$case_id")
    echo "$p" >> "$dir/primary"
    echo "$r" >> "$dir/replicas"
    ratio=$(awk -v a="${r%% *}" -v b="${p%% *}" 'BEGIN {printf "%.2f", a / b}')
    echo "$ratio" >> "$dir/ratio"
    echo "  round $round: reads on the primary ${p%% *} req/s, on the standbys ${r%% *} req/s, ratio $ratio"
done

bench_result \
    "GET a case through the gateway, read on two standbys" "the same reads on the primary" "-" $(cat "$dir/ratio")

# the median of column $1 (common.sh's takes a single column)
median() { awk -v c="$1" '{print $c}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "bench: the standbys' replay lag under the audited write mix (pgbench, 4 clients, ${seconds} s)"
lead=$(scripts/ha.sh leader "$dir")
: > "$dir/lag"
(
    end=$((SECONDS + seconds))
    while [ $SECONDS -lt $end ]; do
        scripts/ha.sh psql "$dir" "$lead" -qtA -F ' ' -c \
            "SELECT application_name, sync_state,
                    coalesce(extract(epoch FROM replay_lag) * 1000, 0)::numeric(10,2),
                    pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)
               FROM pg_stat_replication" >> "$dir/lag"
        sleep 0.25
    done
) &
sampler=$!
runuser -u postgres -- "$PGBENCH" -h "$dir/$lead/sock" -p "$(sed -n "s/^$lead.pg=//p" "$dir/ports")" \
    -U postgres -n -f bench/audit-overhead.sql -c 4 -j 2 -T "$seconds" recovery > "$dir/pgbench.log" 2>&1 ||
    { cat "$dir/pgbench.log" >&2; exit 1; }
wait $sampler
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/pgbench.log")

echo
echo "bench: GET one case through the gateway, medians of $rounds rounds of $seconds s (wrk: $connections connections)"
printf '  %-44s %9s %9s\n' "" "req/s" "p99 ms"
printf '  %-44s %9s %9s\n' "(a) reads on the primary only" "$(median 1 < "$dir/primary")" "$(median 2 < "$dir/primary")"
printf '  %-44s %9s %9s\n' "(b) reads on the two standbys" "$(median 1 < "$dir/replicas")" "$(median 2 < "$dir/replicas")"
echo "  (b) / (a), median of the rounds' ratios: $(sort -n "$dir/ratio" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')   rounds: $(paste -sd' ' "$dir/ratio")"
echo
echo "  replay lag while the primary commits $tps audited write transactions a second:"
for kind in sync async; do
    awk -v k="$kind" '$2 == k {print $3, $4}' "$dir/lag" > "$dir/lag.$kind"
    [ -s "$dir/lag.$kind" ] || continue
    printf '    %-5s standby: replay lag median %s ms, max %s ms; bytes behind median %s, max %s\n' "$kind" \
        "$(median 1 < "$dir/lag.$kind")" "$(sort -n "$dir/lag.$kind" | tail -1 | cut -d' ' -f1)" \
        "$(median 2 < "$dir/lag.$kind")" "$(awk '{print $2}' "$dir/lag.$kind" | sort -n | tail -1)"
done
