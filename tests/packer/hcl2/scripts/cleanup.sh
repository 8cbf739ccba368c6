#!/bin/sh -e
apt-get -y autoremove
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/*
truncate -s 0 /etc/machine-id
