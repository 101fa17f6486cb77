#!/usr/bin/env bash
# Builds upstream Kubernetes binaries from the Go modules pinned in go.mod, once per machine, into
# a cache folder keyed by the Kubernetes version:
#
#   ${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/kubernetes/v<version>/
#
#   build.sh                      kube-apiserver and etcd (the envtest pair the operator tests use)
#   build.sh BINARY...            those binaries
#   build.sh all                  all eight: also kubelet, kubeadm, kubectl, kube-controller-manager,
#                                 kube-scheduler and kube-proxy (the offline kind node, k8s/offline)
#
# Prints that folder as the only line on stdout (progress goes to stderr), so callers need not
# repeat the path logic. Only missing binaries are built; a no-op when all are there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# kube-apiserver and etcd are wrappers in cmd/ (etcd is not part of k8s.io/kubernetes); the others
# are the upstream main packages, listed as `tool` lines in go.mod so go.sum covers them.
declare -A packages=(
    [kube-apiserver]=./cmd/kube-apiserver
    [etcd]=./cmd/etcd
    [kubelet]=k8s.io/kubernetes/cmd/kubelet
    [kubeadm]=k8s.io/kubernetes/cmd/kubeadm
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
    [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
)
all=(kube-apiserver etcd kubelet kubeadm kubectl kube-controller-manager kube-scheduler kube-proxy)

wanted=("$@")
if ((${#wanted[@]} == 0)); then
    wanted=(kube-apiserver etcd)
elif [[ "${wanted[*]}" == "all" ]]; then
    wanted=("${all[@]}")
fi
for name in "${wanted[@]}"; do
    [[ -n "${packages[$name]:-}" ]] || {
        echo "build.sh: unknown binary '$name'; known: ${all[*]} (or all)" >&2
        exit 64
    }
done

# Read the version from go.mod directly: asking `go list` would cost a second on every no-op run.
version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { sub(/^v/, "", $2); print $2; exit }' go.mod)"
if [[ -z "$version" ]]; then
    echo "build.sh: no k8s.io/kubernetes requirement found in $here/go.mod" >&2
    exit 1
fi

cache_root="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/kubernetes"
dest="$cache_root/v$version"

missing() {
    local name
    for name in "${wanted[@]}"; do
        [[ -x "$dest/$name" ]] || printf '%s\n' "$name"
    done
}

if [[ -z "$(missing)" ]]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$dest"
# Serialise concurrent callers (pytest-xdist workers, parallel make jobs): the second one waits
# and then finds the binaries built.
exec 9>"$cache_root/.build-v$version.lock"
flock 9
mapfile -t todo < <(missing)
if ((${#todo[@]} == 0)); then
    echo "$dest"
    exit 0
fi

command -v go >/dev/null || {
    echo "build.sh: 'go' not found on PATH; install Go (or set KUBEBUILDER_ASSETS for the envtest pair)" >&2
    exit 1
}

# Build into a scratch folder beside the destination and move each binary into place at the end,
# so an interrupted build never leaves a half-written binary where the fast path would trust it.
tmp="$(mktemp -d "$cache_root/.v$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

targets=()
for name in "${todo[@]}"; do
    targets+=("${packages[$name]}")
done
echo "build.sh: building ${todo[*]} for Kubernetes $version into $dest" >&2
start=$(date +%s)
# -p 2: two cores; more parallel compiles only add memory pressure. CGO off gives static
# binaries, as upstream releases are built. GOTOOLCHAIN=local: never fetch another toolchain.
# -mod=readonly: a go.sum that does not match go.mod is an error, not a silent rewrite.
# The -X flags stamp the version as upstream's hack/lib/version.sh does; without them /version
# (and kubeadm's choice of control-plane images) would say v0.0.0-master.
major="${version%%.*}"
minor="${version#*.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
done
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -p 2 -trimpath -ldflags="$ldflags" -o "$tmp/" "${targets[@]}" >&2
end=$(date +%s)

for name in "${todo[@]}"; do
    mv "$tmp/$name" "$dest/$name"
done
chmod 755 "$dest"
echo "build.sh: built ${todo[*]} in $((end - start))s ($(du -sh "$dest" | cut -f1) in all) at $dest" >&2
echo "$dest"
