#!/bin/sh
# What make run prints at the end: where the web app and the API are, how to
# connect to the database, the demo logins and a first request to try.
set -eu
dir=$1 port=$2 http=${3:-8080} https=${4:-8443}
cat <<INFO

Payment Recovery is running.

  Web app and REST API (nginx with ngx_recovery):
    http://127.0.0.1:$http/            the web app
    http://127.0.0.1:$http/api/v1/     the API (JSON; see README "REST gateway")
    http://127.0.0.1:$http/readyz      readiness, /metrics for Prometheus
    https://127.0.0.1:$https/          the same over TLS and HTTP/2 (self-signed: curl -k)

  Demo logins (web app, or POST /api/v1/auth/login):
    admin@demo.example     admin-demo-pass     recovery_admin
    manager@demo.example   manager-demo-pass   recovery_manager
    agent@demo.example     agent-demo-pass     recovery_agent
    auditor@demo.example   auditor-demo-pass   recovery_auditor
    viewer@demo.example    viewer-demo-pass    recovery_viewer

  Try:
    TOKEN=\$(curl -s -X POST http://127.0.0.1:$http/api/v1/auth/login \\
        -H 'Content-Type: application/json' \\
        -d '{"email":"agent@demo.example","password":"agent-demo-pass"}' \\
        | sed 's/.*"token":"\([^"]*\)".*/\1/')
    curl -s -H "Authorization: Bearer \$TOKEN" 'http://127.0.0.1:$http/api/v1/recovery-cases?state=open&limit=3'
    # a bank statement (CSV, CAMT, MT940, xlsx, xls or PDF): what importing it would do
    curl -s -H "Authorization: Bearer \$TOKEN" --data-binary @statement.xml \
        'http://127.0.0.1:$http/api/v1/extractions/statements?preview=true'

$(if [ -n "${HA_DIR:-}" ]; then
    lead=$(scripts/ha.sh leader "$HA_DIR")
    echo "  Three PostgreSQL 15 nodes under Patroni (etcd in $HA_DIR/etcd), $lead leads;"
    echo "  replication is synchronous: a write the primary acknowledged is on a standby."
    echo "  nginx writes to whichever node is the primary (target_session_attrs=read-write)"
    echo "  and reads from the standbys, a caller's own writes included (README \"Replicas\")."
    echo "    scripts/ha.sh patronictl $HA_DIR list     the cluster, as Patroni sees it"
    echo "    scripts/ha.sh psql $HA_DIR leader         psql into the primary (or node1..node3)"
else
    echo "  PostgreSQL 15 with pg_cron and pg_recovery, database \"recovery\":"
    echo "    psql -h $dir/sock -p $port -U postgres recovery    (as root or postgres)"
fi)
    SELECT state, count(*) FROM recovery.recovery_cases GROUP BY 1;
  The gateway's login role (password "authenticator", loopback only):
    psql "$(if [ -n "${HA_DIR:-}" ]; then ports=$(scripts/ha.sh hosts "$HA_DIR")
             echo "host=$(echo "$ports" | sed 's/[0-9][0-9]*/127.0.0.1/g') port=$ports target_session_attrs=read-write"
         else echo "host=127.0.0.1 port=$port"; fi) user=recovery_authenticator dbname=recovery"

  Reminders: pg_cron runs recovery.run_reminders() every minute; the delivery
  worker sends the outbox once told where (README "Reminders and delivery"):
    ALTER SYSTEM SET recovery.smtp_url = 'smtp://127.0.0.1:2525'; SELECT pg_reload_conf();
    SELECT status, channel, count(*) FROM recovery.notifications GROUP BY 1, 2;

  Personal data (names, emails, phones, notes, documents) is encrypted under the
  key-encryption key in ${HA_DIR:-$dir}/kek (README "Personal data encryption"):
  keep a copy apart from the backups: without it that data cannot be read.

$(if [ -z "${HA_DIR:-}" ]; then cat <<BACKUPS
  Backups (pgBackRest; WAL archived continuously to $dir/backup, encrypted):
    make backup                        a full backup now (TYPE=diff or incr)
    make restore TIME='$(date -u '+%F %T')+00'   or TIME=latest, or LSN=0/5000060
    scripts/backup.sh info $dir       what the repository holds
  Keep a copy of $dir/pgbackrest/conf.d/cipher.conf somewhere safe and apart
  from the backups: without its passphrase no backup can be read.
BACKUPS
echo; fi)
  Logs: tmp/nginx-run/error.log, tmp/nginx-run/access.log, $(if [ -n "${HA_DIR:-}" ]; then echo "$HA_DIR/node*/patroni.log and data/log/"; else echo "$dir/postgresql.log"; fi)
  Stop: make stop
INFO
