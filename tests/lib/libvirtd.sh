# shellcheck shell=bash
# Start a system libvirtd for a test when none runs, and stop it afterwards
# only if this test started it.  Source it, then:
#
#   libvirtd_ensure || exit 77      # 77: skip (not root, no libvirtd binary)
#   trap 'libvirtd_release' EXIT    # or call it from your own cleanup
#
# Here there is no systemd: `virtlogd -d` and `libvirtd -d` are started by
# hand and `virsh -c qemu:///system version` is polled until it answers
# (about 8 s; the first start on a fresh machine probes QEMU and can take a
# minute).  Only processes started here are stopped, by the pids they
# wrote, never by name.

VMFED_LIBVIRTD_STARTED=${VMFED_LIBVIRTD_STARTED:-}
VMFED_VIRTLOGD_STARTED=${VMFED_VIRTLOGD_STARTED:-}
VMFED_LIBVIRTD_PID=
VMFED_VIRTLOGD_PID=

libvirtd_answers() {
  timeout 5 virsh -c qemu:///system version >/dev/null 2>&1
}

# pid from a pidfile when that process is alive, else empty.
_libvirtd_pid_of() {
  local f=$1 pid
  [ -r "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

libvirtd_ensure() {
  local timeout=${1:-120} i
  if libvirtd_answers; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v libvirtd >/dev/null || ! command -v virtlogd >/dev/null; then
    echo "libvirtd.sh: no libvirtd and cannot start one (need root, libvirt-daemon-system)" >&2
    return 77
  fi
  mkdir -p /run/libvirt
  if [ -z "$(_libvirtd_pid_of /run/virtlogd.pid)" ]; then
    virtlogd -d || { echo "libvirtd.sh: virtlogd -d failed" >&2; return 1; }
    for i in $(seq 50); do
      VMFED_VIRTLOGD_PID=$(_libvirtd_pid_of /run/virtlogd.pid)
      [ -n "$VMFED_VIRTLOGD_PID" ] && break
      sleep 0.1
    done
    VMFED_VIRTLOGD_STARTED=1
  fi
  if [ -z "$(_libvirtd_pid_of /run/libvirtd.pid)" ]; then
    libvirtd -d || { echo "libvirtd.sh: libvirtd -d failed" >&2; return 1; }
    VMFED_LIBVIRTD_STARTED=1
  fi
  for i in $(seq $((timeout * 2))); do
    if libvirtd_answers; then
      VMFED_LIBVIRTD_PID=$(_libvirtd_pid_of /run/libvirtd.pid)
      echo "libvirtd.sh: qemu:///system answers after ~$((i / 2)) s" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "libvirtd.sh: qemu:///system did not answer within $timeout s" >&2
  return 1
}

_libvirtd_stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

libvirtd_release() {
  if [ -n "$VMFED_LIBVIRTD_STARTED" ]; then
    _libvirtd_stop_pid "${VMFED_LIBVIRTD_PID:-$(_libvirtd_pid_of /run/libvirtd.pid)}"
    VMFED_LIBVIRTD_STARTED=
  fi
  if [ -n "$VMFED_VIRTLOGD_STARTED" ]; then
    _libvirtd_stop_pid "${VMFED_VIRTLOGD_PID:-$(_libvirtd_pid_of /run/virtlogd.pid)}"
    VMFED_VIRTLOGD_STARTED=
  fi
}

# Destroy and undefine every domain whose name starts with $1 (with saved state).
libvirtd_remove_domains() {
  local prefix=$1 d
  [ -n "$prefix" ] || return 0
  for d in $(virsh -c qemu:///system list --all --name 2>/dev/null | grep "^$prefix" || true); do
    virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    virsh -c qemu:///system undefine --managed-save --nvram "$d" >/dev/null 2>&1 ||
      virsh -c qemu:///system undefine --managed-save "$d" >/dev/null 2>&1 || true
  done
}
