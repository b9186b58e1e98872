#!/usr/bin/env bash
# Build vmfed's tiny test guest from Debian packages only:
#   - the kernel of linux-image-cloud-amd64 (apt-get download, dpkg-deb -x),
#   - a busybox-static initramfs holding the kernel modules a guest needs
#     (resolved with their dependencies from the modules' own metadata),
#   - optionally vmfed's own binaries with the shared libraries they load.
#
# Usage: build-guest.sh OUTDIR [--flavor base|netvm] [--binary PATH]...
# Produces OUTDIR/vmlinuz and OUTDIR/initrd-FLAVOR.img (OUTDIR: see
# guest-dir.sh — it must be readable by QEMU, which libvirt runs as its own
# user).  The initramfs is cached in OUTDIR and rebuilt only when an input
# changes (the kernel package version, this script, init, or a binary); the
# unpacked kernel package is shared by every OUTDIR, in
# $VMFED_TEST_CACHE/kernel (default /var/cache/vmfed-tests), under a lock.
# Needs root for apt-get only when the kernel is not yet cached.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-guest.sh OUTDIR [--flavor base|netvm] [--binary PATH]...}
shift
flavor=base
binaries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --flavor) flavor=$2; shift 2 ;;
    --binary) binaries+=("$2"); shift 2 ;;
    *) echo "build-guest.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

base_modules=(virtio_pci virtio_console virtio_net virtio_blk virtio_rng button evdev)
netvm_modules=(bridge br_netfilter nf_tables nft_ct nft_chain_nat nft_nat nft_masq
               nft_reject_inet nft_limit nf_conntrack nf_conntrack_netlink nft_fib_inet nft_redir)
case "$flavor" in
  base)  modules=("${base_modules[@]}") ;;
  netvm) modules=("${base_modules[@]}" "${netvm_modules[@]}") ;;
  *) echo "build-guest.sh: unknown flavor $flavor" >&2; exit 2 ;;
esac

mkdir -p "$out"
out=$(cd "$out" && pwd)
chmod 0755 "$out"
cache=${VMFED_TEST_CACHE:-/var/cache/vmfed-tests}
if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
  kdir="$cache/kernel"
else
  kdir="$out/kernel"   # not root: keep it beside the images
fi
# One fetch at a time (two builds' tests may start at once).
exec {kernel_lock}>"$kdir.lock"
flock -w 600 "$kernel_lock"

# --- the kernel: resolve the metapackage to the image it depends on -------
kernel_pkg_version() {
  apt-cache policy linux-image-cloud-amd64 2>/dev/null | awk '/Candidate:/ {print $2}'
}
fetch_kernel() {
  local want have=""
  want=$(kernel_pkg_version)
  if [ -z "$want" ] || [ "$want" = "(none)" ]; then
    # apt lists may be missing on a fresh machine.
    apt-get update -qq >&2
    want=$(kernel_pkg_version)
  fi
  [ -f "$kdir/.version" ] && have=$(cat "$kdir/.version")
  if [ "$have" = "$want" ] && [ -f "$kdir/vmlinuz" ]; then
    return 0
  fi
  local image tmp
  image=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$image" ] || { echo "build-guest.sh: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  (cd "$tmp" && apt-get download "$image" >&2 2>/dev/null || apt-get download "$image" >&2)
  dpkg-deb -x "$tmp"/"$image"_*.deb "$tmp/x"
  rm -rf "$kdir.new"
  mkdir -p "$kdir.new"
  cp "$tmp"/x/boot/vmlinuz-* "$kdir.new/vmlinuz"
  mv "$tmp"/x/lib/modules/* "$kdir.new/modules"
  echo "$want" > "$kdir.new/.version"
  rm -rf "$kdir"
  mv "$kdir.new" "$kdir"
}
fetch_kernel
cp -f "$kdir/vmlinuz" "$out/vmlinuz.tmp" && chmod 0644 "$out/vmlinuz.tmp" && mv -f "$out/vmlinuz.tmp" "$out/vmlinuz"

# --- cache key: everything that goes into the initramfs --------------------
key=$( {
  cat "$kdir/.version"
  sha256sum "$0" "$here/init" "$here/open-url" /bin/busybox "$here"/services/*
  printf '%s\n' "$flavor" "${modules[@]}"
  for b in "${binaries[@]}"; do sha256sum "$b"; ldd "$b" 2>/dev/null | awk '{print $3}' | grep / | xargs -r sha256sum; done
  if [ "$flavor" = netvm ] && [ -x /usr/sbin/dnsmasq ]; then sha256sum /usr/sbin/dnsmasq; fi
} | sha256sum | cut -d' ' -f1)
img="$out/initrd-$flavor.img"
if [ -f "$img" ] && [ "$(cat "$img.key" 2>/dev/null)" = "$key" ]; then
  echo "$img (cached)"
  exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/modules,etc/vmfed,proc,sys,dev,run,tmp,var/lib/vmfed,root}
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$here/init" "$root/init"
chmod 755 "$root/init"
cp "$here/open-url" "$root/usr/bin/vmfed-test-open-url"
chmod 755 "$root/usr/bin/vmfed-test-open-url"
# Stream service handlers of the tests (docs/streams.md, vmfed.services(5)).
mkdir -p "$root/etc/vmfed/services"
cp "$here"/services/* "$root/etc/vmfed/services/"
chmod 755 "$root"/etc/vmfed/services/*

# Modules in dependency order: depth-first over `modinfo -F depends`.
modroot="$kdir/modules"
declare -A seen=()
order=()
modpath() {
  find "$modroot" -name "$1.ko" -o -name "$(echo "$1" | tr _ -).ko" | head -n1
}
visit() {
  local m=${1//-/_} p deps d
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  p=$(modpath "$m")
  if [ -z "$p" ]; then
    # Built into this kernel (no .ko): nothing to load.
    return 0
  fi
  deps=$(modinfo -F depends "$p" | tr ',' ' ')
  for d in $deps; do visit "$d"; done
  order+=("$p")
}
for m in "${modules[@]}"; do visit "$m"; done
: > "$root/etc/vmfed/modules"
for p in "${order[@]}"; do
  cp "$p" "$root/lib/modules/"
  echo "$(basename "$p")" >> "$root/etc/vmfed/modules"
done

# The netvm's DHCP server (vmfed-netd runs it, netvm/dhcp.h): dnsmasq with
# its libraries, and the unprivileged user it switches to.
if [ "$flavor" = netvm ]; then
  if [ -x /usr/sbin/dnsmasq ]; then
    binaries+=(/usr/sbin/dnsmasq)
  else
    echo "build-guest.sh: no /usr/sbin/dnsmasq (dnsmasq-base): the netvm image has no DHCP" >&2
  fi
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
fi

# vmfed binaries and their shared libraries (and the dynamic loader).
for b in "${binaries[@]}"; do
  cp "$b" "$root/usr/bin/$(basename "$b")"
  ldd "$b" | awk '/=>/ {print $3} /^\t\// {print $1}' | grep '^/' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
echo "$flavor" > "$root/etc/vmfed/flavor"

(cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 | gzip -1) > "$img.tmp"
chmod 0644 "$img.tmp"
mv "$img.tmp" "$img"
echo "$key" > "$img.key"
echo "$img (built: ${#order[@]} modules, ${#binaries[@]} binaries, $(du -k "$img" | cut -f1) KiB)"
