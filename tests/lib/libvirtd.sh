# shellcheck shell=bash
# Start a system libvirtd for a test when none runs, and stop it afterwards
# only if tests started it and no other test still uses it.  Source it, then:
#
#   libvirtd_ensure || exit $?      # 77: skip (not root, no libvirtd binary)
#   trap 'libvirtd_release' EXIT    # or call it from your own cleanup
#
# Here there is no systemd: `virtlogd -d` and `libvirtd -d` are started by
# hand and `virsh -c qemu:///system version` is polled until it answers
# (about 8 s; the first start on a fresh machine probes QEMU and can take a
# minute).
#
# Several tests (several meson runs, several engineers) may use the daemon
# at once: each registers in $VMFED_LIBVIRTD_RUNDIR/users/ (under a lock),
# and the daemons that tests started (recorded in .../started) are stopped
# by the last user to leave — by the pids they wrote, checked against
# /proc/PID/comm, never by name.  A libvirtd that was running before any
# test is never stopped.

VMFED_LIBVIRTD_RUNDIR=${VMFED_LIBVIRTD_RUNDIR:-/run/vmfed-tests-libvirtd}
VMFED_LIBVIRTD_USER=${VMFED_LIBVIRTD_USER:-$$}

libvirtd_answers() {
  timeout 5 virsh -c qemu:///system version >/dev/null 2>&1
}

# pid from a pidfile when that process is alive and is the named program, else empty.
_libvirtd_pid_of() {
  local f=$1 comm=$2 pid
  [ -r "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null)
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && echo "$pid"
  return 0
}

# Run "$@" holding the registry lock (daemons started meanwhile must not
# inherit it: they would hold it forever).
# ("lock2": a first version of this file let the daemons inherit "lock".)
# Never wait forever: after 5 minutes go on without the lock, loudly.
_LIBVIRTD_LOCK_FD=
_libvirtd_locked() {
  local rc=0
  mkdir -p "$VMFED_LIBVIRTD_RUNDIR/users"
  exec {_LIBVIRTD_LOCK_FD}>"$VMFED_LIBVIRTD_RUNDIR/lock2"
  flock -w 300 "$_LIBVIRTD_LOCK_FD" ||
    echo "libvirtd.sh: $VMFED_LIBVIRTD_RUNDIR/lock2 still held after 300 s; going on without it" >&2
  "$@" || rc=$?
  exec {_LIBVIRTD_LOCK_FD}>&-
  return $rc
}

# /dev/kvm as Debian's udev rule makes it (root:kvm 0660; libvirt's QEMU
# user is in group kvm) when nothing did: a machine without udev may have it
# root-only.  libvirt then probes QEMU as root with KVM, finds at every
# lookup that its QEMU user cannot use KVM, calls the cached capabilities
# outdated and probes all over again: each domain start took ~110 s (seen
# on a fresh CI machine, 2026-12-03).  The tests' guests stay TCG
# (type='qemu'); only the probing is mended.
_libvirtd_kvm_access() {
  [ -c /dev/kvm ] && getent group kvm >/dev/null || return 0
  [ "$(stat -c %G:%a /dev/kvm)" = "root:600" ] || return 0
  if chgrp kvm /dev/kvm && chmod 0660 /dev/kvm; then
    echo "libvirtd.sh: /dev/kvm was root-only; made it root:kvm 0660 as udev would" >&2
  fi
}

_libvirtd_start() {
  local timeout=$1 i pid
  touch "$VMFED_LIBVIRTD_RUNDIR/users/$VMFED_LIBVIRTD_USER"
  _libvirtd_kvm_access
  if libvirtd_answers; then
    return 0
  fi
  mkdir -p /run/libvirt
  if [ -z "$(_libvirtd_pid_of /run/virtlogd.pid virtlogd)" ]; then
    virtlogd -d {_LIBVIRTD_LOCK_FD}>&- || { echo "libvirtd.sh: virtlogd -d failed" >&2; return 1; }
    for i in $(seq 50); do
      pid=$(_libvirtd_pid_of /run/virtlogd.pid virtlogd)
      [ -n "$pid" ] && break
      sleep 0.1
    done
    [ -n "$pid" ] && echo "virtlogd $pid" >> "$VMFED_LIBVIRTD_RUNDIR/started"
  fi
  if [ -z "$(_libvirtd_pid_of /run/libvirtd.pid libvirtd)" ]; then
    _libvirtd_exec || { echo "libvirtd.sh: libvirtd -d failed" >&2; return 1; }
  fi
  local deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt $deadline ]; do
    if libvirtd_answers; then
      pid=$(_libvirtd_pid_of /run/libvirtd.pid libvirtd)
      [ -n "$pid" ] && echo "libvirtd $pid" >> "$VMFED_LIBVIRTD_RUNDIR/started"
      echo "libvirtd.sh: qemu:///system answers after ~$((SECONDS - deadline + timeout)) s" >&2
      # Its first domain definition probes QEMU (a minute, several on a
      # loaded machine): done here, so that it is not inside a test's wait
      # (vmfed's libvirt calls run in a worker and are waited for by the tests).
      i=$SECONDS
      timeout 600 virsh -c qemu:///system domcapabilities --virttype qemu >/dev/null 2>&1 || true
      echo "libvirtd.sh: QEMU capabilities ready after $((SECONDS - i)) s" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "libvirtd.sh: qemu:///system did not answer within $timeout s" >&2
  _libvirtd_diagnose
  return 1
}

