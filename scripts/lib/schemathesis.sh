# Sourced by scripts/contract-test.sh: schemathesis (PyPI, pinned) in a virtualenv under
# target/tools/schemathesis, never committed. `install_schemathesis` installs it if missing, under a
# lock; without PyPI it says so and fails, leaving no half-built venv behind.

SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/tools/schemathesis"

install_schemathesis() {
    mkdir -p "$(dirname "$SCHEMATHESIS_VENV")"
    (
        flock 9
        local v=$SCHEMATHESIS_VENV
        if [ -x "$v/bin/st" ] && "$v/bin/st" --version 2>/dev/null | grep -q " $SCHEMATHESIS_VERSION\$"; then
            exit 0
        fi
        if ! python3 -m venv --help >/dev/null 2>&1; then
            echo "==> installing python3-venv (the contract test's schemathesis runs in a virtualenv)"
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        fi
        echo "==> installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $v"
        rm -rf "$v"
        python3 -m venv "$v"
        if ! "$v/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; then
            rm -rf "$v"
            echo "cannot install schemathesis $SCHEMATHESIS_VERSION from PyPI (offline?); the contract test" \
                "needs it once, then runs from $v" >&2
            exit 1
        fi
    ) 9>"$SCHEMATHESIS_VENV.lock"
}
