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
  dbus libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils ovmf swtpm swtpm-tools
  nftables conntrack dnsmasq-base iproute2 busybox-static cpio kmod libxml2-utils go-md2man
  socat procps psmisc util-linux valgrind
  libgtk-4-dev sway grim wtype cage fonts-dejavu-core
)

# tools/main.sh and tools/test.sh need root (apt-get, libvirt's
# qemu:///system, bridges, network namespaces).  Run as another user they
# start again under sudo when it is there (a minimal Debian has none: root
# runs them as they are); what they build stays owned by that user
# (vmfed_restore_owner, from their EXIT trap).
vmfed_as_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  if command -v sudo >/dev/null 2>&1; then
    echo "vmfed: $(basename "$1") needs root; running it again with sudo" >&2
    exec sudo "$@"
  fi
  echo "vmfed: $(basename "$1") needs root (apt-get, libvirt's qemu:///system, bridges, namespaces)" >&2
  echo "vmfed: run it as root (sudo is not installed: 'su -c $1' or log in as root)" >&2
  exit 1
}

# Under sudo: give the build directories back to the user who ran sudo.
vmfed_restore_owner() {
  [ -n "${SUDO_UID:-}" ] && [ "$(id -u)" -eq 0 ] || return 0
  local d
  for d in "$VMFED_BUILD" "$VMFED_SAN_BUILD"; do
    [ -d "$d" ] && chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$d" 2>/dev/null
  done
  return 0
}

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
  # Debian's busybox-static replaces busybox (both are /bin/busybox; the
  # test guests need the static one): say so rather than do it silently.
  if [[ " ${missing[*]} " == *" busybox-static "* ]] &&
     dpkg-query -W -f='${Status}' busybox 2>/dev/null | grep -q "install ok installed"; then
    echo "vmfed: note: busybox-static replaces the installed busybox package (same /bin/busybox, statically linked;" >&2
    echo "vmfed:       'apt-get install busybox' afterwards brings it back, the test guests then need busybox-static again)" >&2
  fi
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
