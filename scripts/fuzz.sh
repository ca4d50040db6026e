#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/testing.md) on stable Rust. Not part of CI or
# scripts/test.sh: fuzzing is open-ended, run it before a release or after touching a parser.
#   scripts/fuzz.sh                    every target, 1,000,000 inputs each
#   scripts/fuzz.sh request 5000000    one target, that many inputs
#   scripts/fuzz.sh auth -1 -- -max_total_time=600  libFuzzer flags after `--` (-1 runs: no limit)
# `-s none`: no sanitizer, which is what lets stable Rust build the targets (a sanitizer needs nightly's
# -Zsanitizer); they look for panics and wrong answers, and the code under test has no `unsafe`.
# Installs cargo-fuzz if missing. Builds into target/fuzz; corpus and crash artifacts go to
# target/fuzz/corpus/<target> and target/fuzz/artifacts/<target>, never into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

ALL=(request auth route)
TARGETS=("${ALL[@]}")
RUNS=1000000
if [ $# -gt 0 ] && [ "$1" != -- ]; then TARGETS=("$1"); shift; fi
if [ $# -gt 0 ] && [ "$1" != -- ]; then RUNS=$1; shift; fi
[ "${1:-}" = -- ] && shift

# The store-backed targets keep their SQLite file on a RAM disk when there is one: SQLite fsyncs every
# commit, which would otherwise dominate their speed.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export LICENSE_API_FUZZ_DIR="/dev/shm/license-api-fuzz-$$"
else
    export LICENSE_API_FUZZ_DIR="$ROOT/target/fuzz/db-$$"
fi
trap 'rm -rf "$LICENSE_API_FUZZ_DIR"' EXIT

for t in "${TARGETS[@]}"; do
    corpus="$ROOT/target/fuzz/corpus/$t"
    artifacts="$ROOT/target/fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=$ROOT/fuzz/dicts/$t.dict")
    echo "==> cargo fuzz run $t ($RUNS inputs)"
    (cd fuzz && cargo fuzz run "$t" "$corpus" -s none --target-dir "$ROOT/target/fuzz" -- \
        -runs="$RUNS" -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" "$@")
done
