#!/bin/bash
# The REST gateway against the limits around it, all in one run on one
# throwaway cluster: wrk on two GETs with a JWT, a light function
# (/api/v1/case-states) and a case (/api/v1/recovery-cases/{id}, 1.8 kB),
# through two nginx on the same cluster, one with calls pipelined
# (recovery_pipeline_depth, DEPTH=4) and one without (depth 1), against
#   (a) pgbench -M prepared sending what the gateway sends for that request
#       (context + call, one pipeline, one transaction) on as many
#       connections as the pool, the database's own limit for this work;
#   (b) pgbench calling the bare function (what the context costs);
#   (c) nginx serving a static file of the case's size (the HTTP limit).
# Rounds alternate them; figures are medians over rounds, ratios are taken
# per round against (a) measured in the same round.
#
#   ROUNDS=3 SECONDS_PER_RUN=10 WORKERS=2 POOL_SIZE=2 DEPTH=4 CONNECTIONS=32 make bench
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-10}
workers=${WORKERS:-2}
pool=${POOL_SIZE:-2}
depth=${DEPTH:-4}
connections=${CONNECTIONS:-32}
db_connections=$((workers * pool))
case_id=5
pg_port=$(scripts/cluster.sh free-port)
http_port=$(scripts/cluster.sh free-port "$pg_port")
one_port=$(scripts/cluster.sh free-port "$pg_port" "$http_port")
mkdir -p tmp
dir=$(pwd)/tmp/bench-gw-$pg_port
nginx_dir=$(pwd)/tmp/bench-gw-nginx-$http_port
one_dir=$(pwd)/tmp/bench-gw-nginx-$one_port
PGBENCH=$(dirname "${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}")/pgbench

trap 'scripts/nginx.sh stop "$nginx_dir"; scripts/nginx.sh stop "$one_dir"; scripts/cluster.sh destroy "$dir"; rm -rf "$nginx_dir" "$one_dir"' EXIT
trap 'exit 130' INT TERM

echo "bench: PostgreSQL 15 on 127.0.0.1:$pg_port, nginx on 127.0.0.1:$http_port (depth $depth) and :$one_port (depth 1)"
scripts/cluster.sh start "$dir" "$pg_port"
scripts/cluster.sh psql "$dir" -q -v ON_ERROR_STOP=1 -f sql/demo.sql
settings="WORKERS=$workers POOL_SIZE=$pool LOG_LEVEL=warn API_RATE=1000000r/s API_BURST=1000000"
env $settings PIPELINE_DEPTH="$depth" scripts/nginx.sh start "$nginx_dir" "$http_port" "$pg_port"
# the same signing secret, so that one token serves both
mkdir -p "$one_dir" && cp -p "$nginx_dir/jwt-secret" "$one_dir/jwt-secret"
env $settings PIPELINE_DEPTH=1 scripts/nginx.sh start "$one_dir" "$one_port" "$pg_port"

base=http://127.0.0.1:$http_port
one=http://127.0.0.1:$one_port
token=$(curl -sf -X POST "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
        -d '{"email":"agent@demo.example","password":"agent-demo-pass"}' |
        sed 's/.*"token":"\([^"]*\)".*/\1/')
claims=$(printf '%s' "$token" | cut -d. -f2 | tr '_-' '/+' | base64 -d 2>/dev/null || true)
curl -sf -H "Authorization: Bearer $token" "$base/api/v1/recovery-cases/$case_id" > "$nginx_dir/case.json"
size=$(stat -c %s "$nginx_dir/case.json")
light_size=$(curl -sf -H "Authorization: Bearer $token" "$base/api/v1/case-states" | wc -c)
cat > "$nginx_dir/server-bench.conf" <<CONF
location = /bench/static.json {
    default_type  application/json;
    alias         $nginx_dir/case.json;
}
CONF
nginx -s reload -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -e "$nginx_dir/error.log"
for _ in $(seq 1 50); do
    curl -sf -o /dev/null "$base/bench/static.json" && break
    sleep 0.1
