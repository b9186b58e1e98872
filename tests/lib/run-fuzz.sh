#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run one libFuzzer target for a while (the 'fuzz' suite of -Dfuzz=true builds):
#
#   run-fuzz.sh FUZZER SEED_CORPUS_DIR ARTIFACT_DIR MAX_LEN [DICT]
#
# The fuzzer works on a temporary copy of the seed corpus (the repository is
# never written), for $VMFED_FUZZ_SECONDS seconds (default 60), each input
# at most 10 s and the process at most $VMFED_FUZZ_RSS_MB MB (default 2048).
# Any crash, sanitizer report, leak, timeout or OOM fails the run; the input
# that caused it is left as ARTIFACT_DIR/NAME-crash-* (-leak-, -timeout-, ...).
# $VMFED_FUZZ_KEEP_CORPUS=DIR: copy the grown corpus there at the end.
set -u

if [ $# -lt 4 ]; then
        echo "usage: $0 FUZZER SEED_CORPUS_DIR ARTIFACT_DIR MAX_LEN [DICT]" >&2
        exit 2
fi
fuzzer=$1 seeds=$2 artifacts=$3 max_len=$4 dict=${5:-}
secs=${VMFED_FUZZ_SECONDS:-60}
name=$(basename "$fuzzer")

work=$(mktemp -d "${TMPDIR:-/tmp}/vmfed-$name.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/tmp" "$artifacts" || exit 1
# What a target makes in the temp dir goes with $work, also when it crashes.
export TMPDIR="$work/tmp"
cp -r "$seeds"/. "$work/corpus/" || exit 1

args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb="${VMFED_FUZZ_RSS_MB:-2048}"
      -max_len="$max_len" -print_final_stats=1 -detect_leaks=1
      -artifact_prefix="$artifacts/$name-")
if [ -n "$dict" ]; then
        args+=(-dict="$dict")
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

echo "$name: $(ls "$work/corpus" | wc -l) seeds from $seeds, ${secs}s, max_len $max_len"
# The fuzzer stops itself after $secs; the outer timeout only catches a wedged process.
timeout -k 10 $((secs + 300)) "$fuzzer" "${args[@]}" "$work/corpus"
rc=$?

echo "$name: corpus grew to $(ls "$work/corpus" | wc -l) inputs"
if [ -n "${VMFED_FUZZ_KEEP_CORPUS:-}" ]; then
        mkdir -p "$VMFED_FUZZ_KEEP_CORPUS" && cp -r "$work/corpus"/. "$VMFED_FUZZ_KEEP_CORPUS/"
fi
if [ $rc -ne 0 ]; then
        echo "$name: FAILED (exit $rc); reproducer(s):" >&2
        ls -l "$artifacts/$name-"* >&2 2>/dev/null
        exit 1
fi
exit 0
