#!/usr/bin/env bash
# vmfedctl vm xml: the domain XML of the example federation's VMs, offline:
# firmware, TPM, stream ports, paths from --state-dir, the bridge, schema validation
# (virt-xml-validate, when installed), exit statuses and errors.
set -euo pipefail
ctl=$1
src=$2
cfg=$src/examples/etc-vmfed
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# run STATUS ARGS...: stdout in $tmp/out, stderr in $tmp/err
run() {
  local want=$1 rc=0
  shift
  "$ctl" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" = "$want" ] || fail "vmfedctl $*: exit $rc, want $want; stderr: $(cat "$tmp/err")"
  echo "ok: vmfedctl $* -> $rc"
}
has() { grep -qF -- "$1" "$tmp/out" || fail "output lacks: $1"; }
hasnt() { ! grep -qF -- "$1" "$tmp/out" || fail "output has: $1"; }
err_has() { grep -qF -- "$1" "$tmp/err" || fail "stderr lacks: $1 (stderr: $(cat "$tmp/err"))"; }
validate() {
  if command -v virt-xml-validate >/dev/null; then
    virt-xml-validate "$tmp/out" domain >/dev/null || fail "not a valid domain: $(cat "$tmp/out")"
  else
    echo "virt-xml-validate not installed (libvirt-clients): schema not checked"
  fi
}

# Mordor: UEFI with Secure Boot and a TPM; its NVRAM under the state directory.
run 0 vm xml --config-dir "$cfg" --state-dir /srv/vmfed mordor
has "<name>vmfed-mordor</name>"
has "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.secboot.fd</loader>"
has "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>/srv/vmfed/nvram/mordor.fd</nvram>"
has "<smm state='on'/>"
has "<tpm model='tpm-crb'>"
has "<backend type='emulator' version='2.0'/>"
has "/srv/vmfed/channels/mordor.sock"
# Streams= left out: the default 8 stream ports, QEMU listening beside the agent channel.
has "<source mode='bind' path='/srv/vmfed/channels/mordor.stream.0.sock'/>"
has "<target type='virtio' name='org.vmfed.stream.0'/>"
has "<source mode='bind' path='/srv/vmfed/channels/mordor.stream.7.sock'/>"
has "<target type='virtio' name='org.vmfed.stream.7'/>"
hasnt "org.vmfed.stream.8"
[ "$(grep -c "name='org.vmfed.stream\." "$tmp/out")" = 8 ] || fail "not 8 stream ports"
grep -qE "<uuid>[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}</uuid>" "$tmp/out" || fail "no stable UUID"
hasnt "<source bridge="
validate
cp "$tmp/out" "$tmp/mordor1.xml"
# Offline and deterministic: the same XML again.
run 0 vm xml --config-dir "$cfg" --state-dir /srv/vmfed mordor
cmp -s "$tmp/out" "$tmp/mordor1.xml" || fail "second run differs"

# With the broker's bridge: the NIC on its netvm's bridge, isolated; a prefix.
run 0 vm xml --config-dir "$cfg" --bridge vmfedbr0 --domain-prefix vmfed-x- mordor
has "<name>vmfed-x-mordor</name>"
has "<source bridge='vmfbr-netvm'/>"
has "<port isolated='yes'/>"
validate

# Gondor: BIOS, no TPM, none of it in the XML.
run 0 vm xml --config-dir "$cfg" gondor
hasnt "<loader"
hasnt "<nvram"
hasnt "<tpm"
validate

# HideHypervisor, Firmware=uefi on a copy.
cp -r "$cfg" "$tmp/cfg"
printf '[VM]\nRole=app\nDisk=/var/lib/vmfed/x.img\nFirmware=uefi\nHideHypervisor=true\nNetVM=\n' >"$tmp/cfg/vms.d/shire.vm"
run 0 vm xml --config-dir "$tmp/cfg" shire
has "OVMF_CODE_4M.fd</loader>"
has "<feature policy='disable' name='hypervisor'/>"
validate
# Streams=0: no stream port; Streams=28: all of them, still a valid domain.
printf '[VM]\nRole=app\nDisk=/var/lib/vmfed/x.img\nNetVM=\nStreams=0\n' >"$tmp/cfg/vms.d/shire.vm"
run 0 vm xml --config-dir "$tmp/cfg" shire
has "channels/shire.sock"
hasnt "org.vmfed.stream."
validate
printf '[VM]\nRole=app\nDisk=/var/lib/vmfed/x.img\nNetVM=\nStreams=28\n' >"$tmp/cfg/vms.d/shire.vm"
run 0 vm xml --config-dir "$tmp/cfg" shire
has "channels/shire.stream.27.sock'/>"
has "<target type='virtio' name='org.vmfed.stream.27'/>"
validate

# Errors: no such VM, a disposable template (1); a broken file with file:line, usage (3).
run 1 vm xml --config-dir "$cfg" isengard
err_has "no VM named 'isengard' in vms.d/"
run 1 vm xml --config-dir "$cfg" dispvm-default
err_has "dispvm-default is a disposable template"
printf '[VM]\nRole=app\nDisk=/var/lib/vmfed/x.img\nFirmware=efi\n' >"$tmp/cfg/vms.d/shire.vm"
run 3 vm xml --config-dir "$tmp/cfg" mordor
err_has "vms.d/shire.vm:4: key Firmware: 'efi' is not one of bios, uefi, uefi-secure-boot"
printf '[VM]\nRole=app\nDisk=/var/lib/vmfed/x.img\nTPM=1.2\n' >"$tmp/cfg/vms.d/shire.vm"
run 3 vm xml --config-dir "$tmp/cfg" mordor
err_has "vms.d/shire.vm:4: key TPM: '1.2' is not one of none, 2.0"
printf '[VM]\nRole=app\nDisk=/var/lib/vmfed/x.img\nStreams=29\n' >"$tmp/cfg/vms.d/shire.vm"
run 3 vm xml --config-dir "$tmp/cfg" mordor
err_has "vms.d/shire.vm:4: key Streams: '29' is not a number of stream ports from 0 to 28"
printf '[VM]\nRole=app\nDisk=/var/lib/vmfed/x.img\nStreams=abc\n' >"$tmp/cfg/vms.d/shire.vm"
run 3 vm xml --config-dir "$tmp/cfg" mordor
err_has "vms.d/shire.vm:4: key Streams: 'abc' is not a number of stream ports from 0 to 28"
run 3 vm xml --config-dir "$cfg"
run 3 vm xml --config-dir "$cfg" mordor gondor
run 3 vm xml --frobnicate mordor
run 3 vm xml --domain-prefix other- --config-dir "$cfg" mordor
run 0 vm xml --help
has "Usage: vmfedctl vm xml"
run 3 --host example.org vm xml mordor
err_has "reads local files, --host does not apply"
echo "all ok"
