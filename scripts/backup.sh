#!/bin/sh
# Backups and point-in-time restore of a cluster of scripts/cluster.sh,
# with pgBackRest.  The repository is DIR/backup (BACKUP_REPO=/path for
# another folder), encrypted with aes-256-cbc under a passphrase kept in
# DIR/pgbackrest/conf.d/cipher.conf (postgres only), compressed with zstd.
# WAL is archived continuously: cluster.sh sets archive_command to ours.
#
#   backup.sh configure DIR [PORT]   write DIR/pgbackrest/ (cluster.sh does)
#   backup.sh stanza DIR             create the repository's stanza, once
#   backup.sh backup DIR [TYPE]      a backup now: full (default), diff, incr
#   backup.sh initial DIR            a full backup if the repository has none
#   backup.sh restore DIR latest     restore to the end of the archived WAL
#   backup.sh restore DIR time 'YYYY-MM-DD HH:MM:SS+00'
#   backup.sh restore DIR lsn 0/5000060
#   backup.sh verify DIR             check every file of the repository
#   backup.sh info DIR               what the repository holds
#   backup.sh sync DIR               copy that into recovery.backups
#
# A restore checks the repository first (pgbackrest verify) and touches
# nothing if it is damaged; it keeps the data directory it replaces as
# DIR/data.before-restore, and replays the WAL that one had not archived
# yet, so that a restore to "latest" after a crash loses no committed
# write.  Before the cluster listens on TCP again it erases again every
# customer in the erasure ledger (DIR/erasure-ledger) and verifies the
# audit trail; a restore to a time or LSN then holds reminders and delivery
# until recovery.restore_release(), since the restored outbox has forgotten
# what it sent after that moment.
set -eu

PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$PGBIN/pg_ctl" ] || PGBIN=/usr/lib/postgresql/15/bin
STANZA=recovery
here=$(cd "$(dirname "$0")" && pwd)

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

say() { echo "backup: $*"; }
fail() { echo "backup: $*" >&2; exit 1; }

setting() {    # setting DIR NAME: a value of DIR/data/pg_recovery_cluster.conf
    sed -n "s/^$2 = '\{0,1\}\([^']*\)'\{0,1\}\$/\1/p" "$1/data/pg_recovery_cluster.conf"
}

pgbackrest_in() {    # pgbackrest_in DIR COMMAND [OPTIONS]
    dir=$1
    shift
    as_postgres pgbackrest --config-path="$dir/pgbackrest" --stanza=$STANZA "$@"
}

configure() {
    dir=$1
    repo=${BACKUP_REPO:-$dir/backup}
    port=${2:-$(setting "$dir" port)}
    as_postgres mkdir -p "$dir/pgbackrest/conf.d" "$dir/pgbackrest/log" "$repo"
    as_postgres chmod 700 "$dir/pgbackrest" "$dir/pgbackrest/conf.d" "$repo"
    as_postgres sh -c "cat > '$dir/pgbackrest/pgbackrest.conf'" <<CONF
# Written by scripts/backup.sh configure; the passphrase is in conf.d/.
[global]
repo1-path=$repo
repo1-cipher-type=aes-256-cbc
# two full backups are kept, with every differential and WAL segment since
# the older one: a restore reaches any moment since that full backup
repo1-retention-full=2
repo1-retention-diff=6
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-timeout=60
log-path=$dir/pgbackrest/log
lock-path=$dir/pgbackrest/lock
log-level-console=warn
log-level-file=info

[$STANZA]
pg1-path=$dir/data
pg1-port=$port
pg1-socket-path=$dir/sock
pg1-user=postgres
CONF
    # the passphrase, made once: without it no backup can be read
    if ! as_postgres test -f "$dir/pgbackrest/conf.d/cipher.conf"; then
        pass=$(head -c 48 /dev/urandom | base64 -w0)
        as_postgres sh -c "umask 077; printf '[global]\nrepo1-cipher-pass=%s\n' '$pass' \
            > '$dir/pgbackrest/conf.d/cipher.conf'"
    fi
}

