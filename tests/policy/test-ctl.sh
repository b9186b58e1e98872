#!/usr/bin/env bash
# vmfedctl policy eval / lint on the example federation and on broken
# copies of it: decisions, exit statuses, JSON, diagnostics.
set -euo pipefail
ctl=$1
src=$2
cfg=$src/examples/etc-vmfed
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect STATUS STDOUT -- ARGS...
expect() {
  local want_rc=$1 want_out=$2 rc=0 out
  shift 3
  out=$("$ctl" "$@" 2>"$tmp/stderr") || rc=$?
  [ "$rc" = "$want_rc" ] || fail "vmfedctl $*: exit $rc, want $want_rc; stderr: $(cat "$tmp/stderr")"
  [ "$out" = "$want_out" ] || fail "vmfedctl $*: printed '$out', want '$want_out'"
  echo "ok: vmfedctl $* -> $rc"
}

P=(--policy-dir "$cfg/policy.d" --config-dir "$cfg")
expect 0 "OK: 26 rules in 3 files, 5 VMs" -- policy lint "${P[@]}"
# file copy: never into a service VM, else a question
expect 1 "deny: denied by policy (rule 30-user.policy:31)" -- policy eval "${P[@]}" rivendale netvm vmfed.FileCopy
expect 2 "ask target=gondor (rule 30-user.policy:32)" -- policy eval "${P[@]}" rivendale gondor vmfed.FileCopy
expect 0 "allow target=gondor notify=no (rule 30-user.policy:9)" -- policy eval "${P[@]}" rivendale gondor vmfed.Clipboard.Paste
expect 2 "ask target=mordor (rule 30-user.policy:8)" -- policy eval "${P[@]}" rivendale mordor vmfed.Clipboard.Paste
expect 0 "allow target=@dispvm:dispvm-default (rule 30-user.policy:14)" -- policy eval "${P[@]}" rivendale @default vmfed.OpenURL
expect 1 "deny: denied by policy (rule 10-admin.policy:6)" -- policy eval "${P[@]}" rivendale gondor vmfed.Admin.SwitchPersona
expect 0 "allow target=gondor (rule 10-admin.policy:5)" -- policy eval "${P[@]}" @host gondor vmfed.Admin.SwitchPersona
expect 2 "ask target=rivendale default_target=rivendale (rule 30-user.policy:25)" -- policy eval "${P[@]}" gondor rivendale vmfed.Launch+org.mozilla.firefox
expect 1 "deny: no rule matches (default deny)" -- policy eval "${P[@]}" @host rivendale vmfed.Clipboard.Paste
# @active: with gondor running, Mordor's paste suggests gondor
expect 2 "ask target=rivendale default_target=gondor (rule 30-user.policy:7)" -- policy eval "${P[@]}" --active gondor mordor rivendale vmfed.Clipboard.Paste
expect 2 "ask target=rivendale (rule 30-user.policy:7)" -- policy eval "${P[@]}" mordor rivendale vmfed.Clipboard.Paste
# default directories: --config-dir alone finds policy.d/
expect 0 "allow target=gondor notify=no (rule 30-user.policy:9)" -- policy eval --config-dir "$cfg" rivendale gondor vmfed.Clipboard.Paste

# JSON
expect 0 '{"action": "allow", "target": "gondor", "default_target": null, "rule": "30-user.policy:9", "autostart": true, "notify": false, "reason": null}' -- policy eval --json "${P[@]}" rivendale gondor vmfed.Clipboard.Paste
expect 1 '{"action": "deny", "target": null, "default_target": null, "rule": null, "autostart": true, "notify": true, "reason": "unknown target VM"}' -- policy eval "${P[@]}" --json rivendale isengard vmfed.OpenURL
expect 2 '{"action": "ask", "target": "rivendale", "default_target": "rivendale", "rule": "30-user.policy:25", "autostart": true, "notify": true, "reason": null}' -- policy eval --json "${P[@]}" gondor rivendale vmfed.Launch+org.mozilla.firefox

# usage errors
expect 3 "" -- policy eval "${P[@]}" rivendale gondor
expect 3 "" -- policy eval "${P[@]}" --frobnicate rivendale gondor x
expect 3 "" -- policy eval "${P[@]}" --active isengard rivendale gondor x
expect 3 "" -- policy eval "${P[@]}" --active netvm rivendale gondor x
expect 3 "" -- policy eval "${P[@]}" rivendale gondor 'bad service'
expect 3 "" -- policy lint "${P[@]}" extra
"$ctl" policy eval --help | grep -q "Exit status: 0 allow" || fail "eval --help"

# a broken policy: eval refuses (3) with file:line:column diagnostics; lint lists every error (1)
cp -r "$cfg" "$tmp/cfg"
printf 'vmfed.OpenURL * @anyvm @anyvm alow\nvmfed.OpenURL * @nobody @anyvm allow\n' > "$tmp/cfg/policy.d/50-broken.policy"
expect 3 "" -- policy eval --config-dir "$tmp/cfg" rivendale gondor vmfed.Clipboard.Paste
grep -q "policy.d/50-broken.policy:1:31: unknown action 'alow'" "$tmp/stderr" || fail "eval diagnostics: $(cat "$tmp/stderr")"
expect 1 "" -- policy lint --config-dir "$tmp/cfg"
grep -q "50-broken.policy:1:31: unknown action" "$tmp/stderr" || fail "lint diagnostic 1"
grep -q "50-broken.policy:2:17: unknown token '@nobody'" "$tmp/stderr" || fail "lint diagnostic 2"
grep -q "^2 errors$" "$tmp/stderr" || fail "lint count: $(cat "$tmp/stderr")"

# typos are warnings: lint still succeeds but says where
cp -r "$cfg" "$tmp/warn"
printf 'vmfed.OpenURL * rivendal @anyvm allow target=gondr\nvmfed.OpenURL * @tag:gamez @dispvm:gondor deny\n' > "$tmp/warn/policy.d/50-typos.policy"
expect 0 "OK: 28 rules in 4 files, 5 VMs; 4 warnings" -- policy lint --config-dir "$tmp/warn"
grep -q "policy.d/50-typos.policy:1:17: warning: source 'rivendal' is not a known VM" "$tmp/stderr" || fail "warning 1: $(cat "$tmp/stderr")"
grep -q "50-typos.policy:1:46: warning: target= 'gondr' is not a known VM; the redirect is always refused" "$tmp/stderr" || fail "warning 2"
grep -q "50-typos.policy:2:17: warning: source '@tag:gamez': no VM has tag 'gamez'" "$tmp/stderr" || fail "warning 3"
grep -q "50-typos.policy:2:28: warning: target '@dispvm:gondor': 'gondor' is not a disposable template" "$tmp/stderr" || fail "warning 4"

# a broken VM definition: eval refuses, lint reports it with the policy's errors
rm "$tmp/cfg/policy.d/50-broken.policy"
printf '[VM]\nRole=persona\nMemroy=4G\n' > "$tmp/cfg/vms.d/rohan.vm"
expect 3 "" -- policy eval --config-dir "$tmp/cfg" rivendale gondor vmfed.Clipboard.Paste
grep -q "vms.d/rohan.vm:3: key Memroy: unknown key" "$tmp/stderr" || fail "vm diagnostic: $(cat "$tmp/stderr")"
expect 1 "" -- policy lint --config-dir "$tmp/cfg"
grep -q "vms.d/rohan.vm:3: key Memroy" "$tmp/stderr" || fail "lint vm diagnostic"
echo "all ctl checks passed"
