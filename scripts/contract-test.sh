#!/usr/bin/env bash
# The contract test (docs/testing.md, "Contract test"): a `license-server serve --demo` (SQLite, the
# example catalog, rate limits lifted) on a free loopback port, and schemathesis (PyPI, pinned, in
# target/tools/schemathesis; scripts/lib/schemathesis.sh) run against openapi/license-api.json with
# tests/contract/hooks.py, which signs every request (SPEC §1.2), then against
# openapi/management-api.json with tests/contract/management_hooks.py, which sends a management key
# created for the demo company on the command line and steers destructive operations to throwaway
# resources it creates. Checks, for every operation: no 5xx
# (not_a_server_error), each status documented (status_code_conformance) and each body matching its
# schema (response_schema_conformance). Prints operations × cases and the failures; fails on any.
#   CONTRACT_MAX_EXAMPLES  cases generated per operation and phase (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib/ports.sh
source scripts/lib/schemathesis.sh

install_schemathesis
cargo build --quiet -p license-server
port="$(free_port)"
log="$ROOT/target/contract-server.log"
echo "==> starting license-server serve --demo on 127.0.0.1:$port (log: $log)"
# Rate limits lifted: schemathesis sends hundreds of requests a second from one address and key.
target/debug/license-server serve --demo --listen "127.0.0.1:$port" \
    --rate-per-ip 0 --rate-per-key 0 --password-checks-per-ip 0 --password-checks-per-user 0 \
    --max-connections-per-ip 0 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
wait_for_port "$port" "$server" "$log"
shared_key="$(sed -n 's/^ *shared key: *//p' "$log" | head -1)"
[ -n "$shared_key" ] || { echo "the demo server printed no shared key:" >&2; cat "$log" >&2; exit 1; }

data_dir="$(sed -n 's/^Inspect it: .* --data \([^ ]*\).*/\1/p' "$log" | head -1)"
[ -n "$data_dir" ] || { echo "the demo server printed no store directory:" >&2; cat "$log" >&2; exit 1; }
# A management key of the demo company, created on the command line against the demo's store.
created="$(target/debug/license-server management-key create --data "$data_dir" --company demo \
    --name contract-test --json)"
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <<<"$created"; }

# One schemathesis run: the document, its hooks module (tests/contract/), a label for the summary.
# Checks, for every operation: no 5xx, each status documented, each body matching its schema.
contract_run() {
    local document="$1" hooks="$2" label="$3"
    local report="$ROOT/target/contract-report/$label" out="$ROOT/target/contract-test-$label.log"
    echo "==> schemathesis against $document"
    rm -rf "$report"
    # From target/: schemathesis keeps its cache (.schemathesis/) in the working directory.
    (cd "$ROOT/target" && PYTHONPATH="$ROOT/tests/contract" SCHEMATHESIS_HOOKS="$hooks" \
        "$SCHEMATHESIS_VENV/bin/st" --no-color run "$ROOT/$document" \
        --url "http://127.0.0.1:$port" \
        --checks not_a_server_error,status_code_conformance,response_schema_conformance \
        --max-examples "${CONTRACT_MAX_EXAMPLES:-50}" \
        --seed 1 \
        --report junit --report-dir "$report") 2>&1 | tee "$out" || status=1
    # One closing line: operations × generated cases, and failures (schemathesis prints "N generated,
    # M passed" or "N generated, F found ...").
    local operations cases failures errors
    operations="$(sed -n 's/^ *Tested: *\([0-9]*\).*/\1/p' "$out" | tail -1)"
    cases="$(sed -n 's/^ *\([0-9]*\) generated.*/\1/p' "$out" | tail -1)"
    failures="$(sed -n 's/^ *❌ .*: \([0-9]*\)$/\1/p' "$out" | awk '{ s += $1 } END { print s + 0 }')"
    errors="$(sed -n 's/^ *🚫 .*: \([0-9]*\)$/\1/p' "$out" | awk '{ s += $1 } END { print s + 0 }')"
    summary+="contract test, $label: ${operations:-?} operations × ${cases:-?} cases, ${failures:-0} failures, ${errors:-0} errors (report: $report)"$'\n'
}

summary=""
export CONTRACT_API_KEY=demo-api-key CONTRACT_SHARED_KEY="$shared_key"
contract_run openapi/license-api.json hooks license-api
# After the License API's run: the management hooks create and remove resources of the demo company.
export CONTRACT_MANAGEMENT_TOKEN="$(field token)" CONTRACT_MANAGEMENT_KEY_ID="$(field id)" CONTRACT_MANAGEMENT_URL="http://127.0.0.1:$port/api/management/v1"
contract_run openapi/management-api.json management_hooks management-api
printf '%s' "$summary"
exit "${status:-0}"
