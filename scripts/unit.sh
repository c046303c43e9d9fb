#!/usr/bin/env bash
# Runs every cmocka unit test binary and replays every fuzz target over its
# seed corpus. Exits non-zero if any fails. Usage: scripts/unit.sh BINDIR
set -u
bindir=${1:-bin}
fail=0
for t in "$bindir"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    "$t" || { echo "FAILED: $t"; fail=1; }
done
for r in "$bindir"/tests/replay_fuzz_*; do
    [ -x "$r" ] || continue
    name=${r##*/replay_fuzz_}
    corpus=tests/fuzz/corpus/$name
    echo "== fuzz corpus replay: $name"
    if [ -d "$corpus" ]; then
        "$r" "$corpus" || { echo "FAILED: $r"; fail=1; }
    else
        echo "FAILED: no seed corpus $corpus"; fail=1
    fi
done
exit $fail
