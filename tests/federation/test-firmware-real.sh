#!/usr/bin/env bash
# Firmware=uefi and TPM=2.0 on the real libvirtd, OVMF and swtpm (issue 17):
# the domain XML vmfed makes (`vmfedctl vm xml`, the start's own code) is
# defined and started; the tiny test guest (tests/guest, vmfed.selftest=1)
# reports on its agent port whether it sees EFI firmware (/sys/firmware/efi)
# and a TPM (/sys/class/tpm/tpm0).  The NVRAM copy must exist in
# STATE/nvram/ afterwards.  Removes the domain (with its NVRAM and TPM
# state) and its files afterwards, also on failure.
#
# Usage: test-firmware-real.sh VMFEDCTL   (env VMFED_SOURCE_ROOT, VMFED_BUILD_ROOT)
set -euo pipefail
src=${VMFED_SOURCE_ROOT:?}
build=${VMFED_BUILD_ROOT:?}
vmfedctl=${1:?usage: test-firmware-real.sh VMFEDCTL}
# shellcheck source=../lib/libvirtd.sh
. "$src/tests/lib/libvirtd.sh"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (qemu:///system)"; exit 77; }
for f in /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_VARS_4M.fd; do
  [ -r "$f" ] || { echo "SKIP: no $f (package ovmf)"; exit 77; }
done
command -v swtpm >/dev/null || { echo "SKIP: no swtpm (package swtpm)"; exit 77; }
command -v socat >/dev/null || { echo "SKIP: no socat"; exit 77; }

prefix="vmfed-fwr$$-"
dom="${prefix}uefi"
tmp=$(mktemp -d /tmp/vmfed-fw-real.XXXXXX)
chmod 0755 "$tmp"
sock_pid=
cleanup() {
  local rc=$?
  [ -n "$sock_pid" ] && kill "$sock_pid" 2>/dev/null || true
  if libvirtd_answers; then
    virsh -c qemu:///system destroy "$dom" >/dev/null 2>&1 || true
    virsh -c qemu:///system undefine --nvram --tpm "$dom" >/dev/null 2>&1 ||
      virsh -c qemu:///system undefine --nvram "$dom" >/dev/null 2>&1 || true
  fi
  libvirtd_release
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

r=0
libvirtd_ensure 180 || r=$?
[ $r -eq 0 ] || exit $r

guest=$("$src/tests/guest/guest-dir.sh" "$build")
"$src/tests/guest/build-guest.sh" "$guest" --flavor base >&2

mkdir -p "$tmp/etc/vms.d" "$tmp/state/channels" "$tmp/state/consoles" "$tmp/state/nvram"
chmod -R 0755 "$tmp/state"
cat > "$tmp/etc/vms.d/uefi.vm" <<EOF
[VM]
Role=app
Memory=256M
Accel=tcg
Kernel=$guest/vmlinuz
Initrd=$guest/initrd-base.img
Cmdline=console=ttyS0 quiet panic=-1 vmfed.name=uefi vmfed.selftest=1
Firmware=uefi
TPM=2.0
NetVM=
EOF
"$vmfedctl" vm xml --config-dir "$tmp/etc" --state-dir "$tmp/state" --domain-prefix "$prefix" uefi > "$tmp/domain.xml"
grep -q "OVMF_CODE_4M.fd" "$tmp/domain.xml" || { cat "$tmp/domain.xml"; echo "FAIL: no OVMF loader in the XML"; exit 1; }
grep -q "<tpm model='tpm-crb'>" "$tmp/domain.xml" || { cat "$tmp/domain.xml"; echo "FAIL: no TPM in the XML"; exit 1; }

# The agent port's host end: vmfedd listens there (QEMU connects).
socat -u "UNIX-LISTEN:$tmp/state/channels/uefi.sock,mode=0666" "CREATE:$tmp/agent.out" &
sock_pid=$!
for _ in $(seq 50); do [ -S "$tmp/state/channels/uefi.sock" ] && break; sleep 0.05; done

start=$SECONDS
virsh -c qemu:///system define "$tmp/domain.xml" >/dev/null
virsh -c qemu:///system start "$dom" >/dev/null
line=
for _ in $(seq 1200); do
  line=$(grep -a "vmfed-guest-ready uefi" "$tmp/agent.out" 2>/dev/null || true)
  [ -n "$line" ] && break
  sleep 0.1
done
if [ -z "$line" ]; then
  echo "FAIL: no ready line from the UEFI guest within 120 s" >&2
  tail -n 30 "$tmp/state/consoles/uefi.log" >&2 2>/dev/null || true
  exit 1
fi
echo "guest (UEFI, TCG) ready after $((SECONDS - start)) s: $line"
case " $line " in *" efi=1 "*) ;; *) echo "FAIL: the guest sees no EFI firmware"; exit 1 ;; esac
case " $line " in *" tpm=1 "*) ;; *) echo "FAIL: the guest sees no TPM"; exit 1 ;; esac
virsh -c qemu:///system destroy "$dom" >/dev/null
[ -s "$tmp/state/nvram/uefi.fd" ] || { echo "FAIL: no NVRAM copy in STATE/nvram/uefi.fd"; exit 1; }
echo "ok - Firmware=uefi, TPM=2.0: the guest saw EFI and a TPM 2.0 device; its NVRAM is STATE/nvram/uefi.fd"
