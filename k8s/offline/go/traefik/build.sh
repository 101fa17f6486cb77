#!/usr/bin/env bash
# Builds Traefik from the Go module pinned in go.mod, once per machine, into a cache folder keyed
# by its version (the binary of the offline path's ingress image, k8s/offline/build.sh):
#
#   ${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/tools/traefik-<version>/traefik
#
# Prints that folder as the only line on stdout (progress goes to stderr); a no-op when the binary
# is there. The version must equal TRAEFIK_VERSION in k8s/offline/versions.env, the pin the
# manifests' image tag is checked against (tests/charts/test_traefik_manifest.py).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Read the version from go.mod directly: asking `go list` would cost a second on every no-op run.
version="$(awk '$1 == "github.com/traefik/traefik/v3" && $2 ~ /^v/ { print $2; exit }' go.mod)"
if [[ -z "$version" ]]; then
    echo "build.sh: no github.com/traefik/traefik/v3 requirement found in $here/go.mod" >&2
    exit 1
fi
versions_env="$here/../../versions.env"
if [[ -f "$versions_env" ]]; then
    pinned="$(sed -n 's/^TRAEFIK_VERSION=//p' "$versions_env" | tr -d "\"'")"
    if [[ -n "$pinned" && "$pinned" != "$version" ]]; then
        echo "build.sh: go.mod requires traefik $version but versions.env pins TRAEFIK_VERSION=$pinned;" \
            "change both (in $here: go get github.com/traefik/traefik/v3@$pinned && go mod tidy)" >&2
        exit 1
    fi
fi

cache_root="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/tools"
dest="$cache_root/traefik-$version"

if [[ -x "$dest/traefik" ]]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$cache_root"
# Serialise concurrent callers: the second one waits and then finds the binary built.
exec 9>"$cache_root/.build-traefik-$version.lock"
flock 9
if [[ -x "$dest/traefik" ]]; then
    echo "$dest"
    exit 0
fi

command -v go >/dev/null || {
    echo "build.sh: 'go' not found on PATH; install Go to build Traefik" >&2
    exit 1
}

# Build into a scratch folder and move the binary into place at the end, so an interrupted build
# never leaves a half-written binary where the fast path would trust it.
tmp="$(mktemp -d "$cache_root/.traefik-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "build.sh: building traefik $version into $dest" >&2
start=$(date +%s)
# -p 2: two cores; more parallel compiles only add memory pressure. CGO off gives a static binary,
# as upstream's release build does. GOTOOLCHAIN=local: never fetch another toolchain.
# -mod=readonly: a go.sum that does not match go.mod is an error, not a silent rewrite.
# -X stamps the version as upstream's Makefile does; without it `traefik version` says "dev".
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -p 2 -trimpath \
    -ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
    -o "$tmp/traefik" github.com/traefik/traefik/v3/cmd/traefik >&2
end=$(date +%s)

mkdir -p "$dest"
mv "$tmp/traefik" "$dest/traefik"
echo "build.sh: built traefik $version in $((end - start))s ($(du -h "$dest/traefik" | cut -f1)) at $dest" >&2
echo "$dest"
