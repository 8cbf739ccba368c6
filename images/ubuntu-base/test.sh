#!/bin/bash
# Image test: runs as root through SSM on a fresh instance launched from the
# new image. Exits non-zero, naming every failed check, when the image is unsound.
set -uo pipefail

failures=0
check() {
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then
    echo "ok   $what"
  else
    echo "FAIL $what" >&2
    failures=$((failures + 1))
  fi
}

check "Ubuntu 24.04"                grep -q 'VERSION_ID="24.04"' /etc/os-release
check "package lists refresh"       apt-get -qq update
check "no pending security updates" bash -c '! apt-get -s upgrade | grep -qi "^Inst.*security"'
check "no reboot required"          test ! -e /var/run/reboot-required
check "SSM agent running"           systemctl is-active --quiet snap.amazon-ssm-agent.amazon-ssm-agent.service
check "containerd running"          systemctl is-active --quiet containerd
check "unattended upgrades on"      grep -q 'Unattended-Upgrade "1"' /etc/apt/apt.conf.d/20auto-upgrades
check "fresh machine-id"            test -s /etc/machine-id
check "fresh SSH host keys"         bash -c 'ls /etc/ssh/ssh_host_*_key >/dev/null'
check "cloud-init finished"         cloud-init status --wait
check "ENA driver in use"           bash -c 'ethtool -i "$(ip -o route get 1.1.1.1 | sed -n "s/.* dev \([^ ]*\).*/\1/p")" | grep -q "driver: ena"'
check "IMDSv2 token required"       bash -c 'test "$(curl -s -o /dev/null -w "%{http_code}" http://169.254.169.254/latest/meta-data/)" = 401'
check "time sync"                   systemctl is-active --quiet chrony

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all checks passed"
