#!/bin/bash
set -euo pipefail
apt-get -y upgrade
apt-get -y install ca-certificates curl gnupg