libvirtd_ensure() {
  local timeout=${1:-120}
  if [ "$(id -u)" -ne 0 ]; then
    libvirtd_answers && return 0
    echo "libvirtd.sh: no libvirtd and cannot start one (need root)" >&2
    return 77
  fi
  if ! command -v libvirtd >/dev/null || ! command -v virtlogd >/dev/null; then
    libvirtd_answers && return 0
    echo "libvirtd.sh: libvirtd/virtlogd not installed (libvirt-daemon-system)" >&2
    return 77
  fi
  _libvirtd_locked _libvirtd_start "$timeout" || return $?
  libvirtd_sweep_stale
}

_libvirtd_stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

_libvirtd_leave() {
  local u name pid
  rm -f "$VMFED_LIBVIRTD_RUNDIR/users/$VMFED_LIBVIRTD_USER"
  # Forget users that died without leaving.
  for u in "$VMFED_LIBVIRTD_RUNDIR"/users/*; do
    [ -e "$u" ] || continue
    kill -0 "${u##*/}" 2>/dev/null || rm -f "$u"
  done
  if [ -n "$(ls -A "$VMFED_LIBVIRTD_RUNDIR/users")" ] || [ ! -f "$VMFED_LIBVIRTD_RUNDIR/started" ]; then
    return 0
  fi
  # The last user: stop what tests started, libvirtd before virtlogd.
  for name in libvirtd virtlogd; do
    while read -r n pid; do
      [ "$n" = "$name" ] || continue
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && _libvirtd_stop_pid "$pid"
    done < "$VMFED_LIBVIRTD_RUNDIR/started"
  done
  rm -f "$VMFED_LIBVIRTD_RUNDIR/started"
}

