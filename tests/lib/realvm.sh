# shellcheck shell=bash
# What the whole-federation tests (tests/e2e, tests/faults) set up outside
# the federation, and remove afterwards, also on failure.  Source it after
# tests/lib/libvirtd.sh, then:
#
#   realvm_init TAG L      # names of this run; L: the letter case of the links
#   trap realvm_cleanup EXIT; trap 'exit 130' INT TERM
#   realvm_guests "$build" # the tiny guest images (tests/guest)
#   realvm_internet 80 ... # the "internet" namespace with web servers
#
# realvm_init sets: run_id, prefix (domains vmfed-TAGPID-), host_bridge,
# uplink_bridge, veth, netns (vmfed-TAG-inet-PID; the uplink's far end,
# 192.0.2.1), work (a temp dir QEMU can read) and guest (set by
# realvm_guests).  The link names carry PID % 100000 after vmfb/vmfu/vmfi,
# upper-case for L=upper, so that libvirtd_sweep_stale (tests/lib/libvirtd.sh)
# can find them after a killed run.

realvm_init() {
  local tag=$1 case=${2:-lower} b=b u=u i=i
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: needs root (qemu:///system, bridges, namespaces)" >&2
    exit 77
  fi
  [ "$case" = upper ] && { b=B; u=U; i=I; }
  run_id=$$
  local short=$((run_id % 100000))
  prefix="vmfed-$tag$run_id-"
  host_bridge="vmf$b$short"
  uplink_bridge="vmf$u$short"
  veth="vmf$i$short"
  netns="vmfed-$tag-inet-$run_id"
  work=$(mktemp -d "/tmp/vmfed-$tag.XXXXXX")
  chmod 0755 "$work"   # QEMU must reach the disk images
  _realvm_server_pids=()
}

# Anti-spoofing chains the broker left for taps that no longer exist (a
# killed broker cannot detach them); then the table, once nothing uses it.
realvm_sweep_nft() {
  local chains c tap
  chains=$(nft list table bridge vmfed-host 2>/dev/null | awk '/chain port-/ {print $2}') || return 0
  for c in $chains; do
    tap=${c#port-}
    [ -e "/sys/class/net/$tap" ] && continue
    nft delete element bridge vmfed-host ports "{ \"$tap\" }" 2>/dev/null || true
    nft delete chain bridge vmfed-host "$c" 2>/dev/null || true
  done
  if ! nft list table bridge vmfed-host 2>/dev/null | grep -q 'chain port-'; then
    nft delete table bridge vmfed-host 2>/dev/null || true
  fi
}

# The EXIT trap: this run's domains, servers, namespace, links, nft chains and work dir.
realvm_cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  libvirtd_answers && libvirtd_remove_domains "$prefix"
  for p in "${_realvm_server_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns pids "$netns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
  ip link del "$veth" 2>/dev/null || true
  ip link del "$uplink_bridge" 2>/dev/null || true
  ip link del "$host_bridge" 2>/dev/null || true
  realvm_sweep_nft
  rm -rf "$work"
  libvirtd_release
  exit $rc
}

# The base and netvm flavours of the test guest, with this build's binaries.
realvm_guests() {
  local build=$1 src
  src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  guest=$("$src/tests/guest/guest-dir.sh" "$build")
  local bins=(--binary "$build/services/vmfed-agent" --binary "$build/services/vmfed-guest"
              --binary "$build/services/vmfed-file-copy-receive" --binary "$build/services/vmfed-open-file-receive")
  "$src/tests/guest/build-guest.sh" "$guest" --flavor base "${bins[@]}" >&2
  "$src/tests/guest/build-guest.sh" "$guest" --flavor netvm "${bins[@]}" \
    --binary "$build/netvm/vmfed-netd" --binary "$(command -v nft)" >&2
}

# The "internet": a namespace behind the uplink bridge, a web server on each port.
realvm_internet() {
  local port
  ip netns add "$netns"
  ip link add "$uplink_bridge" type bridge
  ip link set "$uplink_bridge" up
  ip link add "$veth" type veth peer name eth0 netns "$netns"
  ip link set "$veth" master "$uplink_bridge" up
  ip -n "$netns" link set lo up
  ip -n "$netns" addr add 192.0.2.1/24 dev eth0
  ip -n "$netns" link set eth0 up
  mkdir -p "$work/www"
  echo "hello from the internet" > "$work/www/index.html"
  for port in "$@"; do
    ip netns exec "$netns" python3 -u -m http.server "$port" --bind 192.0.2.1 --directory "$work/www" \
      > "$work/http-$port.log" 2>&1 &
    _realvm_server_pids+=($!)
  done
}
