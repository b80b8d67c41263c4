#!/usr/bin/env bash
# Prepares the real Debian cron daemon for the cron adapter tests (tests/cron):
#   - installs the `cron` and `rsyslog` packages when missing,
#   - makes cron log the start, the end and the exit status of every job
#     (EXTRA_OPTS="-L 15" in /etc/default/cron),
#   - starts rsyslogd and cron (directly: there may be no systemd), restarting cron when it
#     runs without those options.
# Idempotent. Needs root (or sudo). Cron writes to syslog facility `cron`, which Debian's
# rsyslog configuration sends to /var/log/cron.log.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: scripts/cron-setup.sh needs root (or sudo) to install and start cron" >&2
    exit 1
  fi
fi

need=()
[ -x /usr/sbin/cron ] || need+=(cron)
[ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Log level 15 = start (1) + end (2) + non-zero exit status (4) + job pid (8).
want='EXTRA_OPTS="-L 15"'
if ! grep -qx "$want" /etc/default/cron 2>/dev/null; then
  if grep -q '^EXTRA_OPTS=' /etc/default/cron 2>/dev/null; then
    $SUDO sed -i 's/^EXTRA_OPTS=.*/EXTRA_OPTS="-L 15"/' /etc/default/cron
  else
    echo "$want" | $SUDO tee -a /etc/default/cron >/dev/null
  fi
fi

# Debian's stock rsyslog.conf sends cron.* to /var/log/cron.log; make sure it does.
if ! grep -rqsE '^cron\.\*' /etc/rsyslog.conf /etc/rsyslog.d/; then
  echo 'cron.*  /var/log/cron.log' | $SUDO tee /etc/rsyslog.d/60-cron.conf >/dev/null
fi

running() { pgrep -x "$1" >/dev/null 2>&1; }

if ! running rsyslogd; then
  echo "starting rsyslogd"
  $SUDO /usr/sbin/rsyslogd
fi

cron_pid=$(pgrep -xo cron || true)
if [ -n "$cron_pid" ] && ! tr '\0' ' ' </proc/"$cron_pid"/cmdline | grep -q -- '-L 15'; then
  echo "restarting cron with -L 15"
  $SUDO kill "$cron_pid"
  for _ in $(seq 1 50); do kill -0 "$cron_pid" 2>/dev/null || break; sleep 0.1; done
  $SUDO rm -f /var/run/crond.pid
  cron_pid=""
fi
if [ -z "$cron_pid" ]; then
  echo "starting cron -L 15"
  if [ -x /etc/init.d/cron ]; then
    $SUDO /etc/init.d/cron start >/dev/null
  else
    $SUDO /usr/sbin/cron -L 15
  fi
fi

for _ in $(seq 1 50); do
  running cron && running rsyslogd && break
  sleep 0.1
done
running cron || { echo "error: cron did not start" >&2; exit 1; }
running rsyslogd || { echo "error: rsyslogd did not start" >&2; exit 1; }
echo "cron $(tr '\0' ' ' </proc/"$(pgrep -xo cron)"/cmdline)and rsyslogd are running"
