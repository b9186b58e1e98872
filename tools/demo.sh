#!/usr/bin/env bash
# vmfed's demo: the federation of examples/demo, for real, narrated step by
# step with timings.  No configuration from you: a private D-Bus bus, the
# system libvirtd as the project's tests start it (tests/lib/libvirtd.sh),
# vmfed's tiny test guests (Debian kernel + busybox + vmfed's own binaries)
# under TCG, a host bridge and an "internet" network namespace that exist
# only while the demo runs.  Everything it starts is removed at the end, also
# when a step fails, so it can be run again at once.
#
# Usage: tools/demo.sh (as root)      (after tools/setup.sh; tools/main.sh does both)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "vmfed demo: needs root (libvirt's qemu:///system, bridges, a network namespace)" >&2
  exit 1
fi

cat <<'TXT'
== vmfed demo: a federation of VMs on this machine ==
   netvm      service VM: vmfed-netd routes and firewalls every other VM (nftables, table inet vmfed)
   rivendale  persona A  } share one exclusive device (a GPU, faked here):
   gondor     persona B  } never running at the same time
   dvm        template of throw-away disposable VMs
   vmfedd     the broker on the host: policy (examples/demo/policy.d), libvirt, D-Bus
   Guests boot under TCG (emulation), so each boot takes a few seconds.
   Commands inside guests are typed into their serial console, as a person would.

TXT
"$VMFED_ROOT/tests/e2e/test-e2e.sh" "$VMFED_BUILD" --demo
