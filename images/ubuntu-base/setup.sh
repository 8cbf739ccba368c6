#!/bin/bash
# Provisioning: security patches, common tools, a container runtime, and no
# SSH daemon (instances are reached through SSM Session Manager).
# Runs as root through SSM Run Command on the builder; the recipe asks kiln to
# reboot afterwards, so the patched kernel is the one the image boots.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt_get() {
  apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef \
          -o Dpkg::Options::=--force-confold -y "$@"
}

# First boot: let cloud-init finish, and keep the daily apt jobs from taking
# the package lock while we work.
cloud-init status --wait >/dev/null || true
systemctl stop apt-daily.timer apt-daily-upgrade.timer \
               apt-daily.service apt-daily-upgrade.service unattended-upgrades.service || true

echo "== security patches"
apt_get update
apt_get full-upgrade
apt_get autoremove --purge

echo "== common tools"
apt_get install --no-install-recommends \
  ca-certificates curl jq unzip chrony unattended-upgrades needrestart

echo "== automatic security updates stay on for the fleet"
cat > /etc/apt/apt.conf.d/20auto-upgrades <<'CONF'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
CONF

echo "== container runtime"
apt_get install --no-install-recommends containerd runc
systemctl enable containerd

echo "== SSM agent (preinstalled by Canonical as a snap) stays enabled"
snap list amazon-ssm-agent >/dev/null
systemctl enable snap.amazon-ssm-agent.amazon-ssm-agent.service

echo "== no SSH daemon: access is through SSM Session Manager"
systemctl disable --now ssh.socket ssh.service 2>/dev/null || true
systemctl mask ssh.socket ssh.service

echo "setup done: $(lsb_release -ds), kernel $(uname -r) (the new kernel boots after the reboot)"
