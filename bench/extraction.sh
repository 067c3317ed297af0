#!/bin/sh
# Importing a CSV statement through recovery.extract_payments() (parse in C,
# fingerprints, duplicates, matching against the demo data's cases, lines
# stored) against PostgreSQL's own COPY of the same file into a table of
# text columns, in one run on one throwaway cluster.  Prints MB/s for both
# and the ratio.  The statement's lines match none of the cases, so nothing
# is applied: applying is case_record_payment()'s cost, not reading's.
#
#   MB=100 ROUNDS=3 make bench
set -eu
cd "$(dirname "$0")/.."
. bench/common.sh

mb=${MB:-100}
rounds=${ROUNDS:-3}

throwaway_cluster extraction
sql -f sql/demo.sql >/dev/null

# the statement lives where the server may read it
file=$dir/statement.csv
echo "bench: writing a ${mb} MB statement (a bank's layout: ;-separated, decimal commas, quoted references)"
perl -e '
    my ($bytes, $file) = @ARGV;
    open my $out, ">", $file or die $!;
    print $out "Buchungstag;Valutadatum;Auftraggeber;Verwendungszweck;Betrag;W\xe4hrung\r\n";
    my ($written, $n) = (0, 0);
    while ($written < $bytes) {
        $n++;
        my $line = sprintf "%02d.%02d.2026;%02d.%02d.2026;\"Kunde %d GmbH\";\"Rechnung INV-B-%07d Kd %d\";%d,%02d;EUR\r\n",
            1 + $n % 28, 1 + $n % 12, 1 + $n % 28, 1 + $n % 12, $n % 50000, $n, $n % 50000, $n % 5000, $n % 100;
        print $out $line;
        $written += length $line;
    }
' "$((mb * 1024 * 1024))" "$file"
chown postgres "$file"
size=$(stat -c %s "$file")
echo "bench: $(wc -l <"$file") lines, $size bytes"

sql <<'SQL'
\o /dev/null
SET client_min_messages = warning;
SELECT recovery.bank_mapping_save('bench', '{"date": "Buchungstag", "amount": "Betrag", "currency": "Währung",
    "reference": "Verwendungszweck", "payer": "Auftraggeber", "delimiter": ";", "decimal": ","}');
CREATE TABLE bench_copy (booked text, valuta text, payer text, reference text, amount text, currency text);
SQL

# runs $1; prints the seconds it took
timed() {
    sql -At -c "\\timing on" -c "$1" 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1 |
        awk '{printf "%.2f", $1 / 1000}'
}

copy="COPY bench_copy FROM '$file' (FORMAT csv, DELIMITER ';', HEADER true, ENCODING 'WIN1252')"
extract="SELECT recovery.extract_payments('statement', pg_read_binary_file('$file'), 'bench') ->> 'lines'"

echo "bench: $rounds rounds, each: COPY, then extract_payments"
printf '%-6s %10s %10s %12s %12s %8s\n' round copy_s extract_s copy_MB/s extract_MB/s ratio
copy_rates=""
extract_rates=""
ratios=""
for r in $(seq 1 "$rounds"); do
    sql -c "TRUNCATE bench_copy" -c "TRUNCATE recovery.extraction_lines, recovery.extractions CASCADE" -c "CHECKPOINT"
    c=$(timed "$copy")
    sql -c "CHECKPOINT"
    e=$(timed "$extract")
    stored=$(sql -At -c "SELECT count(*) FROM recovery.extraction_lines")
    copied=$(sql -At -c "SELECT count(*) FROM bench_copy")
    [ "$stored" -eq "$copied" ] || { echo "bench: extract_payments stored $stored lines, COPY $copied" >&2; exit 1; }
    cr=$(echo "$size $c" | awk '{printf "%.1f", $1 / 1048576 / $2}')
    er=$(echo "$size $e" | awk '{printf "%.1f", $1 / 1048576 / $2}')
    printf '%-6s %10s %10s %12s %12s %8s\n' "$r" "$c" "$e" "$cr" "$er" "$(echo "$er $cr" | awk '{printf "%.2f", $1 / $2}')"
    copy_rates="$copy_rates $cr"
    ratios="$ratios $(echo "$er $cr" | awk '{printf "%.2f", $1 / $2}')"
    extract_rates="$extract_rates $er"
done

mc=$(echo "$copy_rates" | tr ' ' '\n' | median)
me=$(echo "$extract_rates" | tr ' ' '\n' | median)
echo "bench: ${mb} MB statement: COPY ${mc} MB/s, extract_payments ${me} MB/s (medians):" \
     "$(echo "$me $mc" | awk '{printf "%.2f", $1 / $2}') of COPY's speed (goal: at least 0.75)"
bench_result "statement import, ${mb} MB CSV (extract_payments)" "COPY of the same file into text columns" \
    ">= 0.75" $ratios
