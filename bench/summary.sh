#!/bin/bash
# The table `make bench` ends with: one row per path that a benchmark
# measured against its peer or limit (bench_result in bench/common.sh), with
# the median of the rounds' ratios, their range and the goal.  Printed, and
# kept in bench/results.md with the machine and the commit it ran on.
#   bench/summary.sh RESULTS.tsv
set -euo pipefail
cd "$(dirname "$0")/.."

results=${1:?usage: bench/summary.sh RESULTS.tsv}
[ -s "$results" ] || { echo "bench: no results in $results" >&2; exit 1; }

table() {
    echo "| path | peer or limit | ratio (median) | rounds (min–max) | n | goal |"
    echo "|---|---|---:|---:|---:|---|"
    while IFS=$'\t' read -r path peer goal ratios; do
        printf '%s\n' $ratios | sort -n | awk -v path="$path" -v peer="$peer" -v goal="$goal" '
            { v[NR] = $1 }
            END {
                m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                printf "| %s | %s | %.2f | %.2f–%.2f | %d | %s |\n", path, peer, m, v[1], v[NR], NR, goal
            }'
    done < "$results"
}

{
    echo "# The last \`make bench\`"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
         "$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem:/ {print $2}') GiB."
    echo "A ratio is this path's throughput over its peer's, measured back to back in each round"
    echo "(for rows marked (time), its time over the peer's: lower is better); the figure is the"
    echo "median of the rounds' ratios. Machines here are shared and noisy: read ratios, not absolute figures."
    echo
    table
} > bench/results.md

echo
echo "bench: results (kept in bench/results.md)"
table
