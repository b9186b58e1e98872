#!/usr/bin/env bash
# test_dispvm_gone.py on libvirtd's test driver: starts libvirtd when none
# runs (tests/lib/libvirtd.sh) and leaves it as it found it.
# Usage: test-dispvm-gone.sh VMFEDD VMFED_AGENT VMFED_GUEST   (env VMFED_SOURCE_ROOT)
set -euo pipefail
src=${VMFED_SOURCE_ROOT:?}
# shellcheck source=../lib/libvirtd.sh
. "$src/tests/lib/libvirtd.sh"
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (a libvirtd)" >&2
  exit 77
fi
trap 'libvirtd_release' EXIT
r=0
libvirtd_ensure 120 || r=$?
[ $r -eq 0 ] || exit $r
python3 "$src/tests/services/test_dispvm_gone.py" "$@"
