#!/usr/bin/env bash
# The federation on a real libvirtd (qemu:///system) with tiny TCG guests:
# starts libvirtd when none runs (tests/lib/libvirtd.sh), builds the test
# guest, creates a bridge for the netvm's clients, runs
# test-federation-real, and removes every domain of this run, the bridge
# and the work dir afterwards, also on failure.  A second run passes too.
set -euo pipefail

src=${VMFED_SOURCE_ROOT:?}
build=${VMFED_BUILD_ROOT:?}
# shellcheck source=../lib/libvirtd.sh
. "$src/tests/lib/libvirtd.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (qemu:///system, a bridge)" >&2
  exit 77
fi

run_id=$$
prefix="vmfed-rt$run_id-"
bridge="vmfrt$((run_id % 100000))"
work=$(mktemp -d /tmp/vmfed-fed-real.XXXXXX)
# QEMU runs as libvirt-qemu: it must reach the kernel, overlays and logs.
chmod 0755 "$work"

cleanup() {
  local rc=$?
  libvirtd_answers && libvirtd_remove_domains "$prefix"
  ip link del "$bridge" 2>/dev/null || true
  if [ $rc -ne 0 ] && [ -d "$work/state/consoles" ]; then
    for f in "$work"/state/consoles/*.log; do
      [ -f "$f" ] || continue
      echo "--- $f (tail)" >&2
      tail -n 5 "$f" >&2
    done
  fi
  rm -rf "$work"
  libvirtd_release
  exit $rc
}
trap cleanup EXIT

r=0
libvirtd_ensure 180 || r=$?
[ $r -eq 0 ] || exit $r

# libvirtd's first definition of a domain probes QEMU: have that done now.
virsh -c qemu:///system domcapabilities --virttype qemu >/dev/null || true
guest=$("$src/tests/guest/guest-dir.sh" "$build")
"$src/tests/guest/build-guest.sh" "$guest" --flavor base >&2

ip link add "$bridge" type bridge
ip link set "$bridge" up

VMFED_GUEST_DIR="$guest" VMFED_TEST_PREFIX="$prefix" VMFED_TEST_BRIDGE="$bridge" VMFED_TEST_WORKDIR="$work" \
  "$build/tests/federation/test-federation-real"
