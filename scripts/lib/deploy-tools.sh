# Sourced by the scripts: the deployment tools (cfn-lint, aws-sam-cli, cargo-lambda and ziglang, from PyPI)
# in a virtualenv under target/tools/venv, never committed. `install_deploy_tools` installs them if
# missing, under a lock, so scripts/test.sh can start it in the background while it compiles and
# scripts/lambda-checks.sh calls it again: that second call waits for the first and finds them there.

DEPLOY_TOOLS_VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/tools/venv"

install_deploy_tools() {
    mkdir -p "$(dirname "$DEPLOY_TOOLS_VENV")"
    (
        flock 9
        local v=$DEPLOY_TOOLS_VENV
        if [ ! -x "$v/bin/cargo-lambda" ] || [ ! -x "$v/bin/sam" ] || [ ! -x "$v/bin/cfn-lint" ]; then
            echo "==> installing cfn-lint, aws-sam-cli, cargo-lambda and ziglang into $v"
            rm -rf "$v"
            python3 -m venv "$v"
            "$v/bin/pip" install --quiet --disable-pip-version-check cfn-lint aws-sam-cli cargo-lambda ziglang
        fi
    ) 9>"$DEPLOY_TOOLS_VENV.lock"
}
