#!/bin/sh
# Proof that the suite is green every time: runs make test's set-up and prove
# stage N times (scripts/test.sh --prove-only), each on a fresh cluster and
# nginx, and prints each run's result and a summary.  With STRESS=1 both
# cores are kept busy by stress-ng for the whole soak, as on a loaded CI
# machine.  Each run's output is kept in tmp/soak/run-I.log.
#
#   scripts/soak-tests.sh N        (make soak N=10 [STRESS=1])
set -eu
cd "$(dirname "$0")/.."

runs=${1:-10}
case $runs in ''|*[!0-9]*) echo "usage: $0 N (the number of runs)" >&2; exit 2 ;; esac
logs=tmp/soak
rm -rf "$logs"
mkdir -p "$logs"

if [ ! -f build/ngx_http_recovery_module.so ]; then
    echo "soak: the module is not built: run make soak (it builds and installs first)" >&2
    exit 2
fi

stress_pid=
trap '[ -n "$stress_pid" ] && kill "$stress_pid" 2>/dev/null; wait 2>/dev/null' EXIT
trap 'exit 130' INT TERM
if [ "${STRESS:-0}" = 1 ]; then
    command -v stress-ng >/dev/null || { echo "soak: stress-ng is missing: run make deps (as root)" >&2; exit 2; }
    stress-ng --cpu "$(nproc)" --quiet &
    stress_pid=$!
    echo "soak: stress-ng --cpu $(nproc) keeps every core busy (pid $stress_pid)"
fi

green=0
: >"$logs/failed-files"
i=1
while [ "$i" -le "$runs" ]; do
    start=$(date +%s)
    if scripts/test.sh --prove-only >"$logs/run-$i.log" 2>&1; then
        result=green
        green=$((green + 1))
    else
        # the files prove reports as failed, or the set-up's last line
        failed=$(sed -n 's/^\(t\/[^ ]*\) *(Wstat.*/\1/p' "$logs/run-$i.log")
        [ -n "$failed" ] || failed="set-up: $(tail -n 1 "$logs/run-$i.log")"
        echo "$failed" >>"$logs/failed-files"
        result="RED: $(echo "$failed" | tr '\n' ' ')"
        # which tests of those files, as prove's summary lists them
        sed -n 's/^ *\(Failed tests\?: .*\)/\1/p' "$logs/run-$i.log" | sed 's/^/soak:     /' >"$logs/failed-$i"
    fi
    tests=$(sed -n 's/^Files=\([0-9]*\), Tests=\([0-9]*\),.*/\2 tests/p' "$logs/run-$i.log")
    echo "soak: run $i of $runs: $result ($(( $(date +%s) - start )) s${tests:+, $tests}; $logs/run-$i.log)"
    [ -f "$logs/failed-$i" ] && cat "$logs/failed-$i"
    i=$((i + 1))
done

echo "soak: $green of $runs runs green${STRESS:+ (STRESS=$STRESS)}"
if [ "$green" -ne "$runs" ]; then
    echo "soak: what failed, and in how many runs:"
    sort "$logs/failed-files" | uniq -c | sed 's/^/soak:   /'
    exit 1
fi
