#!/bin/sh
# What make run prints at the end: how to connect and the demo logins.
set -eu
dir=$1 port=$2
cat <<INFO

Payment Recovery is running.

  PostgreSQL 15 with pg_cron and pg_recovery, database "recovery":
    psql -h $dir/sock -p $port -U postgres recovery    (as root or postgres)
  The REST gateway's login role (password "authenticator", loopback only):
    psql "host=127.0.0.1 port=$port user=recovery_authenticator dbname=recovery"

  Demo logins (recovery.login(email, password)):
    admin@demo.example     admin-demo-pass     recovery_admin
    manager@demo.example   manager-demo-pass   recovery_manager
    agent@demo.example     agent-demo-pass     recovery_agent
    auditor@demo.example   auditor-demo-pass   recovery_auditor
    viewer@demo.example    viewer-demo-pass    recovery_viewer

  Try:  SELECT state, count(*) FROM recovery.recovery_cases GROUP BY 1;
  Stop: make stop
INFO
