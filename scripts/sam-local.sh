#!/usr/bin/env bash
# `sam local invoke` and `sam local start-api` for real: the built stack (target/sam-build, from `sam build`),
# its arm64 `bootstrap` binaries, in containers, against DynamoDB Local. Run by scripts/lambda-checks.sh
# (which has built it; scripts/test.sh has DynamoDB Local up and DYNAMODB_ENDPOINT set). Works offline,
# with Debian packages only:
#   - installs what is missing: docker.io, qemu-user-static + binfmt-support (arm64 binaries run through
#     binfmt), and debootstrap when the base image is not cached yet;
#   - starts dockerd if no Docker daemon answers, and registers qemu-aarch64 with binfmt_misc if needed;
#   - builds a Lambda-like arm64 base image from a `debootstrap --variant=minbase --arch=arm64 bookworm`
#     root filesystem, cached as a tarball under target/sam-local/cache/ (never committed), so only the
#     first run pays for debootstrap; SAM layers its own Runtime Interface Emulator on top of it
#     (`--invoke-image ... --skip-pull-image`), as it does on the AWS base image;
#   - creates a Docker network for the run; the functions reach DynamoDB Local at that network's gateway
#     (this machine's own address on the bridge), never any other address;
#   - runs every file in events/ (regenerated, freshly signed) through `sam local invoke` with
#     `license-server smoke --invoke-events`, which checks the status and error code its name says;
#   - serves the stack with `sam local start-api` on a loopback port and runs `license-server smoke`
#     against it: success and error per endpoint, HEAD, the $default route's 404 and 405, a
#     user-based activation and a race of 6 concurrent activations for 3 free slots;
#   - stops and removes everything it started (sam, containers, the network, the images, dockerd, the
#     binfmt registration), also when a check fails; prints how long each step took.
# SAM_LOCAL_KEEP_IMAGES=1 keeps the images (faster reruns while iterating).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${DYNAMODB_ENDPOINT:?run from scripts/test.sh (through scripts/lambda-checks.sh), which starts DynamoDB Local}"
TEMPLATE="$ROOT/target/sam-build/template.yaml"
[ -f "$TEMPLATE" ] || { echo "no $TEMPLATE: run \`sam build --build-dir target/sam-build\` first" >&2; exit 1; }

VENV="$ROOT/target/tools/venv"
export PATH="$VENV/bin:$PATH"
export SAM_CLI_TELEMETRY=0 AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
# SAM passes the host's credentials into the containers; DynamoDB Local accepts any.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
# Every `sam local` command asks AWS STS for the account id (sts:GetCallerIdentity) and falls back to
# 123456789012. Point STS at a closed loopback port: nothing leaves this machine, and no ~7 s of DNS
# retries per command.
export AWS_ENDPOINT_URL_STS=http://127.0.0.1:9 AWS_MAX_ATTEMPTS=1 AWS_EC2_METADATA_DISABLED=true
SERVER="$ROOT/target/debug/license-server"
cargo test -q --workspace --no-run  # builds license-server as the tests do: a no-op after scripts/test.sh

CACHE="$ROOT/target/sam-local/cache"
SUITE=bookworm
ROOTFS_TAR="$CACHE/debian-$SUITE-arm64-minbase.tar.gz"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
RUN_ID="$$"
IMAGE="license-api-lambda-base-$RUN_ID:$SUITE-arm64"   # SAM builds license-api-lambda-base-$RUN_ID:rapid-arm64 on it
NETWORK="license-api-sam-$RUN_ID"
WORK="$ROOT/target/sam-local/run"
# A debootstrap that died (killed, or its binfmt registration removed under it) leaves /proc and /sys
# mounted inside its root filesystem: unmount them before anything is deleted there.
unmount_under() {
    local m
    for m in $(findmnt -rn -o TARGET | grep "^$1/" | sort -r); do umount -l "$m" || true; done
}
unmount_under "$WORK"
rm -rf "$WORK" && mkdir -p "$WORK" "$CACHE"

# ---- cleanup: everything registered here runs once at exit, newest first, whatever happened ----------
cleanup=()
on_exit() { cleanup=("$*" "${cleanup[@]}"); }
run_cleanup() {
    local status=$?
    for c in "${cleanup[@]}"; do eval "$c" || true; done
    exit "$status"
}
trap run_cleanup EXIT
trap 'exit 130' INT TERM

