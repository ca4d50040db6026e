#!/usr/bin/env bash
# Benchmark (not a test): activate+deactivate pairs per second (MODE `pairs`, the default) or checks per
# second (MODE `checks`) against `license-server serve`, on the embedded store and on DynamoDB Local, from
# the load generator on the same machine.
# Usage: scripts/bench-server.sh [WORKERS] [SECONDS] [pairs|checks]
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS="${1:-32}"
SECONDS_PER_RUN="${2:-10}"
MODE="${3:-pairs}"
source scripts/lib/dynamodb-local.sh

cargo build --release -p license-server --bin license-server --example loadgen
BIN=target/release/license-server
LOADGEN=target/release/examples/loadgen
WORK="$(mktemp -d)"
on_exit "rm -rf '$WORK'"

$BIN keygen --out "$WORK" --bits 3072 >/dev/null
$BIN import examples/catalog.json --data "$WORK/sqlite" --create >/dev/null
$BIN import examples/catalog.json --dynamodb-table bench --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --create-table >/dev/null

bench() {
    local name="$1"; shift
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # One client IP and one API key at full speed: the rate limits (docs/limits.md) would throttle it.
    RUST_LOG=warn $BIN serve --listen "127.0.0.1:$port" --signing-key "$WORK/signing-key.pem" \
        --rate-per-ip 0 --rate-per-key 0 --max-connections-per-ip 0 "$@" &
    local pid=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    printf '%-28s ' "$name:"
    $LOADGEN --url "http://127.0.0.1:$port" --api-key demo-api-key --shared-key demo-shared-key-change-me \
        --product demo --license-key DEMO-UNLIMITED-0004 --workers "$WORKERS" --seconds "$SECONDS_PER_RUN" --mode "$MODE"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; workers: $WORKERS; ${SECONDS_PER_RUN}s per run; mode: $MODE"
bench "embedded store (SQLite)" --data "$WORK/sqlite"
bench "DynamoDB Local" --dynamodb-table bench --dynamodb-endpoint "$DYNAMODB_ENDPOINT"