# the archive_command cluster.sh writes into the cluster's settings
archive_command() {
    echo "pgbackrest --config-path=$1/pgbackrest --stanza=$STANZA archive-push %p"
}

stanza() {
    pgbackrest_in "$1" stanza-create >/dev/null ||
        fail "pgbackrest could not create the stanza; see $1/pgbackrest/log/"
}

# whether `pgbackrest info --output=json` on standard input lists a backup
has_backup() {
    perl -MJSON::PP -0777 -ne 'exit(@{decode_json($_)->[0]{backup}} ? 0 : 1)'
}

# `pgbackrest info` into recovery.backups, for GET /api/v1/jobs and alerts
sync() {
    dir=$1
    info=$(pgbackrest_in "$dir" info --output=json)
    echo "SELECT recovery.backups_sync(:'info')" |
        "$here/cluster.sh" psql "$dir" -X -q -v ON_ERROR_STOP=1 -v info="$info" -tA >/dev/null
}

backup() {
    dir=$1 type=${2:-full}
    case "$type" in full|diff|incr) ;; *) fail "TYPE must be full, diff or incr, not '$type'" ;; esac
    say "backing up $dir/data ($type) into $(sed -n 's/^repo1-path=//p' "$dir/pgbackrest/pgbackrest.conf")"
    started=$(date +%s)
    pgbackrest_in "$dir" --type="$type" --log-level-console=info backup 2>&1 |
        grep -E 'backup start archive|new backup label|full backup size|diff backup size|incr backup size|ERROR|WARN' || true
    newest=$(pgbackrest_in "$dir" info --output=json |
        perl -MJSON::PP -0777 -ne '$b = decode_json($_)->[0]{backup}[-1] or exit 1;
            printf "%s %s %d %d\n", $b->{label}, $b->{type}, $b->{info}{size}, $b->{info}{repository}{size}')
    set -- $newest
    [ "${2:-}" = "$type" ] && [ "$1" != "" ] || fail "the backup failed; see $dir/pgbackrest/log/"
    sync "$dir"
    say "done in $(( $(date +%s) - started )) s: $1 ($2), $(( $3 / 1048576 )) MiB of data, $(( $4 / 1048576 )) MiB in the repository"
}

# pgbackrest verify reads every file of the repository against the
# checksums its manifests hold; it exits 0 either way, and says "status: error"
verify() {
    out=$(pgbackrest_in "$1" --log-level-console=info verify 2>&1) &&
        ! echo "$out" | grep -q 'status: error' && return 0
    echo "$out" | grep -E 'ERROR|invalid|missing|status: error' | sed 's/^ *[0-9-]* [0-9:.]* *P[0-9]* *[A-Z]*: //; s/^ */    /' >&2
    return 1
}

recovery_failed() {
    dir=$1
    if grep -q 'recovery ended before configured recovery target was reached' "$dir/postgresql.log"; then
        last=$(sed -n 's/.*last completed transaction was at log time //p' "$dir/postgresql.log" | tail -1)
        put_back "$dir" "the archived WAL ends before the target: its last transaction committed at ${last:-an unknown time}; restore to that time or to latest"
    fi
    tail -5 "$dir/postgresql.log" | sed 's/^/    /' >&2
    put_back "$dir" "recovery of the restored cluster failed (its log is above)"
}

# The processes of a crashed postmaster leave when they see it gone; the
# restore must not pull the data directory from under one.
wait_for_old_processes() {
    data=$1 i=0
    while :; do
        busy=""
        for cwd in /proc/[0-9]*/cwd; do
            [ "$(readlink "$cwd" 2>/dev/null)" = "$data" ] && busy="$busy ${cwd%/cwd}"
        done
        [ -z "$busy" ] && return 0
        i=$((i + 1))
        [ $i -gt 300 ] && fail "processes still use $data after 30 s:$busy"
        sleep 0.1
    done
}

