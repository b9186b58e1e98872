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

# shellcheck source=../lib/realvm.sh
. "$src/tests/lib/realvm.sh"
realvm_init e2e
trap realvm_cleanup EXIT
trap 'exit 130' INT TERM

say() { [ "$mode" = demo ] && echo "$*" || echo "$*" >&2; }

t0=$(date +%s.%N)
r=0
libvirtd_ensure 180 || r=$?
[ $r -eq 0 ] || exit $r

realvm_guests "$build"
qemu-img create -q -f qcow2 "$work/dvm.qcow2" 16M
say "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "   [%6.2f s] libvirtd answers, guest images built or cached", a - b }')"

# The "internet": web servers on 80 (allowed) and 8080 (denied).
realvm_internet 80 8080

VMFED_E2E_MODE=$mode VMFED_E2E_WORK="$work" VMFED_GUEST_DIR="$guest" VMFED_TEST_PREFIX="$prefix" \
VMFED_E2E_HOST_BRIDGE="$host_bridge" VMFED_E2E_UPLINK_BRIDGE="$uplink_bridge" VMFED_E2E_NETNS="$netns" \
  python3 "$src/tests/e2e/e2e.py" "$build" "$src/examples/demo"
