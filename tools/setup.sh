#!/usr/bin/env bash
# Install vmfed's build and test dependencies (idempotent) and build it.
# Sourced by tools/main.sh and tools/test.sh; usable on its own.
set -euo pipefail

VMFED_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMFED_BUILD=${VMFED_BUILD:-$VMFED_ROOT/build}
# The second build of tools/test.sh: clang, ASan+UBSan, libFuzzer targets.
VMFED_SAN_BUILD=${VMFED_SAN_BUILD:-$VMFED_ROOT/build-san}

VMFED_PACKAGES=(
  build-essential meson ninja-build pkg-config python3 clang libclang-rt-14-dev
  libglib2.0-dev libsystemd-dev libvirt-dev libnl-3-dev libnl-route-3-dev
  libnftnl-dev libmnl-dev libnftables-dev
  dbus libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
  nftables iproute2 busybox-static cpio kmod libxml2-utils go-md2man
  socat procps psmisc util-linux valgrind
)

vmfed_install_deps() {
  local missing=()
  for p in "${VMFED_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "vmfed: missing packages (${missing[*]}); run as root to install them" >&2
    return 1
  fi
  echo "vmfed: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

vmfed_build() {
  if [ ! -f "$VMFED_BUILD/build.ninja" ]; then
    meson setup "$VMFED_BUILD" "$VMFED_ROOT" "$@" >&2
  fi
  meson compile -C "$VMFED_BUILD" >&2
}

# The sanitizer build: clang (it links the ASan runtime statically, so the
# binaries copied into the test guest need no extra library), ASan+UBSan,
# -Dfuzz=true for the libFuzzer targets.  b_lundef=false: clang's sanitizer
# runtimes leave symbols undefined in shared objects until link time.
vmfed_build_san() {
  if [ ! -f "$VMFED_SAN_BUILD/build.ninja" ]; then
    CC=clang meson setup "$VMFED_SAN_BUILD" "$VMFED_ROOT" \
      -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=true "$@" >&2
  fi
  meson compile -C "$VMFED_SAN_BUILD" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  vmfed_install_deps
  vmfed_build "$@"
fi