# A restore that fails after the data directory was replaced puts it back
# and starts it: the cluster is as it was, the failed one kept to look at.
put_back() {
    dir=$1 why=$2
    as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir/data.failed-restore"
    mv "$dir/data" "$dir/data.failed-restore"
    mv "$dir/data.before-restore" "$dir/data"
    "$here/cluster.sh" start "$dir" "$(setting "$dir" port)" >/dev/null ||
        fail "$why; putting the previous data directory back failed too: see $dir/postgresql.log"
    fail "$why. The cluster is back as it was before the restore; what was restored is in $dir/data.failed-restore."
}

restore() {
    dir=$(cd "$1" && pwd -P) kind=${2:-} target=${3:-}
    data=$dir/data
    case "$kind" in
        latest) opts="--type=default" what="the end of the WAL (archived, then what the cluster had not archived yet)" ;;
        time) [ -n "$target" ] || fail "restore time needs a time, e.g. '2026-12-04 10:15:00+00'"
              opts="--type=time --target-action=promote" what="$target" ;;
        lsn) [ -n "$target" ] || fail "restore lsn needs an LSN, e.g. 0/5000060"
             opts="--type=lsn --target-action=promote" what="LSN $target" ;;
        *) fail "usage: backup.sh restore DIR latest | time 'YYYY-MM-DD HH:MM:SS+00' | lsn X/Y" ;;
    esac
    port=$(setting "$dir" port)
    ledger=$(setting "$dir" recovery.erasure_ledger)

    info=$(pgbackrest_in "$dir" info --output=json) || fail "cannot read the repository; see $dir/pgbackrest/log/"
    echo "$info" | has_backup || fail "the repository holds no backup to restore from: take one first (make backup)"
    if [ "$kind" = time ]; then
        oldest=$(echo "$info" | perl -MJSON::PP -0777 -ne 'print decode_json($_)->[0]{backup}[0]{timestamp}{stop}')
        wanted=$(as_postgres "$PGBIN/psql" -X -qtA -h "$dir/sock" -p "$port" -U postgres -d postgres \
                 -c "SELECT floor(extract(epoch FROM timestamptz '$target'))::bigint" 2>/dev/null ||
                 date -d "$target" +%s 2>/dev/null) || fail "'$target' is not a time"
        [ "$wanted" -gt "$oldest" ] || fail "no backup ends before $target: the oldest ends at $(date -u -d "@$oldest" '+%F %T+00')"
    fi

    say "checking the repository (pgbackrest verify)"
    verify "$dir" || fail "restore refused: pgbackrest verify found damaged or missing files in the repository (above); the cluster was not touched. See README, Backups and point-in-time restore, Runbook."

    say "stopping the cluster of $data"
    # (a postmaster killed a moment ago may still look alive to pg_ctl)
    if as_postgres "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_postgres "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            ! as_postgres "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1 ||
            fail "the cluster of $data does not stop; nothing was restored"
    fi
    wait_for_old_processes "$(readlink -f "$data")"

    # the directory replaced is kept; its WAL not yet archived is replayed
    rm -rf "$dir/data.before-restore"
    mv "$data" "$dir/data.before-restore"
    as_postgres mkdir -m 700 "$data"
    say "restoring to $what"
    # shellcheck disable=SC2086
    pgbackrest_in "$dir" --log-level-console=info $opts ${target:+--target="$target"} restore 2>&1 | grep -E 'restore backup set|ERROR|WARN' || true
    [ -f "$data/PG_VERSION" ] || put_back "$dir" "pgbackrest restore failed (see $dir/pgbackrest/log/)"
    # WAL the replaced directory had not archived yet (after a crash, the
    # last committed writes) is read from it when the archive lacks a file
    command=$(sed -n "s/^restore_command = '\(.*\)'\$/\1/p" "$data/postgresql.auto.conf" | tail -1)
    [ -n "$command" ] || put_back "$dir" "pgbackrest restore wrote no restore_command"
    echo "restore_command = '$command || cp \"$dir/data.before-restore/pg_wal/%f\" \"%p\"'" |
        as_postgres sh -c "cat >> '$data/postgresql.auto.conf'"

    # Recovery, then the checks, with the server on its socket only and
    # neither pg_cron nor the delivery worker loaded: nothing takes traffic.
    say "replaying WAL (PostgreSQL log: $dir/postgresql.log)"
    as_postgres "$PGBIN/pg_ctl" -D "$data" -l "$dir/postgresql.log" -w -t 3600 \
        -o "-c listen_addresses='' -c shared_preload_libraries=''" start >/dev/null ||
        { recovery_failed "$dir"; }
    i=0
    until [ "$(as_postgres "$PGBIN/psql" -X -qtA -h "$dir/sock" -p "$port" -U postgres -d postgres \
               -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
        i=$((i + 1))
        as_postgres "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1 || recovery_failed "$dir"
        [ $((i % 50)) -eq 0 ] && say "still replaying WAL ($((i / 10)) s)"
        sleep 0.2
    done
    reached=$(grep -E 'recovery stopping|last completed transaction was at log time' "$dir/postgresql.log" | tail -1 | sed 's/.*\(recovery stopping\|last completed\)/\1/')
    say "recovered: $reached"

    sql() { as_postgres "$PGBIN/psql" -X -qtA -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres -d recovery -c "$1"; }
    if [ -n "$ledger" ]; then
        replayed=$(sql 'SELECT recovery.erasure_ledger_replay()') ||
            put_back "$dir" "the erasure ledger $ledger could not be replayed (above)"
        say "erasure ledger $ledger replayed: $replayed"
    else
        say "no erasure ledger is configured (recovery.erasure_ledger): erased customers were not checked"
    fi
    verified=$(sql "SELECT ok || ' ' || rows_checked || ' ' || chains || ' ' ||
                           coalesce(broken_rows || ' broken rows from id ' || first_broken_id || ': ' || problem, '')
                      FROM recovery.audit_verify()") ||
        put_back "$dir" "recovery.audit_verify() failed on the restored cluster (above)"
    set -- $verified
    if [ "${1:-}" != true ]; then
        shift 3
        put_back "$dir" "the audit trail of the restored cluster does not verify ($*): see README, Backups and point-in-time restore, Runbook"
    fi
    say "the audit trail verifies: $2 rows on $3 chains"
    if [ "$kind" != latest ]; then
        sql "INSERT INTO recovery.restore_holds DEFAULT VALUES ON CONFLICT ((true)) WHERE released_at IS NULL DO NOTHING" >/dev/null ||
            put_back "$dir" "the hold on reminders and delivery could not be recorded (above)"
        say "reminders, delivery and the scheduled jobs hold: the outbox has forgotten what was sent after $what."
        say "when you have checked it, release them: SELECT recovery.restore_release();"
    fi
    as_postgres "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null

    "$here/cluster.sh" start "$dir" "$port" >/dev/null
    sync "$dir"
    say "the cluster is up on 127.0.0.1:$port; nginx reconnects by itself"
    say "the data directory before the restore is $dir/data.before-restore (remove it when satisfied)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || { sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
case "$cmd" in
    configure) configure "$@" ;;
    archive-command) archive_command "$1" ;;
    stanza) stanza "$1" ;;
    backup) backup "$@" ;;
    initial) pgbackrest_in "$1" info --output=json | has_backup || backup "$1" full ;;
    restore) restore "$@" ;;
    verify) verify "$1" && say "the repository verifies" ;;
    info) pgbackrest_in "$1" info ;;
    sync) sync "$1" ;;
    *) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