libvirtd_release() {
  [ "$(id -u)" -eq 0 ] || return 0
  [ -d "$VMFED_LIBVIRTD_RUNDIR/users" ] || return 0
  _libvirtd_locked _libvirtd_leave
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

# What a real-VM test of an earlier run left behind when it was killed
# before its own cleanup could run (meson gives a timed-out test one second
# between SIGTERM and SIGKILL): the domains vmfed-{rt,bt,e2e,flt}PID-*
# and, of e2e and faults, the "internet" namespace and the bridges named
# after PID — only where process PID is gone, so a running test's are never
# touched.  Called by libvirtd_ensure; a second run passes after a killed one.
libvirtd_sweep_stale() {
  local d pid ns short
  for d in $(virsh -c qemu:///system list --all --name 2>/dev/null | grep -E '^vmfed-(rt|bt|e2e|flt)[0-9]+-' || true); do
    pid=$(echo "$d" | sed -E 's/^vmfed-(rt|bt|e2e|flt)([0-9]+)-.*/\2/')
    [ -d "/proc/$pid" ] && continue
    echo "libvirtd.sh: removing $d, left by dead test process $pid" >&2
    virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    virsh -c qemu:///system undefine --managed-save --nvram "$d" >/dev/null 2>&1 ||
      virsh -c qemu:///system undefine --managed-save "$d" >/dev/null 2>&1 || true
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^vmfed-(e2e|flt)-inet-[0-9]+$' || true); do
    pid=${ns##*-}
    [ -d "/proc/$pid" ] && continue
    echo "libvirtd.sh: removing namespace $ns and its bridges, left by dead test process $pid" >&2
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    short=$((pid % 100000))
    case $ns in
      vmfed-e2e-*) for l in vmfi vmfu vmfb; do ip link del "$l$short" 2>/dev/null || true; done ;;
      vmfed-flt-*) for l in vmfI vmfU vmfB; do ip link del "$l$short" 2>/dev/null || true; done ;;
    esac
  done
}

# Restart the running libvirtd (SIGTERM, wait, `libvirtd -d`, wait until it
# answers): its QEMU processes keep running and are reconnected.  Used by
# the fault-injection test (tests/faults).  The daemon stays "started by
# tests" (stopped by the last user) if and only if it was before.
_libvirtd_restart() {
  local timeout=$1 pid i ours=0 newpid
  pid=$(_libvirtd_pid_of /run/libvirtd.pid libvirtd)
  [ -n "$pid" ] || { echo "libvirtd.sh: no libvirtd to restart" >&2; return 1; }
  if [ -f "$VMFED_LIBVIRTD_RUNDIR/started" ] && grep -qx "libvirtd $pid" "$VMFED_LIBVIRTD_RUNDIR/started"; then
    ours=1
    sed -i "/^libvirtd $pid\$/d" "$VMFED_LIBVIRTD_RUNDIR/started"
  fi
  _libvirtd_stop_pid "$pid"
  _libvirtd_exec || { echo "libvirtd.sh: libvirtd -d failed" >&2; return 1; }
  # A deadline in seconds: each libvirtd_answers may itself wait 5 s (a
  # count of tries let a libvirtd that accepts but does not answer hold the
  # caller for over an hour).
  local deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt $deadline ]; do
    if libvirtd_answers; then
      newpid=$(_libvirtd_pid_of /run/libvirtd.pid libvirtd)
      [ "$ours" = 1 ] && [ -n "$newpid" ] && echo "libvirtd $newpid" >> "$VMFED_LIBVIRTD_RUNDIR/started"
      echo "libvirtd.sh: restarted libvirtd answers after $((SECONDS - deadline + timeout)) s" >&2
      return 0
    fi
    sleep 0.1
  done
  echo "libvirtd.sh: qemu:///system did not answer within $timeout s of the restart" >&2
  _libvirtd_diagnose
  return 1
}

# libvirtd -d, its warnings and errors in $VMFED_LIBVIRTD_LOG (there is no
# journal here); the daemon must not inherit the registry lock.
VMFED_LIBVIRTD_LOG=${VMFED_LIBVIRTD_LOG:-/var/log/libvirt/vmfed-tests-libvirtd.log}
_libvirtd_exec() {
  mkdir -p "$(dirname "$VMFED_LIBVIRTD_LOG")"
  LIBVIRT_LOG_OUTPUTS="3:file:$VMFED_LIBVIRTD_LOG" libvirtd -d {_LIBVIRTD_LOCK_FD}>&-
}

# What a libvirtd that does not answer is doing: its threads' states and
# kernel stacks, and the end of its log.
_libvirtd_diagnose() {
  local pid t
  pid=$(_libvirtd_pid_of /run/libvirtd.pid libvirtd)
  echo "libvirtd.sh: libvirtd pid ${pid:-none}" >&2
  if [ -n "$pid" ]; then
    for t in /proc/"$pid"/task/*; do
      echo "  thread ${t##*/} $(cat "$t/comm" 2>/dev/null) $(awk '{print $3}' "$t/stat" 2>/dev/null) $(cat "$t/wchan" 2>/dev/null)" >&2
    done
  fi
  tail -n 30 "$VMFED_LIBVIRTD_LOG" >&2 2>/dev/null || true
}

libvirtd_restart() {
  [ "$(id -u)" -eq 0 ] || return 77
  _libvirtd_locked _libvirtd_restart "${1:-120}"
}
