#!/usr/bin/env bash
# Deployment checks, run by scripts/test.sh (which has DynamoDB Local up and DYNAMODB_ENDPOINT set):
#   cfn-lint and `sam validate --lint` on template.yaml; `sam build` (`cargo lambda build --release --arm64`
#   of every function, with the binary sizes); `license-server smoke` through `cargo lambda watch`, the
#   local Lambda mode without Docker, including the $default route's 404 and 405; then scripts/sam-local.sh:
#   every event through `sam local invoke` and HTTP requests through `sam local start-api`, in Docker
#   with the real arm64 binaries (SKIP_SAM_LOCAL=1 skips it). Tools come from PyPI into a virtualenv
#   under target/tools/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DYNAMODB_ENDPOINT:?run from scripts/test.sh, which starts DynamoDB Local}"
source scripts/lib/timing.sh
source scripts/lib/ports.sh
trap timings_total EXIT

source scripts/lib/deploy-tools.sh
# Usually already there: scripts/test.sh starts this install in the background at its start.
timed "deployment tools (pip, started by test.sh in the background)" install_deploy_tools
VENV=$DEPLOY_TOOLS_VENV
# The venv's python first: cargo-lambda finds zig through it.
export PATH="$VENV/bin:$PATH"
export SAM_CLI_TELEMETRY=0 AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
rustup target add aarch64-unknown-linux-gnu >/dev/null

echo "==> cfn-lint template.yaml"
timed "cfn-lint template.yaml" cfn-lint template.yaml
echo "==> sam validate --lint"
timed "sam validate --lint" sam validate --lint --region us-east-1

SERVER="$PWD/target/debug/license-server"
# The binary the test build made (server/tests run it): after scripts/test.sh this is the same command
# and a no-op, where `cargo build -p license-server` would rebuild it with other features (61 s).
timed "license-server (debug, the test build's)" cargo test -q --workspace --no-run
# "<binary> <logical id>" per Lambda function, from the endpoint table (docs/contributing.md).
mapfile -t FUNCTIONS < <("$SERVER" endpoints --functions)
[ ${#FUNCTIONS[@]} -gt 0 ] || { echo "license-server endpoints --functions listed no function" >&2; exit 1; }
# The release binaries are built once, all in one cargo run: `cargo lambda build --release --arm64` with
# every function's `--bin`, from the workspace root. That is the command `sam build` runs per function
# (CodeUri `.`, BuildProperties.Binary), with the same flags, features and `--config` (cargo-lambda's
# Graviton rustflags; `panic = "abort"`, see [profile.release]), so `sam build` then finds every binary
# up to date and only copies it. One run lets cargo link two functions at a time (each function's
# whole-program LTO link is one thread); `sam build` would link them one after another. The time per
# function this costs is in docs/benchmarks.md ("Build time per function").
BINS=()
for line in "${FUNCTIONS[@]}"; do BINS+=(--bin "${line%% *}"); done
echo "==> cargo lambda build --release --arm64 (${#FUNCTIONS[@]} functions)"
timed "cargo lambda build --release --arm64 (${#FUNCTIONS[@]} functions, one run)" \
    cargo lambda build --release --arm64 "${BINS[@]}"
echo "==> sam build (copies the binaries built above)"
timed "sam build (binaries up to date)" sam build --build-dir target/sam-build >/dev/null
for line in "${FUNCTIONS[@]}"; do
    read -r f logical <<<"$line"
    test -x "target/sam-build/$logical/bootstrap" || { echo "sam build produced no bootstrap for $logical" >&2; exit 1; }
    printf '    %-26s %8d bytes\n' "$f" "$(stat -c %s "target/sam-build/$logical/bootstrap")"
done

echo "==> cargo lambda watch"
WORK="$PWD/target/lambda-watch"
rm -rf "$WORK" && mkdir -p "$WORK"
"$SERVER" keygen --out "$WORK" --bits 2048 >/dev/null
"$SERVER" import examples/catalog.json --dynamodb-table lambda-watch --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --create-table >/dev/null
cat >"$WORK/env" <<ENV
TABLE_NAME=lambda-watch
SIGNING_KEY_FILE=$WORK/signing-key.pem
DYNAMODB_ENDPOINT=$DYNAMODB_ENDPOINT
AWS_ACCESS_KEY_ID=local
AWS_SECRET_ACCESS_KEY=local
AWS_REGION=us-east-1
RUST_LOG=warn
ENV
PORT="$(free_port)"
cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$PORT" --env-file "$WORK/env" \
    >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
stop_watch() { pkill -TERM -P "$WATCH_PID" 2>/dev/null || true; kill "$WATCH_PID" 2>/dev/null || true; wait "$WATCH_PID" 2>/dev/null || true; }
trap 'stop_watch; timings_total' EXIT
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done

# The checks are `license-server smoke` (server/src/smoke/): requests through the project's client,
# every answer's status, code and body judged and every signed answer verified with the public key.
export LICENSE_SMOKE_SHARED_KEY=demo-shared-key-change-me LICENSE_SMOKE_PASSWORD=demo-password
watch_checks() {
    "$SERVER" smoke --base-url "http://127.0.0.1:$PORT" --api-key demo-api-key --public-key "$WORK/signing-key.pub.pem" \
        --product demo --license-key DEMO-0000-0000-0001 --hardware-id watch-device \
        --bundle-product demo-suite --bundle-license-key SUITE-0000-0007 \
        --user-product demo-team --username ann@example.com --timeout-seconds 900 || {
        echo "cargo lambda watch: the smoke checks failed; its log:" >&2
        tail -n 30 "$WORK/watch.log" >&2
        exit 1
    }
}
# Includes the debug builds `cargo lambda watch` makes of each function on its first request.
timed "cargo lambda watch: smoke checks (with its debug builds)" watch_checks

if [ "${SKIP_SAM_LOCAL:-0}" != 1 ]; then
    stop_watch
    echo "==> sam local invoke / start-api (Docker, arm64 through qemu)"
    scripts/sam-local.sh
fi
