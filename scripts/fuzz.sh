#!/bin/sh
# make fuzz: each parser's libFuzzer target replays its regressions (inputs
# that once crashed it), then fuzzes for SECONDS from the seed corpus.  A
# crash stops with the input saved under tmp/fuzz/ and a non-zero status;
# add that input to t/fuzz/regressions/<parser>/ once it is fixed.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-20}
mkdir -p tmp/fuzz
# xls is left out: its target finds FreeXL's own bugs (t/fuzz/regressions/xls/README)
for parser in csv text email camt mt940 xlsx pdf; do
    target=build/fuzz-$parser
    work=tmp/fuzz/$parser
    rm -rf "$work"
    mkdir -p "$work/corpus"
    regressions=$(find t/fuzz/regressions/$parser -type f ! -name README 2>/dev/null | sort)
    if [ -n "$regressions" ]; then
        echo "fuzz: $parser: replaying $(echo "$regressions" | wc -l) regression inputs"
        # shellcheck disable=SC2086
        "$target" -runs=1 $regressions >"$work/regressions.log" 2>&1 ||
            { tail -40 "$work/regressions.log" >&2; exit 1; }
    fi
    echo "fuzz: $parser: ${seconds} s from t/fuzz/corpus/$parser"
    "$target" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/" -print_final_stats=1 \
        "$work/corpus" "t/fuzz/corpus/$parser" >"$work/fuzz.log" 2>&1 ||
        { tail -60 "$work/fuzz.log" >&2; echo "fuzz: $parser crashed; the input is in $work/" >&2; exit 1; }
    sed -n 's/^stat::number_of_executed_units: */  runs: /p; s/^stat::new_units_added: */  new inputs: /p' "$work/fuzz.log"
done
