#!/usr/bin/env bash
# Benchmark (not a test): what memory size the Lambda functions should have (issue 19, item 4). Lambda
# gives a function CPU in proportion to its memory, one full vCPU at 1,769 MB; this runs the cold-start
# driver (bench/src/bin/coldstart.rs) with every function inside a cgroup whose CPU quota is that share
# of one core, for each memory size and signing key size, and prints init, warm latency and the cost
# per million requests at arm64 list prices. Needs root (it makes a cgroup) and an otherwise idle machine.
# Usage: scripts/bench-lambda-size.sh [RUNS] [WARM] ["SIZES_MB"] ["KEY_BITS"]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
WARM="${2:-20}"
SIZES="${3:-128 256 512 1024 1769}"
BITS="${4:-2048 3072 4096}"
source scripts/lib/dynamodb-local.sh

cargo build --release -p activate_license -p check_license -p deactivate_license -p bench -p license-server
WORK="$(mktemp -d)"
on_exit "rm -rf '$WORK'"
target/release/license-server import examples/catalog.json --dynamodb-table sizing \
    --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --create-table >/dev/null

# One cgroup for the functions, on cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`).
PERIOD_US=100000
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG=/sys/fs/cgroup/license-bench-$$
    mkdir "$CG"
    set_share() { echo "$(( $1 * PERIOD_US / 1769 )) $PERIOD_US" > "$CG/cpu.max"; }
else
    CG=/sys/fs/cgroup/cpu/license-bench-$$
    mkdir "$CG"
    echo "$PERIOD_US" > "$CG/cpu.cfs_period_us"
    set_share() { echo "$(( $1 * PERIOD_US / 1769 ))" > "$CG/cpu.cfs_quota_us"; }
fi
on_exit "rmdir '$CG' 2>/dev/null || true"

echo "machine: $(nproc) cores, $(uname -m), $(lscpu | sed -n 's/^Model name: *//p'); $RUNS starts × (1 + $WARM) invocations per binary and size"
for bits in $BITS; do
    target/release/license-server keygen --out "$WORK/$bits" --bits "$bits" >/dev/null
    for mb in $SIZES; do
        set_share "$mb"
        echo "## RSA-$bits, $mb MB (CPU quota $(( mb * 100 / 1769 ))% of one core)"
        target/release/coldstart --runs "$RUNS" --warm "$WARM" --memory-mb "$mb" --table sizing \
            --signing-key "$WORK/$bits/signing-key.pem" --cgroup-procs "$CG/cgroup.procs" \
            --baseline target/release/baseline_lambda \
            --functions target/release/activate_license,target/release/check_license,target/release/deactivate_license \
            | tee "$WORK/rsa$bits-$mb.md"
    done
done

# Cost per million warm requests: duration billed per started millisecond (the mean, rounded up) at
# the arm64 list price in us-east-1, plus the request charge.
python3 - "$WORK" "$BITS" "$SIZES" <<'PY'
import math, sys
work, bits, sizes = sys.argv[1], sys.argv[2].split(), [int(s) for s in sys.argv[3].split()]
GB_S, PER_REQUEST = 0.0000133334, 0.20 / 1e6
def rows(path):
    out = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 9 and cells[0] in ('activate_license', 'check_license', 'deactivate_license'):
            ms = lambda c: float(c.split()[0])
            out[cells[0]] = dict(init=ms(cells[2]), mean=ms(cells[5]), p50=ms(cells[6]), p90=ms(cells[7]))
    return out
for b in bits:
    print(f"\n### RSA-{b}: cost per million warm requests (arm64), latency, and cost × latency\n")
    print("| memory | init (activate) | activate p50 / p90 | check p50 / p90 | deactivate p50 | $ per 1M activations | $ per 1M checks | $ per 1M deactivations | check: $ × p50 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mb in sizes:
        r = rows(f"{work}/rsa{b}-{mb}.md")
        cost = lambda f: 1e6 * (math.ceil(r[f]['mean']) / 1000 * mb / 1024 * GB_S + PER_REQUEST)
        a, c, d = r['activate_license'], r['check_license'], r['deactivate_license']
        print(f"| {mb} MB | {a['init']:.1f} ms | {a['p50']:.1f} / {a['p90']:.1f} ms | {c['p50']:.1f} / {c['p90']:.1f} ms "
              f"| {d['p50']:.1f} ms | {cost('activate_license'):.2f} | {cost('check_license'):.2f} "
              f"| {cost('deactivate_license'):.2f} | {cost('check_license') * c['p50']:.0f} |")
PY
