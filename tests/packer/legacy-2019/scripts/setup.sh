#!/bin/bash -eux
# Patch the base, install the agents every service needs.
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get -y upgrade
apt-get -y install unattended-upgrades chrony jq
# The monitoring agent, pinned.
curl -fsSL "https://example.com/agent/install.sh" -o /tmp/agent.sh
bash /tmp/agent.sh --version "2.3.1"
rm -f /tmp/agent.sh
apt-get -y autoremove
apt-get clean
