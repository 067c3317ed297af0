#!/bin/sh
# Statement formats: a CAMT.053 of ENTRIES entries (about 1 kB each: 200,000
# make some 270 MB) read by recovery-parse against `xmllint --stream --noout`
# of the same file (time and peak memory, and the memory again for a file
# a quarter of the size: flat means the same), then imported through
# recovery.extract_payments() against the import of the same entries as the
# bank's CSV, on one throwaway cluster; and a 50-page PDF statement parsed.
# Rounds alternate the two sides; figures are medians, with the range.
#
#   ENTRIES=200000 ROUNDS=3 bench/formats.sh
set -eu
cd "$(dirname "$0")/.."
. bench/common.sh

entries=${ENTRIES:-200000}
rounds=${ROUNDS:-3}
parser=$(pg_config --pkglibdir)/recovery-parse
[ -x "$parser" ] || { echo "bench: $parser is missing: make install" >&2; exit 1; }

throwaway_cluster formats
sql -f sql/demo.sql >/dev/null

camt=$dir/statement.xml
csv=$dir/statement.csv
echo "bench: writing the statement as CAMT.053 and as CSV ($entries entries)"
perl bench/statement-files.pl "$entries" "$camt" "$csv"
perl bench/statement-files.pl "$((entries / 4))" "$dir/quarter.xml" "$dir/quarter.csv"
chown postgres "$camt" "$csv"
echo "bench: CAMT $(stat -c %s "$camt") bytes, CSV $(stat -c %s "$csv") bytes"

# runs a command; prints "seconds peak_kB"
measure() { /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1; }
range() { tr ' ' '\n' | grep . | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s", lo, hi}'; }

echo "bench: parse only, $rounds rounds: recovery-parse (sandboxed, as the extension runs it) and xmllint --stream"
printf '%-6s %10s %10s %10s %10s %8s\n' round parse_s parse_MB xmllint_s xmllint_MB speed
speeds="" parse_mb="" parse_s=""
for r in $(seq 1 "$rounds"); do
    set -- $(measure "$parser" --format camt <"$camt")
    p=$1 pm=$(( $2 / 1024 ))
    set -- $(measure xmllint --stream --noout "$camt")
    x=$1 xm=$(( $2 / 1024 ))
    s=$(echo "$x $p" | awk '{printf "%.2f", $1 / $2}')
    printf '%-6s %10s %10s %10s %10s %8s\n' "$r" "$p" "$pm" "$x" "$xm" "$s"
    speeds="$speeds $s" parse_mb="$parse_mb $pm" parse_s="$parse_s $p"
done
quarter_mb=$(( $(measure "$parser" --format camt <"$dir/quarter.xml" | cut -d' ' -f2) / 1024 ))
peak=$(echo "$parse_mb" | tr ' ' '\n' | grep . | sort -n | tail -1)

timed() {
    sql -At -c "\\timing on" -c "$1" 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1 |
        awk '{printf "%.2f", $1 / 1000}'
}
import_csv="SELECT recovery.extract_payments('statement', pg_read_binary_file('$csv')) ->> 'lines'"
import_camt="SELECT recovery.extract_payments('statement', pg_read_binary_file('$camt')) ->> 'lines'"
echo "bench: full import, $rounds rounds: the CSV, then the CAMT (each into empty tables)"
printf '%-6s %10s %10s %8s\n' round csv_s camt_s ratio
ratios=""
for r in $(seq 1 "$rounds"); do
    sql -c "TRUNCATE recovery.extraction_lines, recovery.extractions CASCADE" -c "CHECKPOINT"
    c=$(timed "$import_csv")
    n_csv=$(sql -At -c "SELECT count(*) FROM recovery.extraction_lines")
    sql -c "TRUNCATE recovery.extraction_lines, recovery.extractions CASCADE" -c "CHECKPOINT"
    x=$(timed "$import_camt")
    n_camt=$(sql -At -c "SELECT count(*) FROM recovery.extraction_lines")
    [ "$n_csv" -eq "$entries" ] && [ "$n_camt" -eq "$entries" ] ||
        { echo "bench: stored $n_csv lines from the CSV, $n_camt from the CAMT, of $entries" >&2; exit 1; }
    ratio=$(echo "$x $c" | awk '{printf "%.2f", $1 / $2}')
    printf '%-6s %10s %10s %8s\n' "$r" "$c" "$x" "$ratio"
    ratios="$ratios $ratio"
done

echo "bench: a 50-page PDF statement (40 bookings a page), $rounds rounds"
perl -Ilib -It/lib -MRecovery::Statements=statement_pdf -e '
    my @e = map { { date => sprintf("2026-11-%02d", 1 + $_ % 28), amount => sprintf("%d.%02d", 10 + $_, $_ % 100),
                    reference => "Invoice BENCH-$_", payer => "Payer $_ GmbH", iban => sprintf("DE89370400440532%06d", $_) } } 1 .. 2000;
    binmode STDOUT; print statement_pdf(entries => \@e)' >"$dir/statement.pdf"
pdf_s=""
for r in $(seq 1 "$rounds"); do
    pdf_s="$pdf_s $(measure "$parser" --format pdf <"$dir/statement.pdf" | cut -d' ' -f1)"
done
rows=$("$parser" <"$dir/statement.pdf" 2>/dev/null | tail -n +2 | wc -l)
[ "$rows" -eq 2000 ] || { echo "bench: the PDF gave $rows rows of 2000" >&2; exit 1; }

bench_result "CAMT.053, $entries entries: recovery-parse" "xmllint --stream of the same file" ">= 0.5" $speeds
bench_result "CAMT.053, $entries entries: import (time)" "the same statement as CSV" "<= 1.5" $ratios
echo "bench: CAMT.053, $entries entries: parse at $(echo "$speeds" | tr ' ' '\n' | median) of xmllint's speed" \
     "(rounds $(echo "$speeds" | range); goal at least 0.5), peak memory ${peak} MB (${quarter_mb} MB for a" \
     "quarter of the file; goal under 64 MB); import at $(echo "$ratios" | tr ' ' '\n' | median)× the CSV's time" \
     "(rounds $(echo "$ratios" | range); goal at most 1.5); 50-page PDF in $(echo "$pdf_s" | tr ' ' '\n' | median) s" \
     "(rounds $(echo "$pdf_s" | range); goal under 2 s)"
