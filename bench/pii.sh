#!/bin/bash
# What encrypting personal data costs: the same build, the same cluster, two
# databases loaded with the demo data, one with personal data sealed (the
# default) and one with recovery.pii_encryption off (values stored as
# written, read as they are).  Rounds alternate the two on each path:
#   case      GET of a case with its customer (api_case_get), random cases
#   list      the case list of 50 (api_cases_list, a name decrypted a row)
#   create    customer creation (api_customer_create: a key made, three
#             values sealed, two blind indexes)
#   hold      a dunning hold with its reason (api_dunning_hold: one value
#             sealed under the customer's cached key)
# each through pgbench -M prepared with the gateway's request context, and
#   import    a CSV statement of 100k lines (extract_payments), whose payer
#             names are matched against the customers' decrypted names; each
#             line's payer and IBAN sealed, the IBAN's blind index stored.
#             Each round's statement is of a month of its own, so that an
#             import finds no earlier line of its dates to compare with;
#   reimport  the same statement again: every line compared with the 100k
#             just stored, and none added.  It reads the earlier lines'
#             heap, which the envelopes make wider (34 bytes a value).
# The case GET decrypts its events' reasons and holds in the timeline.
# Ratios are encrypted / plain per round (throughput), medians over rounds;
# the two alternate which runs first.
# Goals: reads at most 10% slower (>= 0.90), writes 20% (>= 0.80).
#
#   ROUNDS=3 SECONDS_PER_RUN=10 CLIENTS=2 LINES=100000 bench/pii.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-10}
clients=${CLIENTS:-2}
lines=${LINES:-100000}
PGBENCH=$(dirname "${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}")/pgbench

throwaway_cluster pii
echo "bench: two databases with the demo data: sealed (recovery) and plain"
sql -f sql/demo.sql >/dev/null
sql -d postgres -c 'CREATE DATABASE plain' -c 'ALTER DATABASE plain SET recovery.pii_encryption = off'
sql -d plain -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION pg_recovery'
sql -d plain -f sql/demo.sql >/dev/null
for db in recovery plain; do
    sealed=$(sql -d "$db" -At -c "SELECT count(*) FILTER (WHERE recovery.pii_is_sealed(name)) || ' of ' || count(*) FROM recovery.customers")
    echo "bench: $db: $sealed customers' names sealed"
done
# the cases numbered 1..n, for pgbench to pick one at random
for db in recovery plain; do
    sql -d "$db" -c 'CREATE TABLE public.bench_cases AS
                         SELECT row_number() OVER (ORDER BY id) AS n, id FROM recovery.recovery_cases' \
                 -c 'ALTER TABLE public.bench_cases ADD PRIMARY KEY (n)' \
                 -c 'GRANT SELECT ON public.bench_cases TO PUBLIC'
done
cases=$(sql -At -c 'SELECT count(*) FROM public.bench_cases')
last_case=$(sql -At -c 'SELECT max(id) FROM recovery.recovery_cases')

# pgbench scripts: the gateway's request context (as an agent), then the call
context="SELECT set_config('recovery.user_id', '3', true), set_config('recovery.actor', 'agent@demo.example', true), set_config('recovery.request_id', md5(random()::text), true), set_config('role', 'recovery_agent', true);"
cat > "$dir/case.sql" <<SQL
\set case_id random(1, $cases)
BEGIN;
$context
SELECT recovery.api_case_get((SELECT b.id FROM public.bench_cases b WHERE b.n = :case_id));
END;
SQL
cat > "$dir/list.sql" <<SQL
\set after random(0, $((last_case - 60)))
BEGIN;
$context
SELECT recovery.api_cases_list(cursor => recovery.cursor_encode(jsonb_build_object('sort', 'id', 'value', :after::bigint, 'id', :after::bigint)), "limit" => 50);
END;
SQL
cat > "$dir/create.sql" <<SQL
BEGIN;
$context
SELECT recovery.api_customer_create('BENCH-' || gen_random_uuid(), 'Bench Customer', 'bench.customer@example.com', '+441632960961');
END;
SQL

cat > "$dir/hold.sql" <<SQL
\set case_id random(1, $cases)
BEGIN;
$context
SELECT recovery.api_dunning_hold('customer asked for a week to sort out the move', now() + interval '7 days',
                                 (SELECT b.id FROM public.bench_cases b WHERE b.n = :case_id));
END;
SQL

