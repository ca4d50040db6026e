#!/usr/bin/env bash
# Benchmark (not a test): what the audit record adds to an activation's write, on the embedded store and
# on DynamoDB Local (bench/src/bin/audit_cost.rs). Usage: scripts/bench-audit.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-300}"
source scripts/lib/dynamodb-local.sh

cargo build --release -p license-server --bin license-server -p bench --bin audit_cost
BIN=target/release/license-server
WORK="$(mktemp -d)"
on_exit "rm -rf '$WORK'"
$BIN import examples/catalog.json --data "$WORK/sqlite" --create >/dev/null
$BIN import examples/catalog.json --dynamodb-table bench-audit --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --create-table >/dev/null

echo "machine: $(nproc) cores; $ROUNDS activations per variant, alternating"
echo "## embedded store (SQLite)"
target/release/audit_cost --data "$WORK/sqlite" --rounds "$ROUNDS"
echo "## DynamoDB Local"
target/release/audit_cost --dynamodb-table bench-audit --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --rounds "$ROUNDS"
