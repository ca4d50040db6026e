# Sourced by scripts (after scripts/lib/dynamodb-local.sh, whose on_exit it uses when present):
# installs (if needed) and starts one real OpenID Connect provider on a free loopback port, exports
# OIDC_ISSUER (its issuer URL, plain HTTP), and stops it when the script exits. The provider is the npm
# package oidc-provider@9.13.3 (cached under target/tools/, never committed), configured by the
# committed tests/oidc/provider.mjs (one client, a few users, code and implicit grants).

oidc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
oidc_modules="$oidc_root/target/tools/oidc-provider/node_modules"
mkdir -p "$oidc_root/target/tools"

if ! command -v node >/dev/null 2>&1; then
    echo "==> installing Node.js (the OpenID Connect provider needs it)"
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -f "$oidc_modules/oidc-provider/package.json" ]; then
    echo "==> installing the OpenID Connect provider (npm oidc-provider@9.13.3)"
    npm install --prefix "$oidc_root/target/tools/oidc-provider" --no-audit --no-fund --loglevel=error \
        oidc-provider@9.13.3 >/dev/null
fi

source "$oidc_root/scripts/lib/ports.sh"
oidc_port="$(free_port)"
echo "==> starting the OpenID Connect provider on 127.0.0.1:$oidc_port"
node "$oidc_root/tests/oidc/provider.mjs" "$oidc_port" "$oidc_modules" >"$oidc_root/target/oidc-provider.log" 2>&1 &
oidc_pid=$!
if declare -F on_exit >/dev/null; then
    on_exit "kill $oidc_pid 2>/dev/null || true; wait $oidc_pid 2>/dev/null || true"
else
    trap "kill $oidc_pid 2>/dev/null || true" EXIT
fi

wait_for_port "$oidc_port" "$oidc_pid" "$oidc_root/target/oidc-provider.log"

export OIDC_ISSUER="http://127.0.0.1:$oidc_port"