# ---- timing: scripts/lib/timing.sh (the step table of the whole run) ----------------------------------
source "$ROOT/scripts/lib/timing.sh"
source "$ROOT/scripts/lib/ports.sh"
on_exit timings_total  # when run on its own: its step table at exit
STAGE_START=$(now)
log() { printf '==> sam local: %s\n' "$*"; }

# ---- packages ----------------------------------------------------------------------------------------
need_pkgs=()
command -v dockerd >/dev/null 2>&1 || docker info >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v docker >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -x /usr/bin/qemu-aarch64-static ] || need_pkgs+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || need_pkgs+=(binfmt-support)
[ -f "$ROOTFS_TAR" ] || command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v readelf >/dev/null 2>&1 || need_pkgs+=(binutils)
install_pkgs() {
    log "installing ${need_pkgs[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
}
if [ ${#need_pkgs[@]} -gt 0 ]; then
    mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
    timed "apt-get install ${need_pkgs[*]}" install_pkgs
fi

# ---- binfmt: arm64 binaries on this machine through qemu ---------------------------------------------
setup_binfmt() {
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
        on_exit "umount /proc/sys/fs/binfmt_misc 2>/dev/null"
    fi
    if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
        log "registering qemu-aarch64 with binfmt_misc"
        update-binfmts --enable qemu-aarch64
        on_exit "update-binfmts --disable qemu-aarch64 >/dev/null 2>&1"
    fi
    # F (fix binary): the kernel holds the interpreter open, so it also works inside containers, which
    # do not have the host's /usr/libexec/qemu-binfmt.
    grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
        echo "qemu-aarch64 is registered without the F flag; containers cannot run arm64 binaries" >&2
        cat /proc/sys/fs/binfmt_misc/qemu-aarch64 >&2
        exit 1
    }
}
timed "binfmt (qemu-aarch64)" setup_binfmt

# ---- Docker daemon -----------------------------------------------------------------------------------
start_dockerd() {
    if docker info >/dev/null 2>&1; then
        log "using the Docker daemon already running (left running)"
        return
    fi
    log "starting dockerd"
    # dockerd leaves its bridge behind when it stops; remove it too if it is ours.
    ip link show docker0 >/dev/null 2>&1 || on_exit "ip link delete docker0 2>/dev/null"
    # Without the userland proxy a published port refuses connections until the container listens on
    # it. With it, the proxy accepts at once, SAM takes that for the emulator being up, and gives up
    # after three quick retries while the emulator still starts under qemu (502 "Internal server error").
    dockerd --userland-proxy=false >"$WORK/dockerd.log" 2>&1 &
    local pid=$!
    on_exit "stop_dockerd $pid"
    for _ in $(seq 1 150); do
        docker info >/dev/null 2>&1 && return
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/dockerd.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "dockerd did not answer within 30 s" >&2
    tail -n 30 "$WORK/dockerd.log" >&2
    exit 1
}
stop_dockerd() {  # PID — SIGTERM, then wait for it (and the containerd it started) to exit
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 1 150); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$1" 2>/dev/null || true
}
timed "dockerd" start_dockerd

