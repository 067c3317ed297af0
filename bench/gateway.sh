#!/bin/bash
# The REST gateway against the limits around it, all in one run on one
# throwaway cluster: wrk on GET /api/v1/recovery-cases/{id} with a JWT, and
#   (a) pgbench -M prepared sending what the gateway sends for that request
#       (context + call, one pipeline) on as many connections as the pool;
#   (b) pgbench calling the bare function (what the context costs);
#   (c) nginx serving a static file of the same size (the HTTP limit).
# Rounds alternate the four; figures are medians over rounds, ratios are
# against (a) measured in the same run.
#
#   ROUNDS=3 SECONDS_PER_RUN=10 WORKERS=2 POOL_SIZE=2 CONNECTIONS=32 make bench
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-10}
workers=${WORKERS:-2}
pool=${POOL_SIZE:-2}
connections=${CONNECTIONS:-32}
db_connections=$((workers * pool))
case_id=5
pg_port=$(scripts/cluster.sh free-port)
http_port=$(scripts/cluster.sh free-port "$pg_port")
mkdir -p tmp
dir=$(pwd)/tmp/bench-gw-$pg_port
nginx_dir=$(pwd)/tmp/bench-gw-nginx-$http_port
PGBENCH=$(dirname "${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}")/pgbench

trap 'scripts/nginx.sh stop "$nginx_dir"; scripts/cluster.sh destroy "$dir"; rm -rf "$nginx_dir"' EXIT
trap 'exit 130' INT TERM

echo "bench: PostgreSQL 15 on 127.0.0.1:$pg_port, nginx on 127.0.0.1:$http_port"
scripts/cluster.sh start "$dir" "$pg_port"
scripts/cluster.sh psql "$dir" -q -v ON_ERROR_STOP=1 -f sql/demo.sql
WORKERS=$workers POOL_SIZE=$pool LOG_LEVEL=warn API_RATE=1000000r/s API_BURST=1000000 scripts/nginx.sh start "$nginx_dir" "$http_port" "$pg_port"

base=http://127.0.0.1:$http_port
token=$(curl -sf -X POST "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
        -d '{"email":"agent@demo.example","password":"agent-demo-pass"}' |
        sed 's/.*"token":"\([^"]*\)".*/\1/')
claims=$(printf '%s' "$token" | cut -d. -f2 | tr '_-' '/+' | base64 -d 2>/dev/null || true)
curl -sf -H "Authorization: Bearer $token" "$base/api/v1/recovery-cases/$case_id" > "$nginx_dir/case.json"
size=$(stat -c %s "$nginx_dir/case.json")
cat > "$nginx_dir/server-bench.conf" <<CONF
location = /bench/static.json {
    default_type  application/json;
    alias         $nginx_dir/case.json;
}
CONF
nginx -s reload -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -e "$nginx_dir/error.log"
sleep 1
curl -sf -o /dev/null "$base/bench/static.json" || { echo "bench: the static location does not answer" >&2; exit 1; }

# "req/s p50_ms p99_ms" of a wrk run
wrk_run() {
    wrk -t2 -c"$connections" -d"${seconds}s" --latency "$@" > "$dir/wrk.log" 2>&1
    perl -ne '
        sub ms { my ($v, $u) = @_; $u eq "us" ? $v / 1000 : $u eq "s" ? $v * 1000 : $v }
        $rps = $1 if /^Requests\/sec:\s+([\d.]+)/;
        $p50 = ms($1, $2) if /^\s+50%\s+([\d.]+)(us|ms|s)/;
        $p99 = ms($1, $2) if /^\s+99%\s+([\d.]+)(us|ms|s)/;
        $bad = $1 if /Non-2xx or 3xx responses: (\d+)/;
        END { die "wrk: $bad responses were errors\n" if $bad; printf "%.0f %.3f %.3f\n", $rps, $p50, $p99 }
    ' "$dir/wrk.log"
}

# "tps p50_ms p99_ms" of a pgbench run, percentiles from its per-transaction log
pgbench_run() {
    rm -f "$dir"/pgbench_log.*
    (cd "$dir" && PGPASSWORD=authenticator "$PGBENCH" -h 127.0.0.1 -p "$pg_port" \
        -U recovery_authenticator -n -M prepared -c "$db_connections" -j 2 -T "$seconds" \
        -l -D case_id=$case_id "$@" recovery > "$dir/pgbench.log" 2>&1) ||
        { cat "$dir/pgbench.log" >&2; exit 1; }
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/pgbench.log")
    cat "$dir"/pgbench_log.* | awk '{print $3}' | sort -n | awk -v tps="$tps" '
        { v[NR] = $1 } END { printf "%.0f %.3f %.3f\n", tps, v[int(NR * 0.5)] / 1000, v[int(NR * 0.99)] / 1000 }'
}

declare -A results
for round in $(seq 1 "$rounds"); do
    echo "bench: round $round of $rounds ($seconds s each)"
    results[gateway]+="$(wrk_run -H "Authorization: Bearer $token" "$base/api/v1/recovery-cases/$case_id")"$'\n'
    results[pipeline]+="$(pgbench_run -f "$(pwd)/bench/gateway-context.sql" -D role=recovery_agent -D user_id=3 \
        -D actor=agent@demo.example -D request_id=0123456789abcdef0123456789abcdef -D "claims=$claims")"$'\n'
    results[bare]+="$(PGOPTIONS='-c role=recovery_agent' pgbench_run -f "$(pwd)/bench/gateway-bare.sql")"$'\n'
    results[static]+="$(wrk_run "$base/bench/static.json")"$'\n'
done

median() { printf '%s' "$1" | awk -v c="$2" '{print $c}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo
echo "bench: GET one case ($size-byte JSON body), medians of $rounds rounds of $seconds s"
echo "       nginx: $workers workers x $pool database connections = $db_connections; wrk: 2 threads, $connections connections"
echo "       pgbench: -M prepared, $db_connections clients, 2 threads"
printf '  %-52s %9s %9s %9s\n' "" "req/s" "p50 ms" "p99 ms"
for k in gateway pipeline bare static; do
    case $k in
        gateway)  label="gateway: REST + JWT through ngx_recovery" ;;
        pipeline) label="(a) pgbench: the gateway's statements, pipelined" ;;
        bare)     label="(b) pgbench: the bare function" ;;
        static)   label="(c) nginx: a static file of the same size" ;;
    esac
    printf '  %-52s %9s %9s %9s\n' "$label" "$(median "${results[$k]}" 1)" \
        "$(median "${results[$k]}" 2)" "$(median "${results[$k]}" 3)"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# ratios are taken per round (its runs are back to back), then the median
round_ratios() {
    paste <(printf '%s' "${results[$1]}" | awk '{print $1}') \
          <(printf '%s' "${results[$2]}" | awk '{print $1}') |
        awk '{ printf "%.2f\n", $1 / $2 }' | sort -n
}
median_ratio() { round_ratios "$1" "$2" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
rounds_of() { round_ratios "$1" "$2" | paste -sd' '; }

echo
echo "  ratios: each round's runs are back to back; the figure is the median of the rounds' ratios"
echo "  gateway / (a) database limit for this work:  $(median_ratio gateway pipeline)   rounds: $(rounds_of gateway pipeline)   (target: at least 0.80)"
echo "  (a) / (b) what the request context costs:     $(median_ratio pipeline bare)   rounds: $(rounds_of pipeline bare)"
echo "  gateway / (c) HTTP limit:                     $(median_ratio gateway static)   rounds: $(rounds_of gateway static)"
