#!/usr/bin/env bash
# Print the directory that holds the test guest images of one build:
#   guest-dir.sh BUILD_DIR
# It is outside the build tree, under $VMFED_TEST_CACHE (default
# /var/cache/vmfed-tests), because QEMU runs as libvirt's user
# (libvirt-qemu) and must open the kernel and initramfs: a clone in a home
# directory (0700 on Debian, /root too) is not readable by it.  One
# directory per build (named by a hash of the build directory's real path),
# so that build/ and build-san/ keep their own initramfs with their own
# binaries; the kernel is shared (build-guest.sh).  Directories no build used
# for 14 days are removed here.
set -euo pipefail
build=$(cd "${1:?usage: guest-dir.sh BUILD_DIR}" && pwd -P)
cache=${VMFED_TEST_CACHE:-/var/cache/vmfed-tests}
dir="$cache/guest/$(printf '%s' "$build" | sha256sum | cut -c1-16)"
mkdir -p "$dir"
chmod 0755 "$cache" "$cache/guest" "$dir" 2>/dev/null || true
printf '%s\n' "$build" > "$dir/.build"
find "$cache/guest" -mindepth 1 -maxdepth 1 -type d -mtime +14 ! -path "$dir" -exec rm -rf {} + 2>/dev/null || true
touch "$dir"
echo "$dir"
