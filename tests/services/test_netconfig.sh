#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# vmfed-agent applies the broker's network configuration (Agent1.SetNetwork)
# with libnl, in a private network namespace with a veth eth0.  The agent
# finds its port like in a VM: /sys/class/virtio-ports/*/name says
# org.vmfed.agent.0 (a fake sysfs tree, --sysfs-root), /dev/NAME is the port
# (here a symlink to the fake broker's socket, removed afterwards).
# Usage: test_netconfig.sh VMFED_AGENT TEST_AGENT_NET
set -eu
if [ -z "${VMFED_IN_NETNS:-}" ]; then
        exec env VMFED_IN_NETNS=1 unshare --net --fork --kill-child -- "$0" "$@"
fi
agent=$1
fake_broker=$2
tmp=$(mktemp -d /tmp/vmfed-netconfig-XXXXXX)
apid=
port=vmfedtest-$$
cleanup() {
        [ -n "$apid" ] && kill "$apid" 2>/dev/null && wait "$apid" 2>/dev/null
        rm -f "/dev/$port"
        rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ip link add eth0 type veth peer name eth0p
ip link set lo up
"$fake_broker" "$tmp/channel.sock" eth0 > "$tmp/broker.out" 2>&1 &
bpid=$!
while [ ! -S "$tmp/channel.sock" ]; do sleep 0.05; done
mkdir -p "$tmp/sys/class/virtio-ports/vport9p1" "$tmp/sys/class/virtio-ports/$port"
echo org.qemu.guest_agent.0 > "$tmp/sys/class/virtio-ports/vport9p1/name"
echo org.vmfed.agent.0 > "$tmp/sys/class/virtio-ports/$port/name"
ln -s "$tmp/channel.sock" "/dev/$port"
"$agent" --sysfs-root "$tmp/sys" --guest-socket "$tmp/guest.sock" --net-interface eth0 \
        --resolv-conf "$tmp/resolv.conf" > "$tmp/agent.log" 2>&1 &
apid=$!
if ! wait "$bpid"; then
        cat "$tmp/broker.out" "$tmp/agent.log"
        exit 1
fi
ip -4 addr show dev eth0 | grep -q 'inet 10.137.0.6/24' || { ip addr; echo "address not set"; exit 1; }
if ip -4 addr show dev eth0 | grep -q 'inet 10.137.0.5/'; then ip addr; echo "old address kept"; exit 1; fi
ip link show eth0 | grep -q 'UP' || { echo "link not up"; exit 1; }
ip -4 route show default | grep -q 'default via 10.137.0.1 dev eth0' || { ip route; echo "no default route"; exit 1; }
grep -qx 'nameserver 10.137.0.1' "$tmp/resolv.conf" && grep -qx 'nameserver 2001:db8::53' "$tmp/resolv.conf" \
        || { cat "$tmp/resolv.conf"; echo "resolv.conf wrong"; exit 1; }
echo ok
