#!/usr/bin/env bash
# vmfed end to end: the demo federation of examples/demo on a real libvirtd
# (qemu:///system, TCG guests), real D-Bus (a private dbus-daemon), the real
# vmfedd, vmfed-netd and vmfed-agent.  This script sets up what is outside
# the federation — libvirtd (tests/lib/libvirtd.sh), the guest images, a
# host bridge for the clients, an "internet" network namespace behind an
# uplink bridge with web servers on an allowed (80) and a denied (8080)
# port — runs e2e.py, and removes all of it afterwards, also on failure:
# this run's domains, processes, namespace, bridges and nftables chains.
#
# Usage: test-e2e.sh BUILD_DIR [--demo]
#   --demo: narrate (tools/demo.sh); without: the test (meson test --suite e2e)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: test-e2e.sh BUILD_DIR [--demo]}
build=$(cd "$build" && pwd)
mode=test
[ "${2:-}" = --demo ] && mode=demo
# shellcheck source=../lib/libvirtd.sh
. "$src/tests/lib/libvirtd.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (qemu:///system, bridges, namespaces)" >&2
  exit 77
fi

run_id=$$
short=$((run_id % 100000))
prefix="vmfed-e2e$run_id-"
host_bridge="vmfb$short"
uplink_bridge="vmfu$short"
veth="vmfi$short"
netns="vmfed-e2e-inet-$run_id"
work=$(mktemp -d /tmp/vmfed-e2e.XXXXXX)
chmod 0755 "$work"   # QEMU must reach the disk image
server_pids=()

# Anti-spoofing chains the broker left for taps that no longer exist (a
# killed broker cannot detach them); then the table, once nothing uses it.
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

say() { [ "$mode" = demo ] && echo "$*" || echo "$*" >&2; }

t0=$(date +%s.%N)
r=0
libvirtd_ensure 180 || r=$?
[ $r -eq 0 ] || exit $r

guest="$build/tests/guest/image"
bins=(--binary "$build/services/vmfed-agent" --binary "$build/services/vmfed-guest")
"$src/tests/guest/build-guest.sh" "$guest" --flavor base "${bins[@]}" >&2
"$src/tests/guest/build-guest.sh" "$guest" --flavor netvm "${bins[@]}" --binary "$build/netvm/vmfed-netd" --binary "$(command -v nft)" >&2
qemu-img create -q -f qcow2 "$work/dvm.qcow2" 16M
say "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "   [%6.2f s] libvirtd answers, guest images built or cached", a - b }')"

# The "internet": a namespace behind the uplink bridge, web servers on 80 (allowed) and 8080 (denied).
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
for port in 80 8080; do
  ip netns exec "$netns" python3 -u -m http.server "$port" --bind 192.0.2.1 --directory "$work/www" \
    > "$work/http-$port.log" 2>&1 &
  server_pids+=($!)
done

VMFED_E2E_MODE=$mode VMFED_E2E_WORK="$work" VMFED_GUEST_DIR="$guest" VMFED_TEST_PREFIX="$prefix" \
VMFED_E2E_HOST_BRIDGE="$host_bridge" VMFED_E2E_UPLINK_BRIDGE="$uplink_bridge" VMFED_E2E_NETNS="$netns" \
  python3 "$src/tests/e2e/e2e.py" "$build" "$src/examples/demo"
