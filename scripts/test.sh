#!/bin/sh
# make test: a throwaway cluster on a free port with the demo data, nginx
# with the module on another, every test under t/ through prove; then the
# parsers' fuzz targets for a bounded time; then the HTTP tests again against
# nginx with the module built with AddressSanitizer.
# Everything is stopped whatever the outcome.
#
#   test.sh                        all three stages
#   test.sh --prove-only [TESTS]   the set-up and the prove stage, over t/ or
#                                  the files or folders given (soak-tests.sh
#                                  repeats it; t/e2e/ alone, say, while fixing)
set -eu
cd "$(dirname "$0")/.."

stages=all
if [ "${1:-}" = --prove-only ]; then stages=prove; shift; fi
[ $# -gt 0 ] || set -- t/

port=$(scripts/cluster.sh free-port)
http_port=$(scripts/cluster.sh free-port "$port")
asan_port=$(scripts/cluster.sh free-port "$port" "$http_port")
mkdir -p tmp
dir=$(pwd)/tmp/test-$port
nginx_dir=$(pwd)/tmp/test-nginx-$http_port
asan_dir=$(pwd)/tmp/test-nginx-asan-$asan_port

trap 'scripts/nginx.sh stop "$nginx_dir"; scripts/nginx.sh stop "$asan_dir";
      scripts/cluster.sh destroy "$dir"; rm -rf "$nginx_dir" "$asan_dir"' EXIT
trap 'exit 130' INT TERM

echo "test: PostgreSQL 15 on 127.0.0.1:$port in $dir"
scripts/cluster.sh start "$dir" "$port"
scripts/cluster.sh psql "$dir" -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS pgtap'
echo "test: loading demo data"
scripts/cluster.sh psql "$dir" -q -v ON_ERROR_STOP=1 -f sql/demo.sql
echo "test: nginx with ngx_recovery on 127.0.0.1:$http_port in $nginx_dir"
# the tests come from one address, fast: rate limits of their own (rate-limit.t)
export LOGIN_RATE=1000r/s LOGIN_BURST=1000 API_RATE=100000r/s API_BURST=100000
scripts/nginx.sh start "$nginx_dir" "$http_port" "$port"

# the web app's end-to-end test: playwright-core and axe-core from the lock file
if [ ! -d t/e2e/node_modules/playwright-core ] || [ ! -d t/e2e/node_modules/axe-core ]; then
    echo "test: installing playwright-core and axe-core for the web app's tests (npm ci)"
    (cd t/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
# the OpenAPI document's checks: Redocly, ajv, openapi-typescript, tsc
if [ ! -d t/openapi/node_modules/@redocly/cli ] || [ ! -d t/openapi/node_modules/typescript ]; then
    echo "test: installing the OpenAPI checks' tools (npm ci in t/openapi)"
    (cd t/openapi && npm ci --no-audit --no-fund --loglevel=error)
fi
export SCREENSHOTS_DIR="$(pwd)/tmp/screenshots"
echo "test: screenshots of the web app go to $SCREENSHOTS_DIR"

export PGHOST="$dir/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=recovery
export RECOVERY_CLUSTER_DIR="$dir" RECOVERY_NGINX_DIR="$nginx_dir"
export RECOVERY_HTTP="http://127.0.0.1:$http_port"
# every answer of the HTTP tests, for t/openapi/responses.t to check
export RECOVERY_CONTRACT_LOG="$dir/contract.jsonl"
prove --recurse --timer --ext .t --ext .pg --source Perl --source pgTAP \
    --pgtap-option dbname=recovery --pgtap-option host="$PGHOST" \
    --pgtap-option port="$PGPORT" --pgtap-option username=postgres \
    --pgtap-option set=ON_ERROR_STOP=1 \
    "$@"
[ "$stages" = prove ] && exit 0

echo "test: the parsers under libFuzzer with AddressSanitizer and UBSan, ${FUZZ_SECONDS:-15} s each"
make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-15}"

echo "test: the HTTP tests again, with the module built with AddressSanitizer"
SANITIZE=address scripts/build-module.sh
mkdir -p "$asan_dir/asan"
export ASAN_OPTIONS="log_path=$asan_dir/asan/asan:detect_leaks=1" LSAN_OPTIONS=exitcode=0
export MODULE=$(pwd)/build-address/ngx_http_recovery_module.so
export NGINX_PRELOAD=$(gcc -print-file-name=libasan.so)
scripts/nginx.sh start "$asan_dir" "$asan_port" "$port"
RECOVERY_NGINX_DIR="$asan_dir" RECOVERY_HTTP="http://127.0.0.1:$asan_port" \
RECOVERY_ASAN_LOGS="$asan_dir/asan" RECOVERY_CONTRACT_LOG= \
    prove --timer --ext .t --source Perl t/http/ t/asan/report.pl
