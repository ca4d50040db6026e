#!/usr/bin/env bash
# Benchmark (not a test): what a Lambda function's init costs in instructions, counted by valgrind's
# callgrind, which repeats to within a few hundred instructions whatever else the machine does, where
# wall-clock init drifts by ±10 % on a shared VM (issue 19, item 6). Each binary starts as Lambda would
# start it, with a Runtime API address nothing listens on: it runs all of its init, fails its first
# `GET /next` and exits, so the count is init plus that short failure, the same for every binary. Built
# in release with symbols (its own target directory, so the stripped binaries stay as they are); with
# KEEP=DIR the callgrind files stay in DIR for `callgrind_annotate --inclusive=yes DIR/<name>`.
# Each function is counted twice: as deployed by default, and with a sealing key (single sign-on on).
# Usage: [KEY_BITS=3072] scripts/bench-init-instructions.sh ["FUNCTIONS"]   (default: activate, check,
# deactivate; KEY_BITS: the signing key's size, whose check is most of what init adds to the baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
FUNCTIONS="${1:-activate_license check_license deactivate_license}"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
TARGET=target/symbols
packages=()
for f in $FUNCTIONS; do packages+=(-p "$f"); done
CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --target-dir "$TARGET" "${packages[@]}"
CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --target-dir "$TARGET" -p bench --bin baseline_lambda
WORK="${KEEP:-$(mktemp -d)}"
mkdir -p "$WORK"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
# PKCS#8, as `license-server keygen` writes it (openssl comes with ca-certificates).
openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${KEY_BITS:-3072}" -out "$WORK/signing-key.pem" 2>/dev/null
SEALING_KEY="$(head -c 32 /dev/urandom | base64)"

# instructions NAME BINARY [NAME=VALUE...]: one start under callgrind (the binary exits with an error,
# having found no Runtime API: that is expected).
instructions() {
    local name="$1" bin="$2"
    shift 2
    { env -i PATH="$PATH" AWS_LAMBDA_RUNTIME_API=127.0.0.1:1 AWS_LAMBDA_FUNCTION_NAME="$name" \
        AWS_LAMBDA_FUNCTION_VERSION='$LATEST' AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024 \
        AWS_LAMBDA_LOG_GROUP_NAME=g AWS_LAMBDA_LOG_STREAM_NAME=s AWS_REGION=us-east-1 \
        AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local TABLE_NAME=t \
        SIGNING_KEY_FILE="$WORK/signing-key.pem" DYNAMODB_ENDPOINT=http://127.0.0.1:1 RUST_LOG=off "$@" \
        valgrind --tool=callgrind --callgrind-out-file="$WORK/$name" "$bin" || true; } 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

echo "| binary | sealing key | init instructions | ratio to baseline |"
echo "|---|---|---|---|"
base="$(instructions baseline "$TARGET/release/baseline_lambda")"
echo "| baseline_lambda | n/a | $base | 1.00× |"
for f in $FUNCTIONS; do
    plain="$(instructions "$f" "$TARGET/release/$f")"
    sealed="$(instructions "$f-sso" "$TARGET/release/$f" SEALING_KEY_BASE64="$SEALING_KEY")"
    awk -v f="$f" -v p="$plain" -v s="$sealed" -v b="$base" 'BEGIN {
        printf "| %s | no | %d | %.2f× |\n| %s | yes | %d | %.2f× |\n", f, p, p / b, f, s, s / b }'
done