# ---- the base image ----------------------------------------------------------------------------------
build_rootfs() {
    log "debootstrap --variant=minbase --arch=arm64 $SUITE (once; cached as ${ROOTFS_TAR#"$ROOT"/})"
    local dir="$WORK/rootfs"
    on_exit "unmount_under '$dir'"
    debootstrap --variant=minbase --arch=arm64 --include=ca-certificates "$SUITE" "$dir" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 30 "$WORK/debootstrap.log" >&2
        exit 1
    }
    unmount_under "$dir"
    # What a Lambda image has no use for: package caches and lists, documentation, translations.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
        "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
    mkdir -p "$dir/var/task" "$dir/var/runtime" "$dir/opt"
    tar -C "$dir" --numeric-owner -czf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$dir"
}
[ -f "$ROOTFS_TAR" ] || timed "debootstrap arm64 rootfs (first run only)" build_rootfs
build_image() {
    # `docker import` would label the image amd64 (this daemon ignores its --platform); a FROM-scratch
    # build with --platform labels it arm64, which SAM's `docker build --platform linux/arm64` needs.
    local ctx="$WORK/image"
    mkdir -p "$ctx"
    ln -f "$ROOTFS_TAR" "$ctx/rootfs.tar.gz" 2>/dev/null || cp "$ROOTFS_TAR" "$ctx/rootfs.tar.gz"
    cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
ADD rootfs.tar.gz /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime
WORKDIR /var/task
DOCKERFILE
    DOCKER_BUILDKIT=0 docker build -q --platform linux/arm64 -t "$IMAGE" "$ctx" >/dev/null 2>"$WORK/image-build.log" || {
        cat "$WORK/image-build.log" >&2
        exit 1
    }
    rm -rf "$ctx"
}
timed "base image from the cached rootfs" build_image
if [ "${SAM_LOCAL_KEEP_IMAGES:-0}" != 1 ]; then
    # The base image and the one SAM builds on it (same repository, tag rapid-arm64).
    on_exit "docker rmi -f '$IMAGE' '${IMAGE%%:*}:rapid-arm64' >/dev/null 2>&1"
fi

# ---- network: the functions reach DynamoDB Local on this machine through the bridge's gateway --------
setup_network() {
    docker network create "$NETWORK" >/dev/null
    on_exit "docker network rm '$NETWORK' >/dev/null 2>&1"
    on_exit "remove_containers"
    GATEWAY="$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' "$NETWORK")"
    [ -n "$GATEWAY" ] || { echo "network $NETWORK has no gateway" >&2; exit 1; }
    DDB_PORT="${DYNAMODB_ENDPOINT##*:}"
    CONTAINER_DDB="http://$GATEWAY:$DDB_PORT"
    # DynamoDB Local listens on every address of this machine; check it is reachable from a container.
    docker run --rm --network "$NETWORK" --platform linux/arm64 "$IMAGE" \
        timeout 10 bash -c "exec 3<>/dev/tcp/$GATEWAY/$DDB_PORT" || {
        echo "containers on $NETWORK cannot reach DynamoDB Local at $GATEWAY:$DDB_PORT (a firewall?)" >&2
        exit 1
    }
}
remove_containers() {  # whatever sam left behind on the run's network
    local ids
    ids="$(docker ps -aq --filter "network=$NETWORK")"
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1
}
timed "network + DynamoDB Local reachable from a container" setup_network
log "network $NETWORK, DynamoDB Local at $CONTAINER_DDB for the functions"

