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
#   env VMFED_FAULT_SEED (default 8), VMFED_FAULT_ROUNDS (default 300, ~30 min),
#       VMFED_FAULT_KINDS (comma-separated subset of the round kinds)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: test-faults.sh BUILD_DIR}
build=$(cd "$build" && pwd)
# shellcheck source=../lib/libvirtd.sh
. "$src/tests/lib/libvirtd.sh"

# shellcheck source=../lib/realvm.sh
. "$src/tests/lib/realvm.sh"
realvm_init flt upper
trap realvm_cleanup EXIT
trap 'exit 130' INT TERM

r=0
libvirtd_ensure 180 || r=$?
[ $r -eq 0 ] || exit $r

realvm_guests "$build"

# The "internet": a web server on port 80.
realvm_internet 80

VMFED_FAULT_WORK="$work" VMFED_GUEST_DIR="$guest" VMFED_TEST_PREFIX="$prefix" \
VMFED_FAULT_HOST_BRIDGE="$host_bridge" VMFED_FAULT_UPLINK_BRIDGE="$uplink_bridge" \
VMFED_SOURCE_ROOT="$src" \
  python3 "$src/tests/faults/faults.py" "$build"
