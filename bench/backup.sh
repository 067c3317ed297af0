#!/bin/sh
# Backups: how fast pgBackRest backs up and restores a cluster, against a
# plain tar of its data directory and a pg_basebackup of it, in one run on
# one throwaway cluster; and what archiving WAL with pgBackRest costs the
# write mix of bench/audit-overhead.sh (archive_command pgBackRest vs a
# no-op, alternating).  Prints medians of MB/s and ratios.
#
#   ROUNDS=3 SCALE=20 SECONDS_PER_RUN=15 CLIENTS=4 bench/backup.sh
#
# tar copies the files as they are (no compression, no encryption, and no
# consistency: a running cluster's tar is no backup); pg_basebackup writes
# a plain, uncompressed copy; pgBackRest compresses (zstd), encrypts
# (aes-256-cbc), checksums every file and runs two processes.  Each is
# timed to the moment its files are on disk (tar then sync).
set -eu
cd "$(dirname "$0")/.."
. bench/common.sh

rounds=${ROUNDS:-3}
scale=${SCALE:-20}
seconds=${SECONDS_PER_RUN:-15}
clients=${CLIENTS:-4}
BIN=$(dirname "${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}")

ARCHIVE=on throwaway_cluster backup
as_postgres() { runuser -u postgres -- "$@"; }
pgbackrest() { as_postgres pgbackrest --config-path="$dir/pgbackrest" --stanza=recovery "$@"; }
now() { date +%s.%N; }
mbps() { awk -v mb="$1" -v t0="$2" -v t1="$3" 'BEGIN {printf "%.1f", mb / (t1 - t0)}'; }

echo "bench: pgbench tables at scale $scale and the write mix's cases"
as_postgres "$BIN/pgbench" -h "$dir/sock" -p "$port" -U postgres -i -q -s "$scale" recovery >/dev/null 2>&1
sql -f bench/cases-setup.sql
sql -c CHECKPOINT
# what each way copies: the data directory without its WAL
mb=$(du -sm --exclude=pg_wal "$dir/data" | cut -f1)
echo "bench: the data directory holds $mb MB besides its WAL"

scratch=$dir/scratch
for f in tar basebackup pgbackrest tar-restore pgbackrest-restore; do : >"$dir/$f.mbps"; done
: >"$dir/fixed.seconds"
echo "bench: $rounds rounds of a backup each way, then a restore each way"
for r in $(seq 1 "$rounds"); do
    as_postgres rm -rf "$scratch"
    as_postgres mkdir -p "$scratch"

    t0=$(now)
    as_postgres tar -cf "$scratch/data.tar" --exclude=./pg_wal -C "$dir/data" . 2>/dev/null || true
    sync -f "$scratch/data.tar"
    tar=$(mbps "$mb" "$t0" "$(now)")

    t0=$(now)
    as_postgres "$BIN/pg_basebackup" -h "$dir/sock" -p "$port" -U postgres -D "$scratch/basebackup" \
        -X fetch -c fast
    basebackup=$(mbps "$mb" "$t0" "$(now)")

    t0=$(now)
    pgbackrest --type=full backup
    pgbackrest_mbps=$(mbps "$mb" "$t0" "$(now)")
    # an incremental backup with nothing changed: what every backup costs
    # whatever the size (a checkpoint, the WAL of its end archived)
    t0=$(now)
    pgbackrest --type=incr backup
    fixed=$(awk -v t0="$t0" -v t1="$(now)" 'BEGIN {printf "%.2f", t1 - t0}')

    as_postgres mkdir -m 700 "$scratch/restore-tar" "$scratch/restore-pgbackrest"
    t0=$(now)
    as_postgres tar -xf "$scratch/data.tar" -C "$scratch/restore-tar"
    sync -f "$scratch/restore-tar/PG_VERSION"
    tar_restore=$(mbps "$mb" "$t0" "$(now)")

    t0=$(now)
    pgbackrest --pg1-path="$scratch/restore-pgbackrest" restore
    pgbackrest_restore=$(mbps "$mb" "$t0" "$(now)")

    echo "$tar" >>"$dir/tar.mbps"
    echo "$basebackup" >>"$dir/basebackup.mbps"
    echo "$pgbackrest_mbps" >>"$dir/pgbackrest.mbps"
    echo "$fixed" >>"$dir/fixed.seconds"
    echo "$tar_restore" >>"$dir/tar-restore.mbps"
    echo "$pgbackrest_restore" >>"$dir/pgbackrest-restore.mbps"
    echo "  round $r: backup MB/s tar $tar, pg_basebackup $basebackup, pgBackRest $pgbackrest_mbps;" \
         "(an unchanged incremental ${fixed}s); restore MB/s tar $tar_restore, pgBackRest $pgbackrest_restore"
