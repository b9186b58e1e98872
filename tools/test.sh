#!/usr/bin/env bash
# Run vmfed's whole test suite: install dependencies, build, run every test,
# and finish with the line "N passed, N failed[, N skipped]" computed from
# meson's test log.  Extra arguments go to `meson test`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

vmfed_install_deps
vmfed_build

rc=0
meson test -C "$VMFED_BUILD" --print-errorlogs "$@" || rc=$?

python3 "$VMFED_ROOT/tools/testlog-summary.py" "$VMFED_BUILD/meson-logs/testlog.json" || rc=1
exit $rc
