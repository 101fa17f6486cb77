#!/usr/bin/env bash
# Builds Helm 3 from the Go module pinned in go.mod, once per machine, into a cache folder keyed by
# its version (the helm skaffold v2.16.1 can drive; see go.mod for why not the project's Helm 4):
#
#   ${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/tools/helm-<version>/helm
#
# Prints that folder as the only line on stdout (progress goes to stderr); a no-op when the binary
# is there. The version must equal HELM3_VERSION in k8s/offline/versions.env.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

module=helm.sh/helm/v3
# Read the version from go.mod directly: asking `go list` would cost a second on every no-op run.
version="$(awk -v m="$module" '($1 == m && $2 ~ /^v/) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' go.mod)"
if [[ -z "$version" ]]; then
    echo "build.sh: no $module requirement found in $here/go.mod" >&2
    exit 1
fi
versions_env="$here/../../versions.env"
if [[ -f "$versions_env" ]]; then
    pinned="$(sed -n 's/^HELM3_VERSION=//p' "$versions_env" | tr -d "\"'")"
    if [[ -n "$pinned" && "$pinned" != "$version" ]]; then
        echo "build.sh: go.mod requires helm $version but versions.env pins HELM3_VERSION=$pinned;" \
            "change both (in $here: go get $module@$pinned && go mod tidy)" >&2
        exit 1
    fi
fi

cache_root="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/tools"
dest="$cache_root/helm-$version"

if [[ -x "$dest/helm" ]]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$cache_root"
# Serialise concurrent callers: the second one waits and then finds the binary built.
exec 9>"$cache_root/.build-helm-$version.lock"
flock 9
if [[ -x "$dest/helm" ]]; then
    echo "$dest"
    exit 0
fi

command -v go >/dev/null || {
    echo "build.sh: 'go' not found on PATH; install Go to build helm" >&2
    exit 1
}

# Build into a scratch folder and move the binary into place at the end, so an interrupted build
# never leaves a half-written binary where the fast path would trust it.
tmp="$(mktemp -d "$cache_root/.helm-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "build.sh: building helm $version into $dest" >&2
start=$(date +%s)
# As upstream's Makefile: the version, and the Kubernetes version `helm template` assumes taken
# from the client-go it is built with (v0.X.Y is Kubernetes 1.X). -p 2: two cores. CGO off: a
# static binary. GOTOOLCHAIN=local: never fetch another toolchain. -mod=readonly: go.sum must match.
client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' go.mod)"
k8s_minor="$(cut -d. -f2 <<<"$client_go")"
ldflags="-s -w -X $module/internal/version.version=$version -X $module/internal/version.metadata="
ldflags+=" -X $module/internal/version.gitTreeState=clean"
if [[ -n "$k8s_minor" ]]; then
    ldflags+=" -X $module/pkg/lint/rules.k8sVersionMajor=1 -X $module/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
    ldflags+=" -X $module/pkg/chartutil.k8sVersionMajor=1 -X $module/pkg/chartutil.k8sVersionMinor=$k8s_minor"
fi
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -p 2 -trimpath -ldflags="$ldflags" -o "$tmp/helm" "$module/cmd/helm" >&2
end=$(date +%s)

"$tmp/helm" version >/dev/null
mkdir -p "$dest"
mv "$tmp/helm" "$dest/helm"
echo "build.sh: built helm $version in $((end - start))s ($(du -h "$dest/helm" | cut -f1)) at $dest" >&2
echo "$dest"
