#!/usr/bin/env bash
# Benchmark (not a test): the standalone server against the limit its cryptography sets (issue 19,
# item 1). Builds `license-server` with the throughput profile (`server`; PROFILE=release for the
# size-tuned one), the load generator and the signing-limit probe, then, on the embedded store and on
# DynamoDB Local:
#   - the signing limit: RSA-3072 signatures per second this build's own Signer makes on the server's
#     CPUs (examples/signlimit.rs), right before and right after each run;
#   - activate+deactivate pairs per second (MODE `pairs`) and checks per second (MODE `checks`) from the
#     load generator, the RSA signatures per second they cost, and that as a ratio to the limit;
#   - the share of its CPUs the server used.
# The server runs pinned to SERVER_CPUS (default: every core but the last) and the load generator and
# DynamoDB Local to LOADGEN_CPUS (default: the last core), so the load's own CPU is not taken from the
# server and the limit is measured on exactly the server's cores.
# Usage: scripts/bench-server.sh [WORKERS] [SECONDS] ["pairs checks"]
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS="${1:-32}"
SECONDS_PER_RUN="${2:-10}"
MODES="${3:-pairs checks}"
PROFILE="${PROFILE:-server}"
NCPU="$(nproc)"
[ "$NCPU" -ge 2 ] || { echo "needs at least 2 cores: one for the server, one for the load" >&2; exit 1; }
SERVER_CPUS="${SERVER_CPUS:-0-$((NCPU - 2))}"
LOADGEN_CPUS="${LOADGEN_CPUS:-$((NCPU - 1))}"
source scripts/lib/dynamodb-local.sh
taskset -a -cp "$LOADGEN_CPUS" "$ddb_pid" >/dev/null

cargo build --profile "$PROFILE" -p license-server --bin license-server --example loadgen --example signlimit
BIN="target/$PROFILE/license-server"
LOADGEN="target/$PROFILE/examples/loadgen"
WORK="$(mktemp -d)"
on_exit "rm -rf '$WORK'"

$BIN keygen --out "$WORK" --bits 3072 >/dev/null
$BIN import examples/catalog.json --data "$WORK/sqlite" --create >/dev/null
$BIN import examples/catalog.json --dynamodb-table bench --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --create-table >/dev/null

echo "machine: $NCPU cores ($(lscpu | sed -n 's/^Model name: *//p')), $(free -g | awk '/Mem:/ {print $2}') GiB; profile: $PROFILE ($(stat -c %s "$BIN") B); server on CPUs $SERVER_CPUS, load and DynamoDB Local on $LOADGEN_CPUS; workers: $WORKERS; ${SECONDS_PER_RUN}s per run"
# The limit, on the server's CPUs, for SECONDS_PER_RUN / 2 seconds: a shared machine's speed drifts, so
# it is measured right before and right after each server run and the run is compared to their mean.
limit() {
    taskset -c "$SERVER_CPUS" "target/$PROFILE/examples/signlimit" --key "$WORK/signing-key.pem" \
        --seconds "$(( (SECONDS_PER_RUN + 1) / 2 ))" | sed -n 's/.*signatures\/s: \([0-9]*\).*/\1/p'
}

# CPU seconds (user + system) process PID has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

bench() {
    local name="$1" mode="$2"; shift 2
    local port before after cpu0 cpu1 line
    port="$(free_port)"
    before="$(limit)"
    # One client IP and one API key at full speed: the rate limits (docs/limits.md) would throttle it.
    # The server's own info lines (not one per request): on shutdown it logs the RSA signatures it made.
    RUST_LOG=warn,license_server=info taskset -c "$SERVER_CPUS" $BIN serve --listen "127.0.0.1:$port" \
        --signing-key "$WORK/signing-key.pem" --rate-per-ip 0 --rate-per-key 0 --max-connections-per-ip 0 "$@" \
        2>"$WORK/server.log" &
    local pid=$!
    wait_for_port "$port" "$pid" /dev/null
    cpu0="$(cpu_seconds "$pid")"
    line="$(taskset -c "$LOADGEN_CPUS" $LOADGEN --url "http://127.0.0.1:$port" --api-key demo-api-key \
        --shared-key demo-shared-key-change-me --product demo --license-key DEMO-UNLIMITED-0004 \
        --workers "$WORKERS" --seconds "$SECONDS_PER_RUN" --mode "$mode")"
    cpu1="$(cpu_seconds "$pid")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    after="$(limit)"
    # RSA signatures the run cost: as the server counted them, and as expected from the counts
    # tests/signatures.rs asserts (a worker's first activation signs twice, license object and body;
    # every later request of its device once, its license signature cached; a deactivation nothing:
    # `pairs` one per pair plus one per worker, `checks` one per check plus two per worker).
    python3 - "$name" "$mode" "$line" "$before" "$after" "$cpu0" "$cpu1" "$WORKERS" "$WORK/server.log" <<'PY'
import re, sys
name, mode, line, before, after, cpu0, cpu1, workers, log = sys.argv[1:]
units = int(re.search(r'^\w+: (\d+)', line).group(1))
elapsed = float(re.search(r'elapsed: ([\d.]+)s', line).group(1))
expected = units + int(workers) * (1 if mode == 'pairs' else 2)
counted = re.search(r'rsa_signatures=(\d+)', open(log).read())
if not counted:
    sys.exit(f"the server logged no rsa_signatures on shutdown (see {log})")
signatures = int(counted.group(1))
limit = (int(before) + int(after)) / 2
print(f"{name + ':':<26}{mode:<7} {line}")
print(f"{'':<33}signatures/s: {signatures / elapsed:.0f} ({signatures} counted by the server, {expected} expected)"
      f"  limit: {limit:.0f} ({before} before, {after} after)"
      f"  ratio: {signatures / elapsed / limit:.2f}  server CPU: {(float(cpu1) - float(cpu0)) / elapsed:.0%} of its cores")
PY
}

for mode in $MODES; do
    bench "embedded store (SQLite)" "$mode" --data "$WORK/sqlite"
    bench "DynamoDB Local" "$mode" --dynamodb-table bench --dynamodb-endpoint "$DYNAMODB_ENDPOINT"
done
