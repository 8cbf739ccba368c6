#!/bin/bash
# Cleanup: leave nothing that would make every instance of the image alike
# (identity, keys) or carry the build's traces (caches, logs, history, the
# build's own commands).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# After the reboot the daily apt jobs start again: keep them off the lock.
systemctl stop apt-daily.timer apt-daily-upgrade.timer \
               apt-daily.service apt-daily-upgrade.service unattended-upgrades.service || true

echo "== package caches"
apt-get -o DPkg::Lock::Timeout=600 -y autoremove --purge
apt-get -o DPkg::Lock::Timeout=600 -y clean
rm -rf /var/lib/apt/lists/*

echo "== logs"
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +

echo "== shell history"
rm -f /root/.bash_history /home/*/.bash_history
unset HISTFILE

echo "== SSH host keys (regenerated on first boot if SSH is ever enabled)"
rm -f /etc/ssh/ssh_host_*

echo "== machine identity"
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id

echo "== cloud-init runs again on first boot"
cloud-init clean --logs --seed

echo "== the build's earlier Run Command documents and output (not this one's, still running)"
for dir in /var/lib/amazon/ssm/*/document/orchestration/*; do
  [ -e "$dir" ] || continue
  case "$PWD/" in "$dir"/*) ;; *) rm -rf "$dir" ;; esac
done

echo "== temporary files (not those of running services, nor this step's own)"
find /tmp /var/tmp -mindepth 1 -maxdepth 1 \
  ! -name 'kiln-step.*' ! -name 'systemd-private-*' ! -name 'snap-private-tmp' \
  -exec rm -rf {} +

sync
echo "cleanup done"
