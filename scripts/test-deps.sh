#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages: PostgreSQL (store tests run
# on SQLite and PostgreSQL), the cron daemon and rsyslog (cron adapter tests), Chromium
# (console browser tests), Node packages of the console and of the test OpenID provider, and a separate virtualenv with
# Apache Airflow (Airflow adapter tests). Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v cron >/dev/null 2>&1 || [ -x /usr/sbin/cron ] || need+=(cron)
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "error: the tests need these Debian packages: ${need[*]}" >&2
      echo "       install them with: apt-get install -y ${need[*]}" >&2
      exit 1
    fi
  fi
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The real OpenID provider of the single sign-on tests (node-oidc-provider).
echo "installing the test OpenID provider (tests/peers/oidc)"
(cd tests/peers/oidc && npm ci --no-audit --no-fund --loglevel=error)

for step in scripts/cron-setup.sh scripts/airflow-venv.sh scripts/build-console.sh; do
  if [ -x "$step" ]; then
    echo "running $step"
    "$step"
  fi
done
