#!/bin/sh
# Provisioning of c1 and c2: what the tcplab agent needs on a host.
#   iptables  the experiment's firewall rules (the agent runs the real binary)
#   iproute2  for looking around by hand (`ip addr`, `ss -tano`)
# The agent itself needs no install: tcplab uploads its own executable over
# ssh when a host lacks it, and removes it again when the run ends.
set -eu
PATH=$PATH:/usr/sbin:/sbin
# Offline VMs (the box lab/box/build.sh makes has no apt sources) already
# have both: nothing to install, no network needed.
if command -v iptables >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; then
    echo "provision.sh: iptables and iproute2 are installed"
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends iptables iproute2
elif command -v dnf >/dev/null 2>&1; then
    dnf install -y -q iptables-nft iproute
else
    echo "provision.sh: install iptables and iproute2 on this host by hand" >&2
    exit 1
fi
