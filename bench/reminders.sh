#!/bin/sh
# run_reminders over many open cases against a plain INSERT ... SELECT that
# writes the same number of outbox rows into the same table (same indexes,
# same audit trigger), alternating in one run on one throwaway cluster.
# Prints both times per round, the ratio of the medians, and the peak
# private memory (RssAnon) of the backend doing each.
#
#   CASES=1000000 ROUNDS=3 make bench
set -eu
cd "$(dirname "$0")/.."
. bench/common.sh

cases=${CASES:-1000000}
rounds=${ROUNDS:-3}

throwaway_cluster reminders

echo "bench: loading $cases open cases, each with an overdue payment (bulk, without triggers)"
sql -v cases="$cases" <<'SQL'
\o /dev/null
SET client_min_messages = warning;
SET session_replication_role = replica;
SELECT recovery.template_save('bench', 'email', 'en-GB', 'Dear {{customer_name}}, {{amount}} is overdue.', 'Overdue');
SELECT recovery.dunning_policy_save('bench', '[{"offset_days": 3, "channel": "email", "template": "bench"}]', NULL, true);
INSERT INTO recovery.customers (id, external_ref, name, email, time_zone)
    OVERRIDING SYSTEM VALUE
    SELECT i, 'B-' || i, 'Bench Customer ' || i, 'c' || i || '@example.com',
           (ARRAY['Europe/London', 'America/New_York', 'Asia/Tokyo', 'UTC'])[1 + i % 4]
    FROM generate_series(1, :cases) AS i;
INSERT INTO recovery.recovery_cases (id, customer_id, currency, balance, state)
    OVERRIDING SYSTEM VALUE
    SELECT i, i, 'EUR', 10000 + i % 5000, 'open' FROM generate_series(1, :cases) AS i;
INSERT INTO recovery.payments (customer_id, external_ref, amount, outstanding, currency, due_date, status, case_id)
    SELECT i, 'INV-' || i, 10000 + i % 5000, 10000 + i % 5000, 'EUR', current_date - 10 - i % 20, 'overdue', i
    FROM generate_series(1, :cases) AS i;
SELECT setval(pg_get_serial_sequence('recovery.customers', 'id'), :cases);
SELECT setval(pg_get_serial_sequence('recovery.recovery_cases', 'id'), :cases);
VACUUM ANALYZE recovery.customers, recovery.recovery_cases, recovery.payments;
SQL

# Runs $1 (SQL) in a backend of its own; prints "seconds peak_rss_anon_kB".
timed() {
    out=$dir/timed.$$
    sql -At -c "SELECT pg_backend_pid()" -c "\\timing on" -c "$1" >"$out" 2>&1 &
    client=$!
    peak=0
    pid=""
    while kill -0 "$client" 2>/dev/null; do
        [ -n "$pid" ] || pid=$(head -1 "$out" 2>/dev/null | grep -E '^[0-9]+$' || true)
        if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
            rss=$(sed -n 's/^RssAnon:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$pid/status")
            [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
        fi
        sleep 0.2
    done
    wait "$client" || { cat "$out" >&2; exit 1; }
    ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$out" | tail -1)
    echo "$(echo "$ms" | awk '{printf "%.2f", $1 / 1000}') $peak"
}

reset_outbox() {
    sql -c "TRUNCATE recovery.notifications" -c "CHECKPOINT"
}

plain="INSERT INTO recovery.notifications (case_id, customer_id, channel, template_id, step_no,
           dunning_policy_id, send_after, created_by)
       SELECT c.id, c.customer_id, 'email', t.id, 1, p.id, now(), 'bench'
       FROM recovery.recovery_cases c, recovery.templates t, recovery.dunning_policies p
       WHERE t.name = 'bench' AND p.name = 'bench'"
reminders="CALL recovery.run_reminders()"

echo "bench: $rounds rounds, each: the plain INSERT ... SELECT, then run_reminders"
printf '%-6s %12s %12s %8s %14s %14s\n' round plain_s reminders_s ratio plain_rss_kB reminders_rss_kB
ratios=""
plain_times=""
reminder_times=""
for r in $(seq 1 "$rounds"); do
    reset_outbox
    set -- $(timed "$plain")
    p_s=$1 p_rss=$2
    reset_outbox
    set -- $(timed "$reminders")
    r_s=$1 r_rss=$2
    queued=$(sql -At -c "SELECT count(*) FROM recovery.notifications")
    [ "$queued" -eq "$cases" ] || { echo "bench: run_reminders queued $queued of $cases" >&2; exit 1; }
    ratio=$(echo "$r_s $p_s" | awk '{printf "%.2f", $1 / $2}')
    printf '%-6s %12s %12s %8s %14s %14s\n' "$r" "$p_s" "$r_s" "$ratio" "$p_rss" "$r_rss"
    plain_times="$plain_times $p_s"
    reminder_times="$reminder_times $r_s"
    ratios="${ratios:-} $ratio"
done
bench_result "run_reminders, $cases cases (time)" "a plain INSERT ... SELECT of the same rows" "<= 3" $ratios

mp=$(echo "$plain_times" | tr ' ' '\n' | median)
mr=$(echo "$reminder_times" | tr ' ' '\n' | median)
echo "bench: $cases cases, median plain INSERT ... SELECT ${mp} s, median run_reminders ${mr} s:" \
     "run_reminders takes $(echo "$mr $mp" | awk '{printf "%.2f", $1 / $2}')x the plain insert (target: within 3x)"
