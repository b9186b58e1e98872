#!/usr/bin/env bash
# Run as root inside the booted Debian 12 guest of test-booted-host.sh, with
# the built .deb files in the current directory.  Prints "ok - WHAT" per
# check and stops at the first failure ("FAIL: WHAT" and what was seen).
# Users: member (group vmfed), outsider (nothing), third (polkit rule).
set -uo pipefail
export LC_ALL=C.UTF-8 SYSTEMD_PAGER= PAGER=cat MANPAGER=cat
ok() { echo "ok - $*"; }
fail() { echo "FAIL: $*"; exit 1; }
# check WHAT CMD...: CMD must succeed.
check() { local what=$1; shift; local out; out=$("$@" 2>&1) || { echo "$out"; fail "$what"; }; ok "$what"; }
BUS=(org.vmfed.Federation1 /org/vmfed/Federation1 org.vmfed.Federation1.Manager)
as() { local u=$1; shift; runuser -u "$u" -- "$@"; }
# denied USER WHAT: Manager.Reload by USER must fail with AccessDenied
# from the broker (busctl does not print error names; dbus-send does).
denied() {
  local u=$1 what=$2 out
  out=$(as "$u" busctl --system call "${BUS[@]}" Reload 2>&1) && fail "$what: $u's Reload succeeded: $out"
  out=$(as "$u" dbus-send --system --print-reply --dest=org.vmfed.Federation1 /org/vmfed/Federation1 \
        org.vmfed.Federation1.Manager.Reload 2>&1) && fail "$what: $u's Reload succeeded: $out"
  echo "$out" | grep -q "^Error org.vmfed.Federation1.Error.AccessDenied" || fail "$what: $u's Reload: $out"
  ok "$what: $u's Reload: $out"
}

# Offline: the guest has no route out (QEMU restrict=on) and no package lists
# (mmdebstrap cleans them): every dependency must be installed already.
# (--no-download would refuse the local .deb itself: apt "downloads" it.)
echo "== install (offline)"
check "apt-get install ./vmfed_*.deb" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./vmfed_*.deb
check "group vmfed exists" getent group vmfed
[ "$(stat -c %G:%a /var/lib/vmfed/channels)" = libvirt-qemu:750 ] || fail "channels/ is $(stat -c %U:%G:%a /var/lib/vmfed/channels)"
ok "/var/lib/vmfed/channels is libvirt-qemu:750"
[ "$(systemctl is-enabled vmfedd)" = enabled ] || fail "vmfedd is $(systemctl is-enabled vmfedd)"
[ -L /etc/systemd/system/dbus-org.vmfed.Federation1.service ] || fail "no alias dbus-org.vmfed.Federation1.service"
ok "vmfedd enabled, with its D-Bus alias"

for u in member outsider third; do
  id "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
  install -d -m 0700 -o "$u" -g "$u" "/home/$u/.ssh"
  install -m 0600 -o "$u" -g "$u" /root/.ssh/authorized_keys "/home/$u/.ssh/authorized_keys"
done
usermod -a -G vmfed member
echo 'third:vmfed-third-pw' | chpasswd
mkdir -p /etc/vmfed/vms.d /etc/vmfed/policy.d
cp -r ./etc-vmfed/policy.d/. /etc/vmfed/policy.d/

echo "== systemd"
systemctl stop vmfedd
check "systemctl start vmfedd" systemctl start vmfedd
[ "$(systemctl is-active vmfedd)" = active ] || fail "vmfedd is $(systemctl is-active vmfedd)"
[ "$(systemctl show -P Type vmfedd)" = dbus ] || fail "Type=$(systemctl show -P Type vmfedd)"
ok "vmfedd active (Type=dbus, name org.vmfed.Federation1 taken)"
[ "$(stat -c %a /var/lib/vmfed)" = 755 ] || fail "/var/lib/vmfed is $(stat -c %a /var/lib/vmfed) after start"
ok "/var/lib/vmfed stays 0755 (QEMU reaches channels/)"

systemctl stop vmfedd
[ "$(systemctl is-active vmfedd)" = inactive ] || fail "vmfedd still $(systemctl is-active vmfedd) after stop"
check "D-Bus activation: outsider calls ListVMs on a stopped broker" as outsider busctl --system call "${BUS[@]}" ListVMs
[ "$(systemctl is-active vmfedd)" = active ] || fail "activation did not start vmfedd ($(systemctl is-active vmfedd))"
ok "vmfedd activated by the call"

