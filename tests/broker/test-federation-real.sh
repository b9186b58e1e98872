#!/usr/bin/env bash
# vmfedd running the federation on a real libvirtd (qemu:///system) with tiny
# TCG guests: starts libvirtd when none runs (tests/lib/libvirtd.sh), builds
# the test guest, runs test_federation_real.py (a private dbus-daemon and the
# real vmfedd, driven with busctl), and removes every domain of this run and
# the work dirs afterwards, also on failure.  A second run passes too.
#
# Usage: test-federation-real.sh VMFEDD [SCRIPT]   (env VMFED_SOURCE_ROOT, VMFED_BUILD_ROOT)
# SCRIPT: the Python test in tests/broker/ to run (default test_federation_real.py;
# test_libvirt_stall.py for broker-libvirt-stall).
set -euo pipefail

src=${VMFED_SOURCE_ROOT:?}
build=${VMFED_BUILD_ROOT:?}
vmfedd=${1:?usage: test-federation-real.sh VMFEDD [SCRIPT]}
script=${2:-test_federation_real.py}
# shellcheck source=../lib/libvirtd.sh
. "$src/tests/lib/libvirtd.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (qemu:///system)" >&2
  exit 77
fi

run_id=$$
prefix="vmfed-bt$run_id-"

cleanup() {
  local rc=$?
  libvirtd_answers && libvirtd_remove_domains "$prefix"
  libvirtd_release
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

r=0
libvirtd_ensure 180 || r=$?
[ $r -eq 0 ] || exit $r

guest=$("$src/tests/guest/guest-dir.sh" "$build")
"$src/tests/guest/build-guest.sh" "$guest" --flavor base >&2

VMFED_GUEST_DIR="$guest" VMFED_TEST_PREFIX="$prefix" \
  python3 "$src/tests/broker/$script" "$vmfedd"