pgbench_tps() {
    "$PGBENCH" -h "$dir/sock" -p "$port" -U postgres -n -M prepared -c "$clients" -j "$clients" \
        -T "$seconds" -f "$dir/$2.sql" "$1" > "$dir/pgbench.log" 2>&1 ||
        { cat "$dir/pgbench.log" >&2; exit 1; }
    sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/pgbench.log"
}

# a statement of $lines lines paying the demo customers by name, of a month
# of its own each round ($3)
statement() {
    sql -d "$1" -At -c "COPY (SELECT 'date;amount;currency;reference;payer;iban' UNION ALL
        SELECT format('2027-%s-%s;%s,%s;EUR;Transfer %s-%s;%s;DE89%s', $3, 1 + n % 28, 1 + n % 90, lpad((n % 100)::text, 2, '0'),
                      '$2', n, (SELECT cu.name FROM recovery.customers_decrypted cu WHERE cu.id = 1 + n % 2000),
                      lpad((n % 2000)::text, 18, '0'))
          FROM generate_series(1, $lines) n) TO '$dir/statement-$1-$2.csv'"
}
import_seconds() {
    sql -d "$1" -At -c '\timing on' -c "SELECT recovery.extract_payments('statement', pg_read_binary_file('$dir/statement-$1-$2.csv')) ->> 'lines'" 2>&1 |
        sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{printf "%.3f", $1 / 1000}'
}

declare -A tps
ratios_case="" ratios_list="" ratios_create="" ratios_hold="" ratios_import="" ratios_reimport=""
for round in $(seq 1 "$rounds"); do
    echo "bench: round $round of $rounds ($seconds s a run, $clients clients)"
    for path in case list create hold; do
        # which goes first alternates, so that neither always meets the
        # other's vacuum or checkpoint
        if [ $((round % 2)) = 1 ]; then
            sealed=$(pgbench_tps recovery $path)
            plain=$(pgbench_tps plain $path)
        else
            plain=$(pgbench_tps plain $path)
            sealed=$(pgbench_tps recovery $path)
        fi
        ratio=$(awk -v a="$sealed" -v b="$plain" 'BEGIN {printf "%.3f", a / b}')
        printf '  %-7s sealed %9.0f tps   plain %9.0f tps   ratio %s\n' "$path" "$sealed" "$plain" "$ratio"
        # a case's timeline reads its holds without an index: the next
        # round's GETs must not read this round's thousands
        if [ "$path" = hold ]; then
            for db in recovery plain; do sql -d "$db" -q -c 'TRUNCATE recovery.dunning_holds'; done
        fi
        eval "ratios_$path+=\"$ratio \""
    done
    statement recovery "r$round" $(( (round - 1) % 12 + 1 ))
    statement plain "r$round" $(( (round - 1) % 12 + 1 ))
    for path in import reimport; do
        if [ $((round % 2)) = 1 ]; then
            sealed=$(import_seconds recovery "r$round")
            plain=$(import_seconds plain "r$round")
        else
            plain=$(import_seconds plain "r$round")
            sealed=$(import_seconds recovery "r$round")
        fi
        ratio=$(awk -v a="$sealed" -v b="$plain" 'BEGIN {printf "%.3f", b / a}')
        printf '  %-8s sealed %8s s     plain %9s s     ratio %s\n' $path "$sealed" "$plain" "$ratio"
        eval "ratios_$path+=\"$ratio \""
    done
done

echo
echo "bench: encrypted / plain, medians of $rounds rounds (throughput; 1.00 = no cost)"
for path in case list create hold import reimport; do
    eval "r=\$ratios_$path"
    m=$(printf '%s\n' $r | median)
    goal=">= 0.90"
    case $path in create|hold|import) goal=">= 0.80" ;; reimport) goal="none: for the record" ;; esac
    printf '  %-8s %s   (rounds: %s; goal %s)\n' "$path" "$m" "$r" "$goal"
done
bench_result "GET a case with its customer, encrypted" "the same, personal data plain" ">= 0.90" $ratios_case
bench_result "case list of 50, encrypted" "the same, plain" ">= 0.90" $ratios_list
bench_result "customer creation, encrypted" "the same, plain" ">= 0.80" $ratios_create
bench_result "dunning hold with its reason, encrypted" "the same, plain" ">= 0.80" $ratios_hold
bench_result "CSV import of ${lines} lines matched by name, payer and IBAN sealed" "the same, plain" ">= 0.80" $ratios_import
bench_result "the same statement imported again (${lines} duplicates found), encrypted" "the same, plain" "none" $ratios_reimport