# ---- the binaries must also run on the real base image ------------------------------------------------
# The image here is Debian bookworm (glibc 2.36); AWS's provided.al2023 has glibc 2.34. A binary that
# needed a newer glibc symbol would pass here and fail on AWS, so check the versions they require.
AL2023_GLIBC=2.34
NEED_GLIBC=0
for f in "$ROOT"/target/sam-build/*/bootstrap; do
    need="$(readelf -V "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)"
    if [ "$(printf '%s\n' "$need" "$AL2023_GLIBC" | sort -V | tail -n 1)" != "$AL2023_GLIBC" ]; then
        echo "${f#"$ROOT"/} needs glibc $need; provided.al2023 has $AL2023_GLIBC" >&2
        exit 1
    fi
    NEED_GLIBC="$(printf '%s\n' "$need" "$NEED_GLIBC" | sort -V | tail -n 1)"
done
log "the function binaries need glibc $NEED_GLIBC (provided.al2023 has $AL2023_GLIBC, the image here $(
    docker run --rm --platform linux/arm64 "$IMAGE" sh -c 'ldd --version | head -n 1 | grep -o "[0-9.]*$"'))"

# ---- store, keys, env-vars ---------------------------------------------------------------------------
# keygen writes the signing key, the sealing key and the OAuth token key; the functions get all three
# inline. The catalog is the example plus the OAuth client the token endpoint's events use
# (`license-server events --catalog`), its secret sealed with that sealing key.
"$SERVER" keygen --out "$WORK" --bits 2048 >/dev/null
"$SERVER" events --list --catalog "$WORK/catalog.json" >/dev/null
env_vars() {  # TABLE — the --env-vars file for every function (the SSM parameters emptied, inline keys)
    python - "$1" "$CONTAINER_DDB" "$WORK" >"$WORK/env-$1.json" <<'PY'
import json, sys
table, endpoint, work = sys.argv[1:4]
print(json.dumps({"Parameters": {
    "TABLE_NAME": table, "DYNAMODB_ENDPOINT": endpoint, "SIGNING_KEY_SSM_PARAMETER": "",
    "SIGNING_KEY_PEM": open(f"{work}/signing-key.pem").read(),
    "SEALING_KEY_BASE64": open(f"{work}/sealing-key").read().strip(),
    "TOKEN_KEY_PEM": open(f"{work}/token-key.pem").read(), "RUST_LOG": "warn"}}))
PY
    "$SERVER" import "$WORK/catalog.json" --sealing-key "$WORK/sealing-key" --dynamodb-table "$1" \
        --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --create-table >/dev/null
}
SAM_ARGS=(--template "$TEMPLATE" --invoke-image "$IMAGE" --skip-pull-image --docker-network "$NETWORK")

# ---- every event through `sam local invoke` ----------------------------------------------------------
# `license-server smoke --invoke-events` runs them in the order of a session and judges each answer by
# the outcome its file name records (server/src/events.rs), verifying signed answers with the public key.
invoke_events() {
    local events="$WORK/events" f
    "$SERVER" events --out "$events" >/dev/null
    env_vars sam-invoke
    # Every committed file is run (the generator writes the same set; tests/events.rs checks that).
    for f in "$ROOT"/events/*.json; do
        [ -f "$events/${f##*/}" ] || { echo "events/${f##*/} is not what \`license-server events\` writes" >&2; exit 1; }
    done
    "$SERVER" smoke --invoke-events "$events" --public-key "$WORK/signing-key.pub.pem" \
        -- "${SAM_ARGS[@]}" --env-vars "$WORK/env-sam-invoke.json"
}
log "sam local invoke: every file in events/"
timed "sam local invoke (every event)" invoke_events

# ---- the HTTP API through `sam local start-api` ------------------------------------------------------
API_PORT="$(free_port)"
BASE="http://127.0.0.1:$API_PORT"
start_api() {
    env_vars sam-api
    # One container per request, as Lambda runs concurrent requests in separate instances (warm
    # containers would run one function's requests one after the other).
    # Started with SIGINT at its default (a background job of a script ignores it), so that Ctrl-C's
    # signal makes sam stop and remove its containers.
    python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
        sam local start-api "${SAM_ARGS[@]}" --env-vars "$WORK/env-sam-api.json" --host 127.0.0.1 --port "$API_PORT" \
        >"$WORK/start-api.log" 2>&1 &
    API_PID=$!
    on_exit "stop_api"
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null && return
        kill -0 "$API_PID" 2>/dev/null || { cat "$WORK/start-api.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "sam local start-api did not listen within 60 s" >&2
    tail -n 30 "$WORK/start-api.log" >&2
    exit 1
}
stop_api() {  # Ctrl-C is what makes sam stop its containers
    kill -INT "$API_PID" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$API_PID" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$API_PID" 2>/dev/null || true
}
timed "sam local start-api (until it listens)" start_api

# `license-server smoke`: a race of 6 concurrent activations for the 3 free slots of the fresh table's
# DEMO-0000-0000-0001 (each request in its own container), then every endpoint's success and error
# answers, the $default route's 404 and 405, a user-based activation, the bundle endpoints and the SPEC §9
# calls an application makes on its device (variables, product details, features, user licenses, passwords).
http_checks() {
    LICENSE_SMOKE_SHARED_KEY=demo-shared-key-change-me LICENSE_SMOKE_PASSWORD=demo-password \
        "$SERVER" smoke --base-url "$BASE" --api-key demo-api-key --public-key "$WORK/signing-key.pub.pem" \
        --product demo --license-key DEMO-0000-0000-0001 --hardware-id sam-api-device --race-slots 3 \
        --bundle-product demo-suite --bundle-license-key SUITE-0000-0007 \
        --user-product demo-team --username ann@example.com || {
        tail -n 40 "$WORK/start-api.log" >&2
        exit 1
    }
}
log "sam local start-api on $BASE"
timed "sam local start-api requests" http_checks

record_timing "sam local: the whole stage" "$(elapsed "$STAGE_START")"
