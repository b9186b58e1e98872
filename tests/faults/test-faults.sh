#!/usr/bin/env bash
# Fault injection (issue 8): faults.py runs a few hundred rounds, chosen by a
# seeded RNG, of kill -9 of vmfedd in the middle of a persona switch (and of
# its rollback), a policy ReplaceFile/RemoveFile and a disposable's life;
# kill -9 of a persona's QEMU; kill of vmfed-netd in the netvm; a restart
# of libvirtd — and after each checks that the federation converges to a
# consistent state.  This script sets up what is outside the federation —
# libvirtd (tests/lib/libvirtd.sh), the guest images, an uplink bridge into
# an "internet" namespace with a web server — and removes all of it
# afterwards, also on failure: this run's domains, processes, namespace,
# bridges, nftables chains and work dir.
#
# Usage: test-faults.sh BUILD_DIR
#   env VMFED_FAULT_SEED (default 8), VMFED_FAULT_ROUNDS (default 200, ~14 min),
#       VMFED_FAULT_KINDS (comma-separated subset of the round kinds)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: test-faults.sh BUILD_DIR}
build=$(cd "$build" && pwd)
# shellcheck source=../lib/libvirtd.sh
. "$src/tests/lib/libvirtd.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (qemu:///system, bridges, namespaces)" >&2
  exit 77
fi

run_id=$$
short=$((run_id % 100000))
prefix="vmfed-flt$run_id-"
host_bridge="vmfB$short"
uplink_bridge="vmfU$short"
veth="vmfI$short"
netns="vmfed-flt-inet-$run_id"
work=$(mktemp -d /tmp/vmfed-faults.XXXXXX)
chmod 0755 "$work"   # QEMU must reach the disk images
server_pids=()

# Anti-spoofing chains of taps that no longer exist, then the table once unused.
sweep_nft() {
  local chains c tap
  chains=$(nft list table bridge vmfed-host 2>/dev/null | awk '/chain port-/ {print $2}') || return 0
  for c in $chains; do
    tap=${c#port-}
    [ -e "/sys/class/net/$tap" ] && continue
    nft delete element bridge vmfed-host ports "{ \"$tap\" }" 2>/dev/null || true
    nft delete chain bridge vmfed-host "$c" 2>/dev/null || true
  done
  if ! nft list table bridge vmfed-host 2>/dev/null | grep -q 'chain port-'; then
    nft delete table bridge vmfed-host 2>/dev/null || true
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  libvirtd_answers && libvirtd_remove_domains "$prefix"
  for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns pids "$netns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
  ip link del "$veth" 2>/dev/null || true
  ip link del "$uplink_bridge" 2>/dev/null || true
  ip link del "$host_bridge" 2>/dev/null || true
  sweep_nft
  rm -rf "$work"
  libvirtd_release
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

r=0
libvirtd_ensure 180 || r=$?
[ $r -eq 0 ] || exit $r

guest="$build/tests/guest/image"
bins=(--binary "$build/services/vmfed-agent" --binary "$build/services/vmfed-guest")
"$src/tests/guest/build-guest.sh" "$guest" --flavor base "${bins[@]}" >&2
"$src/tests/guest/build-guest.sh" "$guest" --flavor netvm "${bins[@]}" --binary "$build/netvm/vmfed-netd" --binary "$(command -v nft)" >&2

# The "internet": a namespace behind the uplink bridge, a web server on port 80.
ip netns add "$netns"
ip link add "$uplink_bridge" type bridge
ip link set "$uplink_bridge" up
ip link add "$veth" type veth peer name eth0 netns "$netns"
ip link set "$veth" master "$uplink_bridge" up
ip -n "$netns" link set lo up
ip -n "$netns" addr add 192.0.2.1/24 dev eth0
ip -n "$netns" link set eth0 up
mkdir -p "$work/www"
echo "hello from the internet" > "$work/www/index.html"
ip netns exec "$netns" python3 -u -m http.server 80 --bind 192.0.2.1 --directory "$work/www" \
  > "$work/http-80.log" 2>&1 &
server_pids+=($!)

VMFED_FAULT_WORK="$work" VMFED_GUEST_DIR="$guest" VMFED_TEST_PREFIX="$prefix" \
VMFED_FAULT_HOST_BRIDGE="$host_bridge" VMFED_FAULT_UPLINK_BRIDGE="$uplink_bridge" \
VMFED_SOURCE_ROOT="$src" \
  python3 "$src/tests/faults/faults.py" "$build"
