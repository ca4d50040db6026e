#!/usr/bin/env bash
# Benchmark (not a test): cold start of every Lambda function against a local stub of the Lambda
# Runtime API, with a minimal lambda_http + DynamoDB client binary as the baseline (bench/).
# Usage: scripts/bench-coldstart.sh [RUNS] ["FUNCTIONS"]   (default: every function under functions/)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-21}"
# activate, check and deactivate first and in that order: a round checks and frees what it activated.
FUNCTIONS="${2:-activate_license check_license deactivate_license $(ls functions | grep -vx 'activate_license\|check_license\|deactivate_license' | tr '\n' ' ')}"
source scripts/lib/dynamodb-local.sh

# One cargo invocation, so two LTO links run at a time on two cores.
packages=()
for f in $FUNCTIONS; do packages+=(-p "$f"); done
cargo build --release "${packages[@]}" -p bench -p license-server
WORK="$(mktemp -d)"
on_exit "rm -rf '$WORK'"
target/release/license-server keygen --out "$WORK" --bits 3072 >/dev/null
target/release/license-server import examples/catalog.json --dynamodb-table coldstart \
    --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --create-table >/dev/null

echo "machine: $(nproc) cores, $(uname -m), $(free -g | awk '/Mem:/ {print $2}') GiB; $RUNS process starts per binary"
target/release/coldstart --runs "$RUNS" --table coldstart --signing-key "$WORK/signing-key.pem" \
    --baseline target/release/baseline_lambda \
    --functions "$(for f in $FUNCTIONS; do printf 'target/release/%s,' "$f"; done | sed 's/,$//')"
