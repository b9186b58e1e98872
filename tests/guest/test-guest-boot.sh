#!/usr/bin/env bash
# Build the tiny test guest and boot it under QEMU (TCG): the agent port
# (virtio-serial, name org.vmfed.agent.0) must reach a unix socket on the
# host, and the ACPI power button must power the guest off cleanly — the
# two things vmfed's lifecycle relies on.
set -euo pipefail

build_root=${VMFED_BUILD_ROOT:?}
here=$(cd "$(dirname "$0")" && pwd)
guest_dir=$("$here/guest-dir.sh" "$build_root")

"$here/build-guest.sh" "$guest_dir" --flavor base >&2

tmp=$(mktemp -d /tmp/vmfed-guest-boot.XXXXXX)
qemu_pid= sock_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill -9 "$qemu_pid" 2>/dev/null || true
  [ -n "$sock_pid" ] && kill "$sock_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

socat -u "UNIX-LISTEN:$tmp/agent.sock" "CREATE:$tmp/agent.out" &
sock_pid=$!
for _ in $(seq 50); do [ -S "$tmp/agent.sock" ] && break; sleep 0.05; done

qemu-system-x86_64 -machine q35,accel=tcg -m 256 -smp 1 -nographic -no-reboot \
  -kernel "$guest_dir/vmlinuz" -initrd "$guest_dir/initrd-base.img" \
  -append "console=ttyS0 quiet panic=-1 vmfed.name=boottest vmfed.selftest=1" \
  -device virtio-serial-pci \
  -chardev "socket,id=agent,path=$tmp/agent.sock" \
  -device virtserialport,chardev=agent,name=org.vmfed.agent.0 \
  -monitor "unix:$tmp/monitor.sock,server=on,wait=off" \
  > "$tmp/console.log" 2>&1 &
qemu_pid=$!

ready=
for _ in $(seq 600); do
  if grep -q "vmfed-guest-ready boottest" "$tmp/agent.out" 2>/dev/null; then ready=1; break; fi
  kill -0 "$qemu_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "FAIL: no ready line from the guest's agent port within 60 s" >&2
  tail -n 30 "$tmp/console.log" >&2
  exit 1
fi
echo "agent port: $(cat "$tmp/agent.out")"

echo system_powerdown | socat - "UNIX-CONNECT:$tmp/monitor.sock" > /dev/null
for _ in $(seq 300); do
  kill -0 "$qemu_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$qemu_pid" 2>/dev/null; then
  echo "FAIL: guest ignored the ACPI power button for 30 s" >&2
  tail -n 30 "$tmp/console.log" >&2
  exit 1
fi
wait "$qemu_pid" || true
qemu_pid=
grep -q "reboot: Power down" "$tmp/console.log" || { echo "FAIL: guest did not power down cleanly" >&2; exit 1; }
echo "guest powered off cleanly"
