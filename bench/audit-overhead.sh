#!/bin/sh
# Audit trail overhead: the same pgbench transaction mix (record a payment,
# transition a case) with the audit triggers on and off, alternating in one
# run on one throwaway cluster, and the ratio of median throughputs.
#
#   ROUNDS=5 SECONDS_PER_RUN=15 CLIENTS=4 make bench
set -eu
cd "$(dirname "$0")/.."
. bench/common.sh

rounds=${ROUNDS:-5}
seconds=${SECONDS_PER_RUN:-15}
clients=${CLIENTS:-4}
PGBENCH=$(dirname "${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}")/pgbench

throwaway_cluster audit

echo "bench: 5000 open cases with large balances"
sql -f bench/cases-setup.sql

audit() {
    for t in customers payments recovery_cases case_events promises receipts \
             receipt_allocations users api_keys; do
        echo "ALTER TABLE recovery.$t $1 TRIGGER audit;"
    done | sql
}

run() {
    sock=$dir/sock
    runuser -u postgres -- "$PGBENCH" -h "$sock" -p "$port" -U postgres -n \
        -f bench/audit-overhead.sql -c "$clients" -j 2 -T "$seconds" recovery \
        >"$dir/pgbench.log" 2>&1 || { cat "$dir/pgbench.log" >&2; exit 1; }
    sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/pgbench.log"
}

: >"$dir/on.tps"
: >"$dir/off.tps"
: >"$dir/ratio"
echo "bench: $rounds rounds of ${seconds}s per mode, $clients clients, alternating"
for r in $(seq 1 "$rounds"); do
    audit ENABLE
    on=$(run)
    audit DISABLE
    off=$(run)
    echo "$on" >>"$dir/on.tps"
    echo "$off" >>"$dir/off.tps"
    ratio=$(awk -v on="$on" -v off="$off" 'BEGIN {printf "%.3f", on / off}')
    echo "$ratio" >>"$dir/ratio"
    echo "  round $r: audit on $on tps, audit off $off tps, ratio $ratio"
done
audit ENABLE
bench_result "write mix (record money, transition) with the audit trail" \
    "the same mix with the audit triggers off" ">= 0.90 (cost <= 10%)" $(cat "$dir/ratio")

on=$(median <"$dir/on.tps")
off=$(median <"$dir/off.tps")
ratio=$(median <"$dir/ratio")
rows=$(sql -tAc "SELECT count(*) FROM recovery.audit_log")
verify=$(sql -tAc "SELECT ok FROM recovery.audit_verify()")
# The machine's speed drifts between rounds; each round's on/off pair runs
# back to back, so the median of the paired ratios is the figure to quote.
awk -v on="$on" -v off="$off" -v ratio="$ratio" -v rows="$rows" -v verify="$verify" 'BEGIN {
    printf "median tps: audit on %.1f, audit off %.1f\n", on, off
    printf "throughput with audit / without (median of paired rounds): %.3f\n", ratio
    printf "audit cost: %.1f%% of throughput (goal: at most 10%%)\n", (1 - ratio) * 100
    printf "audit rows written: %d; audit_verify ok: %s\n", rows, verify
}'