done
repo_mb=$(du -sm "$dir/backup" | cut -f1)
as_postgres rm -rf "$scratch"

# Archiving's cost: the archive_command switched by a reload, so that both
# modes run on the same server, back to back.
archive_command() { sql -c "ALTER SYSTEM SET archive_command = '$1'" -c 'SELECT pg_reload_conf()' >/dev/null; }
run() {
    as_postgres "$BIN/pgbench" -h "$dir/sock" -p "$port" -U postgres -n \
        -f bench/audit-overhead.sql -c "$clients" -j 2 -T "$seconds" recovery \
        >"$dir/pgbench.log" 2>&1 || { cat "$dir/pgbench.log" >&2; exit 1; }
    sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/pgbench.log"
}
: >"$dir/archive.ratio"
echo "bench: the write mix, $rounds rounds of ${seconds}s with archiving to pgBackRest and with a no-op"
for r in $(seq 1 "$rounds"); do
    sql -c 'ALTER SYSTEM RESET archive_command' -c 'SELECT pg_reload_conf()' >/dev/null
    on=$(run)
    archive_command true
    off=$(run)
    ratio=$(awk -v on="$on" -v off="$off" 'BEGIN {printf "%.3f", on / off}')
    echo "$ratio" >>"$dir/archive.ratio"
    echo "  round $r: archiving $on tps, no-op $off tps, ratio $ratio"
done
sql -c 'ALTER SYSTEM RESET archive_command' -c 'SELECT pg_reload_conf()' >/dev/null
bench_result "write mix with WAL archived by pgBackRest" "the same mix, archive_command a no-op" "-" \
    $(cat "$dir/archive.ratio")
failing=$(sql -tAc 'SELECT failed_count FROM pg_stat_archiver')

tar=$(median <"$dir/tar.mbps")
basebackup=$(median <"$dir/basebackup.mbps")
pgbackrest_mbps=$(median <"$dir/pgbackrest.mbps")
fixed=$(median <"$dir/fixed.seconds")
tar_restore=$(median <"$dir/tar-restore.mbps")
pgbackrest_restore=$(median <"$dir/pgbackrest-restore.mbps")
archive=$(median <"$dir/archive.ratio")
awk -v mb="$mb" -v repo="$repo_mb" -v tar="$tar" -v bb="$basebackup" -v pbr="$pgbackrest_mbps" -v fixed="$fixed" \
    -v tr="$tar_restore" -v pr="$pgbackrest_restore" -v archive="$archive" -v failing="$failing" 'BEGIN {
    printf "data directory without WAL: %d MB; repository after the rounds: %d MB (compressed and encrypted)\n", mb, repo
    printf "backup, median MB/s: tar %.1f, pg_basebackup %.1f, pgBackRest %.1f\n", tar, bb, pbr
    printf "  pgBackRest / tar %.2f, pgBackRest / pg_basebackup %.2f\n", pbr / tar, pbr / bb
    printf "  of which fixed, whatever the size (an incremental backup of an unchanged cluster): %.2f s\n", fixed
    printf "restore, median MB/s: tar %.1f, pgBackRest %.1f; pgBackRest / tar %.2f\n", tr, pr, pr / tr
    printf "write mix with WAL archived by pgBackRest / with a no-op archive_command (median of paired rounds): %.3f\n", archive
    printf "archiving cost: %.1f%% of throughput; failed archive attempts: %d\n", (1 - archive) * 100, failing
}'
