#!/usr/bin/env bash
# Make sure the real services the tests use are there, or say what the tests use instead:
# - PostgreSQL: TURNOVER_TEST_ADMIN_DSN when set (then it must answer); otherwise the postgres superuser at
#   127.0.0.1:5432 without a password (a cluster that is installed but stopped is started here); otherwise the
#   tests start an embedded PostgreSQL from the pgserver wheel themselves (tests/postgres_service.py).
# - the OpenSSH server binary, when running as root (the tests start their own sshd on a loopback port);
#   without it the sample SFTP server runs on asyncssh and the sshd-only tests skip.
# - the redis-server binary (the Celery broker of `make stack` and the scheduler test, started on a
#   loopback port) and headless Chromium with its driver (the scheduler test looks at the Data quality page).
# TEST_PYTHON is the interpreter of the project's venv (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${TEST_PYTHON:-.venv/bin/python}"
if [ ! -x "$PYTHON" ]; then
  echo "no Python at $PYTHON: run \`make install\` first, or set TEST_PYTHON" >&2
  exit 1
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$apt_updated" -eq 1 ] || { as_root apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# A stock Debian/Ubuntu cluster only takes passwords over TCP, so installing one here would not help:
# start one only if it is installed and stopped (after a reboot, say), then let the tests decide.
if [ -z "${TURNOVER_TEST_ADMIN_DSN:-}" ] && command -v pg_isready >/dev/null 2>&1 \
  && ls -d /etc/postgresql/*/main >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "PostgreSQL is installed but not answering on 127.0.0.1:5432: starting it"
  for cluster in /etc/postgresql/*/main; do
    version="$(basename "$(dirname "$cluster")")"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
# Prints the server the tests will use; fails only when TURNOVER_TEST_ADMIN_DSN is set and does not answer.
"$PYTHON" -m tests.postgres_service check

# The sample SFTP server picks sshd only when running as root (its chroot needs root); otherwise installing
# it would change nothing.
sftp_backend="asyncssh"
if [ "$(id -u)" -eq 0 ]; then
  if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then
    sftp_backend="sshd"
  else
    echo "OpenSSH server missing: installing openssh-server (tests start their own sshd on a loopback port)"
    if apt_install openssh-server; then
      sftp_backend="sshd"
    else
      echo "could not install openssh-server: the sample SFTP server runs on asyncssh; the sshd-only tests skip"
    fi
  fi
else
  echo "not root: the sample SFTP server runs on asyncssh (sshd needs root for its chroot); the sshd-only tests skip"
fi

if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "Redis server missing: installing redis-server (make stack and the scheduler test start their own on a loopback port)"
  apt_install redis-server
fi
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  echo "Chromium missing: installing chromium and chromium-driver (the browser test of the Data quality page)"
  apt_install chromium chromium-driver
fi
echo "test services: PostgreSQL as above, SFTP on $sftp_backend, redis-server and headless Chromium available"
