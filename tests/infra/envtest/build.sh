#!/usr/bin/env bash
# Builds the envtest binaries (kube-apiserver and etcd) from the Go modules pinned in go.mod, once
# per machine, into a cache folder keyed by the Kubernetes version:
#
#   ${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/envtest/k8s-<version>/
#
# Prints that folder as the only line on stdout (progress goes to stderr), so callers need not
# repeat the path logic. A no-op when both binaries are already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Read the version from go.mod directly: asking `go list` would cost a second on every no-op run.
version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { sub(/^v/, "", $2); print $2; exit }' go.mod)"
if [[ -z "$version" ]]; then
    echo "build.sh: no k8s.io/kubernetes requirement found in $here/go.mod" >&2
    exit 1
fi

cache_root="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/envtest"
dest="$cache_root/k8s-$version"

complete() {
    [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" ]]
}

if complete; then
    echo "$dest"
    exit 0
fi

mkdir -p "$cache_root"
# Serialise concurrent callers (pytest-xdist workers, parallel make jobs): the second one waits
# and then finds the binaries built.
exec 9>"$cache_root/.build-k8s-$version.lock"
flock 9
if complete; then
    echo "$dest"
    exit 0
fi

command -v go >/dev/null || {
    echo "build.sh: 'go' not found on PATH; install Go or set KUBEBUILDER_ASSETS" >&2
    exit 1
}

# Build into a scratch folder beside the destination and rename it into place at the end, so an
# interrupted build never leaves a half-written binary where the fast path would trust it.
tmp="$(mktemp -d "$cache_root/.k8s-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "build.sh: building kube-apiserver and etcd for Kubernetes $version into $dest" >&2
start=$(date +%s)
# -p 2: two cores; more parallel compiles only add memory pressure. CGO off gives static
# binaries, as upstream releases are built. GOTOOLCHAIN=local: never fetch another toolchain.
# -mod=readonly: a go.sum that does not match go.mod is an error, not a silent rewrite.
# The -X flags stamp the version as upstream's hack/lib/version.sh does; without them /version
# would answer v0.0.0-master.
major="${version%%.*}"
minor="${version#*.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
done
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -p 2 -trimpath -ldflags="$ldflags" -o "$tmp/" ./cmd/kube-apiserver ./cmd/etcd >&2
end=$(date +%s)

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
chmod 755 "$dest"
echo "build.sh: built in $((end - start))s ($(du -sh "$dest" | cut -f1)) at $dest" >&2
echo "$dest"
