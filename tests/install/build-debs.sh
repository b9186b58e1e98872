#!/usr/bin/env bash
# Build vmfed's Debian packages out of tree: the checkout's files (tracked
# and new, not ignored: no build directories) are copied to a temporary
# directory, `dpkg-buildpackage -us -uc -b` runs there, and the .deb files
# (and the .buildinfo/.changes) land in OUTDIR.  Installs debhelper and the
# Build-Depends first when missing (apt-get build-dep; a no-op when present).
#
# Usage: build-debs.sh OUTDIR [--lintian]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build-debs.sh OUTDIR [--lintian]}
lint=${2:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ! command -v dpkg-buildpackage >/dev/null || ! dpkg-checkbuilddeps "$src/debian/control" >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "build-debs.sh: missing build dependencies, and not root to install them" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dpkg-dev debhelper >&2
  DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q "$src" >&2
fi
if [ "$lint" = --lintian ] && ! command -v lintian >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q lintian >&2
fi

tmp=$(mktemp -d /var/tmp/vmfed-deb.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/vmfed"
(cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp/vmfed" 2>/dev/null) \
  || (cd "$src" && tar --exclude='./build*' --exclude=./.git -cf - . | tar -C "$tmp/vmfed" -xf -)
(cd "$tmp/vmfed" && dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1) || { tail -40 "$tmp/build.log" >&2; exit 1; }
cp "$tmp"/*.deb "$tmp"/*.buildinfo "$tmp"/*.changes "$out/"
if [ "$lint" = --lintian ]; then
  # No errors allowed; warnings and info are printed (docs/packaging.md explains them).
  (cd "$out" && lintian --fail-on error --info "$out"/vmfed_*.changes) || exit 1
fi
ls -l "$out"/*.deb
