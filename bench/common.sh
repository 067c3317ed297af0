# What the benchmarks share; source it from bench/*.sh at the repository root.
#   throwaway_cluster NAME   a cluster on a free port in tmp/bench-NAME-PORT,
#                            removed on exit; sets port and dir; its WAL is
#                            archived only with ARCHIVE=on (bench/backup.sh)
#   sql ...                  psql into it, stopping at the first error
#   median                   the median of the numbers on standard input
#   bench_result ...         a row of the final table (see below)

throwaway_cluster() {
    port=$(scripts/cluster.sh free-port)
    mkdir -p tmp
    dir=$(pwd)/tmp/bench-$1-$port
    trap 'scripts/cluster.sh destroy "$dir"' EXIT
    trap 'exit 130' INT TERM
    echo "bench: PostgreSQL 15 on 127.0.0.1:$port"
    ARCHIVE=${ARCHIVE:-off} scripts/cluster.sh start "$dir" "$port"
}

sql() { scripts/cluster.sh psql "$dir" -q -v ON_ERROR_STOP=1 "$@"; }

median() {
    grep . | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# bench_result PATH PEER GOAL RATIO...: a row of the table that `make bench`
# ends with (bench/summary.sh): what was measured, against what, the goal,
# and each round's ratio.  Kept in $BENCH_RESULTS when it is set.
bench_result() {
    [ -n "${BENCH_RESULTS:-}" ] || return 0
    _path=$1 _peer=$2 _goal=$3
    shift 3
    printf '%s\t%s\t%s\t%s\n' "$_path" "$_peer" "$_goal" "$*" >>"$BENCH_RESULTS"
}
