#!/usr/bin/env bash
# The installed vmfed on a booted Debian 12 (suite 'install'):
#   1. the .deb files, built out of tree (build-debs.sh, lintian: no errors);
#   2. a fresh chroot of the same Debian (no systemd running) installs them
#      and `vmfedctl policy lint` works there;
#   3. a Debian 12 guest with systemd as PID 1 boots under TCG from the
#      cached root (build-host-image.sh; an overlay keeps it pristine), with
#      no route out (user networking, restrict=on) and only sshd forwarded,
#      on 127.0.0.1; guest-checks.sh runs there as root (install offline,
#      systemd, D-Bus activation, bus policy, polkit, reload, journal,
#      systemd-analyze, man);
#   4. from here, `vmfedctl --host` runs every bus verb against that guest
#      through ssh and systemd-stdio-bridge, as root, as a member of group
#      vmfed and as a user who is neither (denied), with a key made here.
# One boot for all of it.  Needs root (chroot, apt-get) and QEMU; skips (77)
# otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${VMFED_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
bld=${VMFED_BUILD_ROOT:?VMFED_BUILD_ROOT (meson test sets it)}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
cache=${VMFED_TEST_CACHE:-/var/cache/vmfed-tests}
start=$SECONDS
step() { echo "[$((SECONDS - start)) s] $*"; }

tmp=$(mktemp -d /var/tmp/vmfed-install.XXXXXX)
qemu_pid=
mounted=
cleanup() {
  [ -n "$mounted" ] && umount $mounted
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

step "building the packages"
"$here/build-debs.sh" "$tmp/debs" --lintian > "$tmp/debs.log" 2>&1 || { cat "$tmp/debs.log"; exit 1; }
grep -E '^[EW]:' "$tmp/debs.log" || true
ls -l "$tmp"/debs/*.deb | awk '{print "   " $5, $9}'
step "the host image"
"$here/build-host-image.sh" "$cache/host" > "$tmp/image.log" 2>&1 || { tail -30 "$tmp/image.log"; exit 1; }
img=$cache/host

step "a fresh chroot without systemd running: install, vmfedctl policy lint"
mkdir "$tmp/chroot"
tar -C "$tmp/chroot" -xf "$img/root.tar"
# /proc and /dev as every chroot has them (debootstrap, mmdebstrap, schroot);
# nothing runs systemd there.
mount -t proc proc "$tmp/chroot/proc"
mount --bind /dev "$tmp/chroot/dev"
mounted="$tmp/chroot/dev $tmp/chroot/proc"
cp "$tmp"/debs/vmfed_*.deb "$tmp"/debs/vmfed-agent_*.deb "$tmp"/debs/vmfed-netd_*.deb "$tmp/chroot/tmp/"
mkdir -p "$tmp/chroot/etc/vmfed"
cp -r "$src/examples/etc-vmfed/policy.d" "$tmp/chroot/etc/vmfed/"
chroot "$tmp/chroot" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/vmfed_*.deb /tmp/vmfed-agent_*.deb /tmp/vmfed-netd_*.deb' \
  > "$tmp/chroot.log" 2>&1 || { cat "$tmp/chroot.log"; echo "FAIL: install in the chroot"; exit 1; }
out=$(chroot "$tmp/chroot" vmfedctl policy lint --config-dir /etc/vmfed 2>&1) || { echo "$out"; echo "FAIL: vmfedctl policy lint in the chroot"; exit 1; }
echo "   $out" | head -3
chroot "$tmp/chroot" getent group vmfed >/dev/null || { echo "FAIL: no group vmfed in the chroot"; exit 1; }
[ "$(stat -c %G "$tmp/chroot/var/lib/vmfed/channels")" = libvirt-qemu ] || { echo "FAIL: chroot's channels/ not libvirt-qemu's"; exit 1; }
[ -d /run/systemd/system ] || [ ! -e "$tmp/chroot/run/systemd/system" ] || { echo "FAIL: systemd ran in the chroot?"; exit 1; }
echo "ok - chroot: installed, group vmfed, channels/ libvirt-qemu's, policy lint works"
umount $mounted; mounted=
rm -rf "$tmp/chroot"

step "booting the guest"
ssh-keygen -q -t ed25519 -N '' -C vmfed-install-test -f "$tmp/key"
{ cat "$tmp/key.pub"; head -c 4096 /dev/zero; } | head -c 4096 > "$tmp/key.raw"
qemu-img create -q -f qcow2 -b "$img/root.img" -F raw "$tmp/root.qcow2"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 1536 -smp 1 -display none -no-reboot \
  -kernel "$img/vmlinuz" -initrd "$img/initrd.img" -append "root=/dev/vda rw console=ttyS0" \
  -drive file="$tmp/root.qcow2",if=virtio,format=qcow2 \
  -drive file="$tmp/key.raw",if=virtio,format=raw,readonly=on \
  -netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22 -device virtio-net-pci,netdev=n0 \
  -serial file:"$tmp/console.log" > "$tmp/qemu.log" 2>&1 &
qemu_pid=$!
# ssh through a wrapper (sd-bus runs "ssh" from PATH for --host): the test's key, no known_hosts.
mkdir "$tmp/bin"
cat > "$tmp/bin/ssh" <<SSH
#!/bin/sh
exec /usr/bin/ssh -i "$tmp/key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=10 "\$@"
SSH
chmod +x "$tmp/bin/ssh"
export PATH="$tmp/bin:$PATH"
g() { ssh -p "$port" root@127.0.0.1 "$@"; }
for i in $(seq 1 120); do
  g true 2>/dev/null && break
  kill -0 "$qemu_pid" 2>/dev/null || { cat "$tmp/qemu.log"; tail -30 "$tmp/console.log"; echo "FAIL: QEMU exited"; exit 1; }
  [ "$i" = 120 ] && { tail -30 "$tmp/console.log"; echo "FAIL: no ssh into the guest within 600 s"; exit 1; }
  sleep 5
done
step "guest up (ssh on 127.0.0.1:$port)"
g 'mkdir -p /root/t'
tar -C "$tmp/debs" -cf - vmfed_0.1.0_amd64.deb | g 'tar -C /root/t -xf -'
tar -C "$src/tests/install" -cf - guest-checks.sh | g 'tar -C /root/t -xf -'
tar -C "$src/examples" -cf - etc-vmfed | g 'tar -C /root/t -xf -'
g 'cd /root/t && ./guest-checks.sh' | tee "$tmp/guest.log" | sed 's/^/   /'
grep -q GUEST-CHECKS-PASSED "$tmp/guest.log" || { echo "FAIL: guest checks"; exit 1; }

step "vmfedctl --host over ssh"
VMFEDCTL=$bld/ctl/vmfedctl
. "$here/host-verbs.sh"
host_verbs "127.0.0.1:$port"

step "powering off"
g 'systemctl poweroff' || true
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
step "passed"
