#!/bin/bash
# Provisioning: security patches, common tools, a container runtime.
# Runs as root through SSM Run Command on the builder; kiln reboots afterwards.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt_get() {
  apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef \
          -o Dpkg::Options::=--force-confold -y "$@"
}

# cloud-init may still be installing packages on first boot.
cloud-init status --wait >/dev/null || true

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

echo "setup done: $(lsb_release -ds), kernel $(uname -r) (new kernel after reboot)"
