#!/usr/bin/env bash
# Run vmfed's whole test suite twice: install dependencies, build both, then
#   1. build/      the normal gcc build, every test (suite 'valgrind' runs the
#                  broker's integration tests with vmfedd under valgrind);
#   2. build-san/  clang with ASan+UBSan (-Db_sanitize=address,undefined) and
#                  the libFuzzer targets (-Dfuzz=true), the tests again but the
#                  real-VM ones whose subject is QEMU, libvirt or the guest
#                  (tests/meson.build); any sanitizer report fails the test
#                  that caused it.  Suite 'soak' runs only when asked.
# Prints one line per build, then the final line "N passed, N failed[, N
# skipped]" summed over both builds' meson testlog.json.  Exits non-zero when
# either build fails to build or any test fails.  Extra arguments go to both
# `meson test` runs (e.g. --suite broker).  VMFED_TEST_BUILDS="build" or
# "build-san" runs only one of the two.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
vmfed_as_root "$0" "$@"
trap vmfed_restore_owner EXIT

vmfed_install_deps

builds=${VMFED_TEST_BUILDS:-"build build-san"}
rc=0
logs=()
declare -A built
# Build both first: a build that fails (clang warns where gcc does not) is
# reported within minutes, not after the other build's tests.
for b in $builds; do
  case $b in
    build) dir=$VMFED_BUILD; build_fn=vmfed_build ;;
    build-san) dir=$VMFED_SAN_BUILD; build_fn=vmfed_build_san ;;
    *) echo "vmfed: unknown build $b (VMFED_TEST_BUILDS)" >&2; exit 2 ;;
  esac
  # A build that fails to compile has no test log: the summary counts it as a failure.
  rm -f "$dir/meson-logs/testlog.json"
  logs+=("$b=$dir/meson-logs/testlog.json")
  start=$SECONDS
  if $build_fn; then
    built[$b]=$dir
    echo "$b: built in $((SECONDS - start)) s"
  else
    echo "vmfed: $b failed to build" >&2
    rc=1
  fi
done

for b in $builds; do
  [ -n "${built[$b]:-}" ] || continue
  dir=${built[$b]}
  start=$SECONDS
  case $b in
    build)
      meson test -C "$dir" --print-errorlogs "$@" || rc=1
      ;;
    build-san)
      # Stop at the first report with a non-zero exit status (no core dumps);
      # LeakSanitizer runs at every exit.  UBSan also halts: the build has
      # -fno-sanitize-recover (meson.build).  Suppressions: third-party only.
      # Which real-VM tests build-san/ has, and how many fault rounds:
      # tests/meson.build (plain_build) and tests/faults/meson.build.
      ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:print_summary=1:check_initialization_order=1 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:print_summary=1 \
      LSAN_OPTIONS=suppressions=$VMFED_ROOT/tests/sanitizers/lsan.supp:print_suppressions=0 \
        meson test -C "$dir" --print-errorlogs "$@" || rc=1
      ;;
  esac
  echo "$b: tested in $((SECONDS - start)) s"
done

python3 "$VMFED_ROOT/tools/testlog-summary.py" "${logs[@]}" || rc=1
exit $rc
