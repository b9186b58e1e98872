#!/usr/bin/env bash
# Build the booted-host test's root image: a Debian 12 system with systemd
# as PID 1, its own cloud kernel and initramfs, sshd, polkitd, man-db and
# everything the vmfed packages depend on (their install in the guest is
# offline: `apt-get install ./*.deb` must find every dependency there).
#
# Usage: build-host-image.sh OUTDIR
# Produces OUTDIR/root.img (ext4, raw), OUTDIR/vmlinuz, OUTDIR/initrd.img,
# and OUTDIR/root.tar (the same tree, for a chroot).
# Cached: rebuilt only when this script (which holds the package list)
# changes; OUTDIR/.key holds the hash of its inputs.  Needs root (mmdebstrap).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-host-image.sh OUTDIR}
mkdir -p "$out"
# The packages the image holds.  vmfed's Depends: and Recommends:
# (debian/control) must be in this list or come with it.
packages=(
  systemd-sysv dbus polkitd pkexec openssh-server man-db less
  ovmf swtpm swtpm-tools
  linux-image-cloud-amd64 initramfs-tools
  libvirt-daemon-system qemu-system-x86 libvirt-clients
  libglib2.0-0 libsystemd0 libvirt0 libnl-3-200 libnl-route-3-200 libnftnl11 libmnl0
  nftables iproute2 ca-certificates
)
key=$( { sha256sum "$0" "$here"/image/* | cut -d' ' -f1; printf '%s\n' "${packages[@]}"; } | sha256sum | cut -d' ' -f1)
if [ -f "$out/root.img" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
  echo "$out/root.img (cached)"
  exit 0
fi
command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >&2

exec {lock}>"$out.lock"
flock -w 1800 "$lock"
tmp=$(mktemp -d /var/tmp/vmfed-hostimg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
pkglist=$(IFS=,; echo "${packages[*]}")
mmdebstrap --variant=important --include="$pkglist" \
  --customize-hook='echo vmfed-host > "$1/etc/hostname"' \
  --customize-hook='echo "127.0.1.1 vmfed-host" >> "$1/etc/hosts"' \
  --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
  --customize-hook='chroot "$1" passwd -d root' \
  --customize-hook='mkdir -p "$1/etc/ssh/sshd_config.d" && printf "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n" > "$1/etc/ssh/sshd_config.d/vmfed-test.conf"' \
  --customize-hook='mkdir -p "$1/etc/systemd/network" && printf "[Match]\nName=en* eth*\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/50-dhcp.network"' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd ssh serial-getty@ttyS0' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer' \
  --customize-hook="copy-in $here/image/vmfed-test-key /usr/local/sbin" \
  --customize-hook="copy-in $here/image/vmfed-test-key.service /etc/systemd/system" \
  --customize-hook='chroot "$1" systemctl enable vmfed-test-key.service' \
  --customize-hook='cp "$1"/boot/vmlinuz-* "'"$tmp"'/vmlinuz" && cp "$1"/boot/initrd.img-* "'"$tmp"'/initrd.img"' \
  bookworm "$root" http://deb.debian.org/debian >&2
# The same system as a plain tree, for the chroot check (no systemd runs there).
tar -C "$root" -cf "$tmp/root.tar" .
# Leave room for the packages and the journal.
mke2fs -q -t ext4 -d "$root" -L vmfed-root "$tmp/root.img" 4G
chmod 0644 "$tmp/vmlinuz" "$tmp/initrd.img" "$tmp/root.img"
mv -f "$tmp/vmlinuz" "$tmp/initrd.img" "$out/"
mv -f "$tmp/root.img" "$tmp/root.tar" "$out/"
echo "$key" > "$out/.key"
echo "$out/root.img"
