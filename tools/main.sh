#!/usr/bin/env bash
# vmfed's main job on its embedded default: build everything, lint the
# shipped example policy offline, then run the demo (tools/demo.sh): the
# federation of examples/demo on real VMs — netvm up, persona A up, copy,
# switch to persona B, paste, a URL opened in a disposable, a firewall
# refusal, the broker restarted under running VMs, a policy change — each
# step narrated with its time.  It cleans up after itself and can be run
# twice in a row.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
vmfed_as_root "$0" "$@"
trap vmfed_restore_owner EXIT

vmfed_install_deps
vmfed_build

ctl="$VMFED_BUILD/ctl/vmfedctl"
cfg="$VMFED_ROOT/examples/etc-vmfed"

echo "== vmfedctl policy lint ($cfg/policy.d)"
"$ctl" policy lint --policy-dir "$cfg/policy.d" --config-dir "$cfg"
echo

"$VMFED_ROOT/tools/demo.sh"
