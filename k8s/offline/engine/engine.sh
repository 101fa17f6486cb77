#!/usr/bin/env bash
# A private Docker engine for machines that have none running (CI machines, air-gapped hosts):
# Debian's dockerd with its own socket, data root and exec root, so it never touches a system
# engine. Its data root lives in the cache folder, so built images survive between runs.
#
#   engine.sh start    start it (a no-op when it answers already); prints `export ...` lines
#   engine.sh env      print the `export ...` lines that point docker and kind at it
#   engine.sh stop     stop it and every container it runs (kind clusters included)
#   engine.sh status   exit 0 when it answers
#   engine.sh run CMD...   run CMD with a Docker engine: the one that answers (DOCKER_HOST or the
#                      default socket), else this private one, started for CMD and stopped after
#                      it (kept with CHECKOUT_KEEP_CLUSTER=1); without dockerd, CMD runs as it is
#                      (the cluster tests then skip and say why). `make test` runs pytest this way.
#
#   eval "$(k8s/offline/engine/engine.sh start)"
#
# Host quirks are detected and worked around only where present:
# - no CAP_SYS_RESOURCE in the capability bounding set (Firecracker VMs): `docker run --privileged`
#   fails in runc ("unable to apply caps"), so the default OCI runtime becomes runc-wrapper, which
#   drops that one capability from each container's spec.
# - no Docker engine package: with CHECKOUT_INSTALL_DOCKER=1 (CI sets it) Debian's docker.io is
#   installed; otherwise this says what to install and exits 2. Never installs unasked.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}"
run_dir="${CHECKOUT_DOCKER_RUN_DIR:-/run/checkout-docker}"
data_root="${CHECKOUT_DOCKER_DATA_ROOT:-$cache/docker}"
socket="$run_dir/docker.sock"
pidfile="$run_dir/dockerd.pid"
log="$run_dir/dockerd.log"

say() { printf 'engine.sh: %s\n' "$*" >&2; }

env_lines() {
    echo "export DOCKER_HOST=unix://$socket"
    # BuildKit for RUN --mount; Debian's client (20.10) has it built in, the engine is 20.10 too.
    echo "export DOCKER_BUILDKIT=1"
    if [[ -x /usr/bin/docker ]]; then
        echo "export CHECKOUT_DOCKER=/usr/bin/docker"
    fi
}

answers() {
    DOCKER_HOST="unix://$socket" timeout 10 "$(docker_client)" info >/dev/null 2>&1
}

docker_client() {
    if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker; fi
}

lacks_sys_resource() {
    # Bit 24 of the bounding set is CAP_SYS_RESOURCE.
    local bounding
    bounding="$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)"
    (((16#$bounding >> 24 & 1) == 0))
}

ensure_installed() {
    if command -v dockerd >/dev/null 2>&1 && command -v containerd >/dev/null 2>&1; then
        return
    fi
    if [[ "${CHECKOUT_INSTALL_DOCKER:-}" != "1" ]]; then
        say "no dockerd on this machine; install Debian's engine (apt-get install docker.io) or run with CHECKOUT_INSTALL_DOCKER=1"
        exit 2
    fi
    say "installing Debian's docker.io (CHECKOUT_INSTALL_DOCKER=1)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >&2 ||
        { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >&2; }
}

start() {
    if answers; then
        env_lines
        return
    fi
    ensure_installed
    mkdir -p "$run_dir" "$data_root"
    local args=(
        --host "unix://$socket"
        --data-root "$data_root"
        --exec-root "$run_dir/exec"
        --pidfile "$pidfile"
        # No default bridge: kind makes its own network; builds use --network host.
        --bridge none
        --storage-driver overlay2
        --log-level warn
    )
    if lacks_sys_resource; then
        say "this host's capability bounding set lacks CAP_SYS_RESOURCE: default runtime is runc-wrapper"
        args+=(--add-runtime "checkout-runc=$here/runc-wrapper" --default-runtime checkout-runc)
    fi
    say "starting a private dockerd (socket $socket, data $data_root)"
    # setsid: the engine outlives this shell but not `engine.sh stop`.
    setsid dockerd "${args[@]}" >"$log" 2>&1 </dev/null &

    for _ in $(seq 1 60); do
        answers && {
            env_lines
            return
        }
        sleep 1
    done
    say "dockerd did not answer within 60s; its log ($log) ends with:"
    tail -n 20 "$log" >&2 || true
    exit 1
}

stop() {
    if [[ ! -f "$pidfile" ]]; then
        say "no private dockerd running"
        return
    fi
    local pid
    pid="$(cat "$pidfile")"
    if answers; then
        # Containers first (kind nodes run systemd and take a moment), then the engine.
        local ids
        ids="$(DOCKER_HOST="unix://$socket" "$(docker_client)" ps -aq || true)"
        if [[ -n "$ids" ]]; then
            say "removing $(wc -w <<<"$ids") container(s)"
            # shellcheck disable=SC2086
            DOCKER_HOST="unix://$socket" "$(docker_client)" rm -f $ids >/dev/null || true
        fi
    fi
    say "stopping the private dockerd (pid $pid)"
    kill "$pid" 2>/dev/null || true

    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

run() {
    if DOCKER_HOST="${DOCKER_HOST:-}" timeout 20 "$(docker_client)" info >/dev/null 2>&1; then
        exec "$@"
    fi
    if ! command -v dockerd >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
        say "no Docker engine answers and none can be started here (needs dockerd and root)"
        exec "$@"
    fi
    local started=0 status=0
    answers || started=1
    eval "$(start)"
    if ((started)) && [[ "${CHECKOUT_KEEP_CLUSTER:-}" != 1 ]]; then
        trap 'stop' EXIT
    fi
    "$@" || status=$?
    return "$status"
}

case "${1:-}" in
    start) start ;;
    run) shift && run "$@" ;;
    env) env_lines ;;
    stop) stop ;;
    status) answers ;;
    *)
        sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2
        exit 64
        ;;
esac