done
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
context=(-D role=recovery_agent -D user_id=3 -D actor=agent@demo.example
         -D request_id=0123456789abcdef0123456789abcdef -D "claims=$claims")
for round in $(seq 1 "$rounds"); do
    echo "bench: round $round of $rounds ($seconds s each)"
    for path in light case; do
        url=/api/v1/recovery-cases/$case_id script=gateway-context.sql
        [ $path = light ] && url=/api/v1/case-states script=gateway-light.sql
        results[gw_$path]+="$(wrk_run -H "Authorization: Bearer $token" "$base$url")"$'\n'
        results[one_$path]+="$(wrk_run -H "Authorization: Bearer $token" "$one$url")"$'\n'
        results[pg_$path]+="$(pgbench_run -f "$(pwd)/bench/$script" "${context[@]}")"$'\n'
    done
    results[bare]+="$(PGOPTIONS='-c role=recovery_agent' pgbench_run -f "$(pwd)/bench/gateway-bare.sql")"$'\n'
    results[static]+="$(wrk_run "$base/bench/static.json")"$'\n'
done

median_of() { printf '%s' "$1" | awk -v c="$2" '{print $c}' | median; }

echo
echo "bench: medians of $rounds rounds of $seconds s"
echo "       nginx: $workers workers x $pool database connections = $db_connections; wrk: 2 threads, $connections connections"
echo "       pgbench: -M prepared, $db_connections clients, 2 threads"
printf '  %-58s %9s %9s %9s\n' "" "req/s" "p50 ms" "p99 ms"
for k in gw_light one_light pg_light gw_case one_case pg_case bare static; do
    case $k in
        gw_light)  label="light ($light_size B): gateway, pipeline depth $depth" ;;
        one_light) label="light: gateway, depth 1" ;;
        pg_light)  label="light: (a) pgbench, the gateway's statements" ;;
        gw_case)   label="case ($size B): gateway, pipeline depth $depth" ;;
        one_case)  label="case: gateway, depth 1" ;;
        pg_case)   label="case: (a) pgbench, the gateway's statements" ;;
        bare)      label="case: (b) pgbench, the bare function" ;;
        static)    label="(c) nginx: a static file of the case's size" ;;
    esac
    printf '  %-58s %9s %9s %9s\n' "$label" "$(median_of "${results[$k]}" 1)" \
        "$(median_of "${results[$k]}" 2)" "$(median_of "${results[$k]}" 3)"
done

# ratios are taken per round (its runs are back to back), then the median
round_ratios() {
    paste <(printf '%s' "${results[$1]}" | awk '{print $1}') \
          <(printf '%s' "${results[$2]}" | awk '{print $1}') |
        awk '{ printf "%.2f\n", $1 / $2 }'
}
median_ratio() { round_ratios "$1" "$2" | median; }
rounds_of() { round_ratios "$1" "$2" | paste -sd' '; }
line() { printf '  %-44s %5s   rounds: %s%s\n' "$1" "$(median_ratio "$2" "$3")" "$(rounds_of "$2" "$3")" "${4:+   (goal: $4)}"; }

echo
echo "  ratios: each round's runs are back to back; the figure is the median of the rounds' ratios"
line "light: gateway (depth $depth) / (a)" gw_light pg_light "at least 0.75"
line "light: gateway (depth 1) / (a)" one_light pg_light
line "case: gateway (depth $depth) / (a)" gw_case pg_case "at least 0.90"
line "case: gateway (depth 1) / (a)" one_case pg_case
line "case: (a) / (b), what the context costs" pg_case bare
line "case: gateway (depth $depth) / (c) HTTP limit" gw_case static

bench_result "GET a light function (/api/v1/case-states), JWT" \
    "pgbench -M prepared, the same statements, $db_connections connections" ">= 0.75" $(round_ratios gw_light pg_light)
bench_result "GET /api/v1/recovery-cases/{id} ($size B), JWT" \
    "pgbench -M prepared, the same statements, $db_connections connections" ">= 0.90" $(round_ratios gw_case pg_case)
