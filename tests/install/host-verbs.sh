# Sourced by test-booted-host.sh: host_verbs HOST:PORT runs every bus verb of
# vmfedctl with --host against the booted guest (users root, member: group
# vmfed, outsider: neither) and checks that each gives what the same command
# gives inside the guest, and that changes land there.  Needs g() (ssh as
# root into the guest), $tmp and $VMFEDCTL (this build's vmfedctl).

# remote USER ARGS...: vmfedctl --host USER@HOST ARGS..., output and "rc=N".
remote() { local u=$1; shift; "$VMFEDCTL" --host "$u@$H" "$@" 2>&1; echo "rc=$?"; }
# inguest USER ARGS...: the same command run in the guest by USER.
inguest() {
  local u=$1; shift
  g "runuser -u $u -- vmfedctl $(printf '%q ' "$@") 2>&1; echo rc=\$?"
}
# same USER ARGS...: remote and in-guest outputs must be equal.
same() {
  local u=$1; shift
  local r l
  r=$(remote "$u" "$@"); l=$(inguest "$u" "$@")
  if [ "$r" != "$l" ]; then
    printf 'remote:\n%s\nin the guest:\n%s\n' "$r" "$l"
    echo "FAIL: vmfedctl --host $u@… $* differs from the guest's own"; exit 1
  fi
  echo "ok - --host $u: $* ($(echo "$r" | tail -1))"
}
# expect RC USER ARGS...: vmfedctl --host exits with RC.
expect() {
  local rc=$1 u=$2; shift 2
  local r; r=$(remote "$u" "$@")
  [ "$(echo "$r" | tail -1)" = "rc=$rc" ] || { echo "$r"; echo "FAIL: vmfedctl --host $u@… $*: want rc=$rc"; exit 1; }
  echo "ok - --host $u: $* (rc=$rc)"
  last=$r
}

host_verbs() {
  H=$1
  local kernel gen0
  kernel=$(g 'ls /boot/vmlinuz-* | head -n1')
  printf '[VM]\nRole=persona\nMemory=128M\nVCPUs=1\nAccel=tcg\nKernel=%s\nAutostart=no\n' "$kernel" > "$tmp/t1.vm"
  printf 'vmfed.Admin.ListVMs  +  @host  @host  allow\n' > "$tmp/40-test.policy"

  expect 0 root vm add t1 "$tmp/t1.vm"
  gen0=$(g "vmfedctl generations --json" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["generation"])')
  g 'vmfedctl vms' | grep -q '^t1 ' || { g 'vmfedctl vms'; echo "FAIL: t1 not in the guest's vms after vm add --host"; exit 1; }
  echo "ok - t1 added over --host is in the guest's vmfedctl vms"
  for v in "status" "vms" "generations" "policy files" "ask list"; do
    # shellcheck disable=SC2086
    same root $v
    same outsider $v
  done
  expect 0 root policy replace 40-test.policy "$tmp/40-test.policy"
  same root policy get 40-test.policy
  same outsider policy evaluate @host @host vmfed.Admin.ListVMs
  same root stop t1
  same root start no-such-vm
  same root switch no-such-vm
  expect 0 root rollback "$gen0"
  g 'vmfedctl policy files' | grep -q '40-test.policy' && { echo "FAIL: 40-test.policy still there after rollback --host $gen0"; exit 1; }
  echo "ok - rollback over --host to generation $gen0 took 40-test.policy away"
  expect 0 member vm remove t1
  g 'vmfedctl vms' | grep -q '^t1 ' && { echo "FAIL: t1 still there after vm remove --host as member"; exit 1; }
  expect 0 member vm add t1 "$tmp/t1.vm"
  expect 0 root policy replace 40-test.policy "$tmp/40-test.policy"
  expect 0 root policy remove 40-test.policy
  # The outsider reads, and is refused every change (stop of a stopped VM
  # would be a no-op, answered before authorization: start instead).
  expect 0 outsider vms
  for v in "vm add t2 $tmp/t1.vm" "vm remove t1" "policy replace 41-x.policy $tmp/40-test.policy" "start t1" "rollback $gen0"; do
    # shellcheck disable=SC2086
    expect 1 outsider $v
    echo "$last" | grep -q AccessDenied || { echo "$last"; echo "FAIL: outsider's $v: not AccessDenied"; exit 1; }
  done
  g 'vmfedctl vms' | grep -q '^t1 ' || { echo "FAIL: t1 gone after the outsider's refused remove"; exit 1; }
  expect 0 root vm remove t1
  expect 3 root policy lint
  # busctl --host, as docs/packaging.md shows it.
  busctl --host "root@$H" call org.vmfed.Federation1 /org/vmfed/Federation1 org.vmfed.Federation1.Manager ListVMs \
    || { echo "FAIL: busctl --host"; exit 1; }
  echo "ok - busctl --host root@…: ListVMs"
}
