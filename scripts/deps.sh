#!/bin/sh
# Installs the Debian packages the project needs, when any is missing.
# Run as root (make deps does this); otherwise prints the command to run.
set -eu

PACKAGES="postgresql-15 postgresql-server-dev-15 patroni etcd-server
postgresql-15-cron postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
libdbd-pg-perl libssl-dev build-essential pkg-config
nginx nginx-dev libjson-c-dev libpq-dev libcurl4-openssl-dev libgmime-3.0-dev
clang-14 libclang-rt-14-dev chromium wrk curl openssl stress-ng pgbackrest
libxml2-dev libxml2-utils zlib1g-dev libpoppler-glib-dev libfreexl-dev libseccomp-dev
libexcel-writer-xlsx-perl libspreadsheet-writeexcel-perl libpdf-api2-perl"

missing=""
# Node.js and npm for the web app's tests, unless the machine has them already
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages:$missing" >&2
    echo "deps: run as root: apt-get install -y$missing" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
