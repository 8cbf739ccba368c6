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

primary_interface() {
  ip -o route get 1.1.1.1 | sed -n 's/.* dev \([^ ]*\).*/\1/p'
}

# cloud-init exits 2 when it finished with warnings ("degraded"), which is fine.
check "cloud-init finished"         bash -c 'cloud-init status --wait; test $? -ne 1'
check "Ubuntu 24.04"                grep -q 'VERSION_ID="24.04"' /etc/os-release
check "package lists refresh"       apt-get -qq update
check "no pending security updates" bash -c '! apt-get -s full-upgrade | grep -qi "^Inst.*security"'
check "no reboot required"          test ! -e /var/run/reboot-required
check "SSM agent running"           systemctl is-active --quiet snap.amazon-ssm-agent.amazon-ssm-agent.service
check "containerd running"          systemctl is-active --quiet containerd
check "no SSH daemon"               bash -c '! systemctl is-active --quiet ssh.socket && ! systemctl is-active --quiet ssh.service'
check "unattended upgrades on"      grep -q 'Unattended-Upgrade "1"' /etc/apt/apt.conf.d/20auto-upgrades
check "fresh machine-id"            test -s /etc/machine-id
check "ENA driver in use"           bash -c "test \"\$(basename \"\$(readlink /sys/class/net/$(primary_interface)/device/driver)\")\" = ena"
check "time sync"                   systemctl is-active --quiet chrony

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all checks passed"
