#!/bin/sh
# make test: a throwaway cluster on a free port, the demo data, every test
# under t/ through prove, and the cluster stopped whatever the outcome.
set -eu
cd "$(dirname "$0")/.."

port=$(scripts/cluster.sh free-port)
mkdir -p tmp
dir=$(pwd)/tmp/test-$port

trap 'scripts/cluster.sh destroy "$dir"' EXIT
trap 'exit 130' INT TERM

echo "test: PostgreSQL 15 on 127.0.0.1:$port in $dir"
scripts/cluster.sh start "$dir" "$port"
scripts/cluster.sh psql "$dir" -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS pgtap'
echo "test: loading demo data"
scripts/cluster.sh psql "$dir" -q -v ON_ERROR_STOP=1 -f sql/demo.sql

export PGHOST="$dir/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=recovery
prove --recurse --timer --ext .t --ext .pg --source Perl --source pgTAP \
    --pgtap-option dbname=recovery --pgtap-option host="$PGHOST" \
    --pgtap-option port="$PGPORT" --pgtap-option username=postgres \
    --pgtap-option set=ON_ERROR_STOP=1 \
    t/ "$@"
