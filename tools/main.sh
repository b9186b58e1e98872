#!/usr/bin/env bash
# vmfed's main job on its embedded default: build everything, lint the
# shipped example policy offline, then run the demo (tools/demo.sh): the
# federation of examples/demo on real VMs — netvm up, persona A up, copy,
# switch to persona B, paste, a URL opened in a disposable, a firewall
# refusal, the broker restarted under running VMs, a policy change — each
# step narrated with its time.  It cleans up after itself and can be run
# twice in a row.
set -euo pipefail
case "${1:-}" in
  -h|--help)
    cat <<'TXT'
Usage: tools/main.sh [--help]

Builds vmfed and runs its demo: a federation of real VMs on this machine,
narrated step by step with the time of each.

  1. installs the Debian packages it needs (apt-get; nothing when all are
     there), configures meson in build/ and compiles;
  2. lints the shipped example policy (examples/etc-vmfed) offline;
  3. runs tools/demo.sh on examples/demo: a private D-Bus bus, libvirtd,
     tiny guests under TCG (a Debian kernel, busybox, vmfed's binaries), a
     host bridge and an "internet" network namespace.  netvm up, persona A
     up, copy, switch to persona B, a refused and an allowed paste, B's
     firewall, a URL opened in a disposable, the broker killed and
     restarted under running VMs, a policy change, switch back.

Time: the first run downloads packages and a Debian cloud kernel and
compiles (a few minutes, depending on the network); after that the demo
takes about a minute.  It removes everything it started, also on failure,
and can be run again at once.  When a step fails it says why, and where
the logs are (build/meson-logs/demo-failed/).

Run as root, or as a user with sudo (it starts again under sudo; build/
stays yours).  Needs about 2 GB of RAM and the permission to run VMs
(libvirt, qemu:///system).  The whole test suite: tools/test.sh.
TXT
    exit 0 ;;
  "") ;;
  *) echo "tools/main.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
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
