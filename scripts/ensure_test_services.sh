#!/usr/bin/env bash
# Make sure the real services the tests use are present and running:
# PostgreSQL on 127.0.0.1:5432, the OpenSSH server binary (tests start their own sshd) and the
# redis-server binary (the Celery broker of `make stack` and the scheduler test, started on a loopback port)
# and headless Chromium with its driver (the scheduler test looks at the Data quality page in the Airflow UI).
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  [ "$apt_updated" -eq 1 ] || { as_root apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

PGHOST_CHECK="${TURNOVER_TEST_PGHOST:-127.0.0.1}"
if ! command -v pg_isready >/dev/null 2>&1; then
  echo "PostgreSQL client missing: installing postgresql"
  apt_install postgresql
fi
if ! pg_isready -q -h "$PGHOST_CHECK" -p 5432; then
  echo "PostgreSQL is not answering on $PGHOST_CHECK:5432: starting it"
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql; fi
  for version in $(ls /etc/postgresql); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h "$PGHOST_CHECK" -p 5432 && break; sleep 1; done
fi
pg_isready -h "$PGHOST_CHECK" -p 5432

# The tests expect trust (or otherwise password-less) access for the postgres superuser over TCP.
if ! psql -h "$PGHOST_CHECK" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  echo "cannot connect as postgres@$PGHOST_CHECK without a password; set TURNOVER_TEST_ADMIN_DSN" >&2
  exit 1
fi

if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
  echo "OpenSSH server missing: installing openssh-server (tests start their own sshd on a loopback port)"
  apt_install openssh-server
fi
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "Redis server missing: installing redis-server (make stack and the scheduler test start their own on a loopback port)"
  apt_install redis-server
fi
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  echo "Chromium missing: installing chromium and chromium-driver (the browser test of the Data quality page)"
  apt_install chromium chromium-driver
fi
echo "test services: PostgreSQL up, sshd, redis-server and headless Chromium available"