echo "== bus policy and authorization"
check "outsider reads (Version property)" as outsider busctl --system get-property "${BUS[@]}" Version
check "outsider reads (vmfedctl vms)" as outsider vmfedctl vms
check "root changes (Reload)" busctl --system call "${BUS[@]}" Reload
check "member of vmfed changes (Reload)" as member busctl --system call "${BUS[@]}" Reload
denied outsider "not root, not in vmfed, no polkit rule"
out=$(as outsider dbus-send --system --print-reply --dest=org.vmfed.Federation1 /org/vmfed/Federation1 \
      org.freedesktop.DBus.Properties.Set string:org.vmfed.Federation1.Manager string:Version variant:string:x 2>&1) \
  && fail "outsider set a property: $out"
echo "$out" | grep -q "^Error org.freedesktop.DBus.Error.AccessDenied" || fail "outsider's Properties.Set: $out"
ok "the bus policy refuses the outsider's Properties.Set: $out"

echo "== polkit: a rule grants 'third' after authenticating (pkttyagent)"
systemctl is-active -q polkit || fail "polkit not started with vmfedd (Wants=polkit.service)"
ok "polkit running (started with vmfedd)"
denied third "before the rule"
cat > /etc/polkit-1/rules.d/50-vmfed-test.rules <<'RULES'
polkit.addRule(function(action, subject) {
        if (action.id == "org.vmfed.manage" && subject.user == "third")
                return polkit.Result.AUTH_SELF;
});
RULES
sleep 2   # polkitd reloads rules on inotify
denied third "with the rule, without an agent"
# The agent serves the shell's pid, which exec hands to busctl; the password
# arrives on the agent's terminal (script's pty) once it asks.
out=$( (sleep 4; echo vmfed-third-pw) | as third script -qec \
  'pkttyagent --process $$ & sleep 2; exec busctl --system --allow-interactive-authorization=yes call org.vmfed.Federation1 /org/vmfed/Federation1 org.vmfed.Federation1.Manager Reload' /dev/null 2>&1) \
  || fail "third with pkttyagent: $out"
ok "third with pkttyagent and the password: Reload allowed"
rm -f /etc/polkit-1/rules.d/50-vmfed-test.rules

echo "== reload, journal"
pid=$(systemctl show -P MainPID vmfedd)
since=$(date '+%Y-%m-%d %H:%M:%S')
check "systemctl reload vmfedd" systemctl reload vmfedd
sleep 1
[ "$(systemctl show -P MainPID vmfedd)" = "$pid" ] || fail "reload restarted vmfedd"
journalctl -u vmfedd --since "$since" | grep -q "SIGHUP: reloading" || fail "no 'SIGHUP: reloading' in the journal"
ok "reload: same pid, 'SIGHUP: reloading' logged"
uid=$(id -u outsider)
journalctl VMFED_AUDIT=1 VMFED_DECISION=deny -o verbose > /tmp/audit.txt
for f in VMFED_REQUEST_ID= VMFED_SOURCE=@host "VMFED_CALLER=uid=$uid" VMFED_TARGET=@host VMFED_SERVICE= VMFED_RULE=; do
  grep -q "$f" /tmp/audit.txt || { cat /tmp/audit.txt; fail "journalctl VMFED_AUDIT=1: no $f"; }
done
ok "journalctl VMFED_AUDIT=1 VMFED_DECISION=deny: $(grep -c 'VMFED_AUDIT=1' /tmp/audit.txt) records with their fields"
journalctl VMFED_AUDIT=1 -o verbose | grep -q "VMFED_RULE=polkit$" || fail "no audit record allowed by polkit"
ok "the polkit grant is audited (VMFED_RULE=polkit)"

echo "== systemd-analyze, man"
out=$(systemd-analyze verify /lib/systemd/system/vmfedd.service 2>&1 | grep -i vmfed) && { echo "$out"; fail "systemd-analyze verify vmfedd.service"; }
ok "systemd-analyze verify: nothing about vmfedd"
line=$(systemd-analyze security vmfedd 2>&1 | tail -1)
echo "   $line"
score=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
awk -v s="$score" 'BEGIN { exit !(s != "" && s < 4.0) }' || fail "exposure '$score' (the unit says 2.6)"
ok "systemd-analyze security vmfedd: $score"
man vmfedd 2>/dev/null | grep -q "vmfed federation broker" || fail "man vmfedd"
man 1 vmfedctl 2>/dev/null | grep -q -- "--host" || fail "man vmfedctl"
ok "man vmfedd, man vmfedctl"
echo "GUEST-CHECKS-PASSED"
