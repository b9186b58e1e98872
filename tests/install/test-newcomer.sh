#!/usr/bin/env bash
# The README's first command as a newcomer runs it: a user with sudo, a
# clone in their home directory (0700, as bookworm makes homes), and
# `./tools/main.sh` as written (no sudo typed: it starts again under sudo).
# Passes when the demo finishes and build/ in the clone is still the user's.
# The user, their home, the sudoers drop-in and the clone's guest images are
# removed afterwards.  Installs sudo when missing (a minimal Debian has
# none).  Costly (a full build and the whole demo): suite 'install', build/
# only.  Needs root; skips (77) otherwise.
set -euo pipefail
src=${VMFED_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v git >/dev/null || { echo "SKIP: no git"; exit 77; }
# Not yet in the default run: it has not passed on this machine (every try
# so far met other runs stalling the shared libvirtd).  VMFED_TEST_NEWCOMER=1
# runs it.
[ "${VMFED_TEST_NEWCOMER:-0}" = 1 ] || { echo "SKIP: set VMFED_TEST_NEWCOMER=1 to run it"; exit 77; }
user=vmfed-newcomer
home=/home/$user
drop=/etc/sudoers.d/vmfed-newcomer-test
cache=${VMFED_TEST_CACHE:-/var/cache/vmfed-tests}
start=$SECONDS

cleanup() {
  rm -f "$drop"
  if id "$user" >/dev/null 2>&1; then
    userdel -r "$user" 2>/dev/null || true
  fi
  rm -rf "$home"
  [ -n "${guest_hash:-}" ] && rm -rf "$cache/guest/$guest_hash"
  return 0
}
trap cleanup EXIT
cleanup

command -v sudo >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q sudo >/dev/null
useradd -m -d "$home" -s /bin/bash "$user"
chmod 0700 "$home"
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$user" > "$drop"
chmod 0440 "$drop"
visudo -cf "$drop" >/dev/null

# The clone: this checkout's committed HEAD, as `git clone` gives it.
git -c safe.directory='*' clone -q "$src" "$home/vmfed"
chown -R "$user:$user" "$home/vmfed"
guest_hash=$(printf '%s' "$home/vmfed/build" | sha256sum | cut -c1-16)
[ "$(stat -c %a "$home")" = 700 ] || { echo "FAIL: $home is not 0700"; exit 1; }

echo "[$((SECONDS - start)) s] as $user, in $home/vmfed (0700 home): ./tools/main.sh"
log=$(mktemp)
rc=0
runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" PATH=/usr/local/bin:/usr/bin:/bin \
  LANG=C.UTF-8 bash -c 'cd ~/vmfed && ./tools/main.sh' > "$log" 2>&1 || rc=$?
# The demo's narration (step lines, FAIL, where its logs are), then the end.
grep -E '^(==|   \[|FAIL|Logs:|vmfed:)|demo finished' "$log" | head -n 60 || true
echo "---- last lines ----"
tail -n 15 "$log"
echo "[$((SECONDS - start)) s] ./tools/main.sh exited $rc"
[ $rc -eq 0 ] || { rm -f "$log"; echo "FAIL: ./tools/main.sh as a newcomer"; exit 1; }
grep -q "running it again with sudo" "$log" || { rm -f "$log"; echo "FAIL: main.sh did not restart itself under sudo"; exit 1; }
grep -q "demo finished" "$log" || { rm -f "$log"; echo "FAIL: the demo did not finish"; exit 1; }
rm -f "$log"
notmine=$(find "$home/vmfed" ! -user "$user" | head -n 5)
[ -z "$notmine" ] || { echo "$notmine"; echo "FAIL: files in the clone not owned by $user"; exit 1; }
echo "ok - the demo ran from a clone in a 0700 home; build/ is still $user's ($((SECONDS - start)) s)"
