#!/bin/bash
# Cleanup: leave nothing that would make every instance of the image alike
# (identity, keys) or carry the build's traces (caches, logs, history).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

echo "== package caches"
apt-get -y autoremove --purge
apt-get -y clean
rm -rf /var/lib/apt/lists/*

echo "== logs"
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +

echo "== shell history"
rm -f /root/.bash_history /home/*/.bash_history
unset HISTFILE

echo "== SSH host keys (regenerated on first boot)"
rm -f /etc/ssh/ssh_host_*

echo "== machine identity"
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id

echo "== cloud-init runs again on first boot"
cloud-init clean --logs --seed

echo "== temporary files"
find /tmp /var/tmp -mindepth 1 -maxdepth 1 ! -name 'kiln-step.*' -exec rm -rf {} +

sync
echo "cleanup done"
