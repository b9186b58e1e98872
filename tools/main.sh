#!/usr/bin/env bash
# vmfed's main job on its embedded default.  Until the broker and the
# federation land, that is the policy engine on the shipped example
# federation (examples/etc-vmfed): lint it, then decide a set of requests a
# desktop would make, printing each decision and the rule behind it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

vmfed_install_deps
vmfed_build

ctl="$VMFED_BUILD/ctl/vmfedctl"
cfg="$VMFED_ROOT/examples/etc-vmfed"

echo "== vmfedctl policy lint ($cfg/policy.d)"
"$ctl" policy lint --policy-dir "$cfg/policy.d" --config-dir "$cfg"
echo

decide() {
  local rc=0
  printf '%-58s -> ' "$*"
  "$ctl" policy eval --policy-dir "$cfg/policy.d" --config-dir "$cfg" --active rivendale "$@" || rc=$?
  [ "$rc" -le 2 ] || exit "$rc"
}

echo "== decisions (active persona: rivendale)"
decide rivendale gondor vmfed.Clipboard.Paste
decide rivendale mordor vmfed.Clipboard.Paste
decide rivendale @default vmfed.OpenURL
decide rivendale @dispvm vmfed.OpenFile
decide gondor rivendale vmfed.Launch+org.mozilla.firefox
decide rivendale gondor vmfed.Admin.SwitchPersona
decide @host gondor vmfed.Admin.SwitchPersona
decide netvm rivendale vmfed.Clipboard.Paste
