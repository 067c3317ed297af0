#!/bin/bash
# Live events (GET /api/v1/events) on one throwaway cluster and an nginx of
# two workers:
#   (1) memory: the workers' RSS with STREAMS (10,000) streams open, against
#       the same workers idle: kB per open stream;
#   (2) latency from the commit of an event to a client, at RATE (1,000)
#       events/s to CLIENTS (1,000) streams, p50 and p99, against the
#       reference measured in the same run: pg_notify at the same rate to a
#       plain libpq LISTEN client.  Rounds alternate the two; the medians of
#       the rounds and their ratios are printed.
# The events and the notifications carry the microsecond they were written
# (clock_timestamp(), in the writing transaction); a client subtracts it
# from the moment it read them.  Clients, nginx, PostgreSQL and pgbench
# share the machine's cores.
#
#   ROUNDS=3 SECONDS_PER_RUN=10 STREAMS=10000 CLIENTS=1000 RATE=1000 bench/events.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-10}
streams=${STREAMS:-10000}
clients=${CLIENTS:-1000}
rate=${RATE:-1000}
PGBENCH=$(dirname "${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}")/pgbench

throwaway_cluster events
sql -f sql/demo.sql
http_port=$(scripts/cluster.sh free-port)
nginx_dir=$(pwd)/tmp/bench-events-nginx-$http_port
trap 'scripts/nginx.sh stop "$nginx_dir"; rm -rf "$nginx_dir"; scripts/cluster.sh destroy "$dir"' EXIT
WORKERS=2 WORKER_CONNECTIONS=$((streams / 2 + 2048)) LOG_LEVEL=warn API_RATE=1000000r/s \
    API_BURST=1000000 scripts/nginx.sh start "$nginx_dir" "$http_port" "$port"
echo "bench: nginx with two workers on 127.0.0.1:$http_port"

client=$(pwd)/tmp/events-client
gcc -O2 -Wall -Wextra -o "$client" bench/events-client.c -I"$(pg_config --includedir)" -lpq
ulimit -n "$(ulimit -Hn)"
token=$(curl -sf -X POST "http://127.0.0.1:$http_port/api/v1/auth/login" -H 'Content-Type: application/json' \
        -d '{"email":"agent@demo.example","password":"agent-demo-pass"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')

workers_rss() {  # kB, both workers
    local total=0 pid
    for pid in $(pgrep -P "$(cat "$nginx_dir/nginx.pid")"); do
        total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
    done
    echo "$total"
}

# (1) memory per open stream
"$client" hold "$http_port" "$token" 200 < <(sleep 3) >/dev/null    # the workers warmed up
idle=$(workers_rss)
echo "bench: opening $streams streams"
exec 3> >("$client" hold "$http_port" "$token" "$streams" > "$dir/hold.out")
for _ in $(seq 1 600); do grep -q '^open' "$dir/hold.out" 2>/dev/null && break; sleep 0.5; done
grep -q '^open' "$dir/hold.out" || { echo "bench: the streams did not open" >&2; exit 1; }
held=$(workers_rss)
exec 3>&-
per_stream=$(awk -v a="$idle" -v b="$held" -v n="$streams" 'BEGIN {printf "%.1f", (b - a) / n}')
echo "bench: workers' RSS idle ${idle} kB, with $streams streams open ${held} kB: ${per_stream} kB a stream"
for _ in $(seq 1 100); do grep -q '^closed' "$dir/hold.out" 2>/dev/null && break; sleep 0.2; done

# (2) latency at RATE events/s
cat > "$dir/notify.sql" <<'EOF'
SELECT pg_notify('bench_events', (extract(epoch FROM clock_timestamp()) * 1e6)::bigint::text);
EOF
cat > "$dir/event.sql" <<'EOF'
SELECT recovery.live_event('case.changed', 1, NULL,
                           jsonb_build_object('t', (extract(epoch FROM clock_timestamp()) * 1e6)::bigint));
EOF
generate() {  # FILE: RATE transactions a second for the run's seconds
    "$PGBENCH" -h "$dir/sock" -p "$port" -U postgres -n -c 4 -j 2 -R "$rate" -T "$seconds" -f "$1" recovery \
        > "$dir/pgbench.out" 2>&1
}
measure() {  # CLIENT ARGS...: runs the client while the generator runs; prints its report
    local out=$dir/client.out
    "$@" > "$out" &
    local pid=$!
    for _ in $(seq 1 600); do grep -q '^open' "$out" && break; sleep 0.2; done
    generate "$generator" || { cat "$dir/pgbench.out" >&2; exit 1; }
    wait "$pid"
    echo "$(grep '^events' "$out") written $(awk '/number of transactions actually processed/ {print $NF}' "$dir/pgbench.out" | cut -d/ -f1)"
}
field() { awk -v f="$1" '{for (i = 1; i < NF; i++) if ($i == f) print $(i + 1)}'; }

: > "$dir/ref"; : > "$dir/sse"
for round in $(seq 1 "$rounds"); do
    generator=$dir/notify.sql
    ref=$(measure "$client" listen "host=$dir/sock port=$port user=postgres dbname=recovery" bench_events $((seconds + 2)))
    generator=$dir/event.sql
    sse=$(measure "$client" sse "$http_port" "$token" "$clients" $((seconds + 2)))
    echo "$ref" >> "$dir/ref"; echo "$sse" >> "$dir/sse"
    echo "bench: round $round: LISTEN client: $ref; $clients streams: $sse (each client counts every event)"
done

bench_result "live events: commit -> $clients SSE streams, p50 latency (time)" "pg_notify -> one LISTEN client" "-" \
    $(paste <(field p50_us < "$dir/sse") <(field p50_us < "$dir/ref") | awk '{printf "%.2f ", $1 / $2}')
ref50=$(field p50_us < "$dir/ref" | median); ref99=$(field p99_us < "$dir/ref" | median)
sse50=$(field p50_us < "$dir/sse" | median); sse99=$(field p99_us < "$dir/sse" | median)
echo
echo "memory: $per_stream kB of nginx RSS per open stream ($streams streams, two workers)"
printf 'latency at %d events/s, median of %d rounds of %d s:\n' "$rate" "$rounds" "$seconds"
printf '  pg_notify -> one LISTEN client:     p50 %6.2f ms   p99 %7.2f ms\n' \
    "$(echo "$ref50 / 1000" | bc -l)" "$(echo "$ref99 / 1000" | bc -l)"
printf '  commit -> %5d SSE streams:         p50 %6.2f ms   p99 %7.2f ms\n' "$clients" \
    "$(echo "$sse50 / 1000" | bc -l)" "$(echo "$sse99 / 1000" | bc -l)"
printf '  ratio (SSE / LISTEN):               p50 %6.2f      p99 %7.2f\n' \
    "$(echo "$sse50 / $ref50" | bc -l)" "$(echo "$sse99 / $ref99" | bc -l)"
