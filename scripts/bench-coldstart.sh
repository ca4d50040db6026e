#!/usr/bin/env bash
# Benchmark (not a test): cold start of every Lambda function against a local stub of the Lambda
# Runtime API, with a minimal lambda_http + DynamoDB client binary as the baseline (bench/).
# Usage: scripts/bench-coldstart.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-21}"
source scripts/lib/dynamodb-local.sh

cargo build --release -p activate_license -p deactivate_license -p check_license -p bench -p license-server
WORK="$(mktemp -d)"
on_exit "rm -rf '$WORK'"
target/release/license-server keygen --out "$WORK" --bits 3072 >/dev/null
target/release/license-server import examples/catalog.json --dynamodb-table coldstart \
    --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --create-table >/dev/null

echo "machine: $(nproc) cores, $(uname -m), $(free -g | awk '/Mem:/ {print $2}') GiB; $RUNS process starts per binary"
target/release/coldstart --runs "$RUNS" --table coldstart --signing-key "$WORK/signing-key.pem" \
    --baseline target/release/baseline_lambda \
    --functions target/release/activate_license,target/release/check_license,target/release/deactivate_license
