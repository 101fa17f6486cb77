#!/usr/bin/env bash
# Builds skaffold from the Go module pinned in go.mod, once per machine, into a cache folder keyed
# by its version (the `skaffold build` / `skaffold run` of the kind test cluster, docs/kubernetes.md):
#
#   ${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/tools/skaffold-<version>/skaffold
#
# Prints that folder as the only line on stdout (progress goes to stderr); a no-op when the binary
# is there. The version must equal SKAFFOLD_VERSION in k8s/offline/versions.env.
#
# Why a wrapper module: skaffold's go.mod pins docker, viper and buildpacks' lifecycle with
# `replace` lines, which Go ignores in a dependency (so `go install ...@v2.16.1` selects docker v28
# and fails to compile). go.mod here repeats them; `go list -m all` gives the same versions as in
# skaffold's own module.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

module=github.com/GoogleContainerTools/skaffold/v2
# Read the version from go.mod directly: asking `go list` would cost a second on every no-op run.
version="$(awk -v m="$module" '($1 == m && $2 ~ /^v/) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' go.mod)"
if [[ -z "$version" ]]; then
    echo "build.sh: no $module requirement found in $here/go.mod" >&2
    exit 1
fi
versions_env="$here/../../versions.env"
if [[ -f "$versions_env" ]]; then
    pinned="$(sed -n 's/^SKAFFOLD_VERSION=//p' "$versions_env" | tr -d "\"'")"
    if [[ -n "$pinned" && "$pinned" != "$version" ]]; then
        echo "build.sh: go.mod requires skaffold $version but versions.env pins SKAFFOLD_VERSION=$pinned;" \
            "change both (in $here: go get $module@$pinned, copy the replace lines of its go.mod, go mod tidy)" >&2
        exit 1
    fi
fi

cache_root="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/tools"
dest="$cache_root/skaffold-$version"

if [[ -x "$dest/skaffold" ]]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$cache_root"
# Serialise concurrent callers: the second one waits and then finds the binary built.
exec 9>"$cache_root/.build-skaffold-$version.lock"
flock 9
if [[ -x "$dest/skaffold" ]]; then
    echo "$dest"
    exit 0
fi

command -v go >/dev/null || {
    echo "build.sh: 'go' not found on PATH; install Go to build skaffold" >&2
    exit 1
}

# Build into a scratch folder and move the binary into place at the end, so an interrupted build
# never leaves a half-written binary where the fast path would trust it.
tmp="$(mktemp -d "$cache_root/.skaffold-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "build.sh: building skaffold $version into $dest" >&2
start=$(date +%s)
# -p 2: two cores; more parallel compiles only add memory pressure. CGO off gives a static binary
# (upstream links statically with cgo; its linux tags osusergo and netgo select the same pure-Go
# user and DNS code). timetzdata and release are upstream's other tags. GOTOOLCHAIN=local: never
# fetch another toolchain. -mod=readonly: a go.sum that does not match go.mod is an error.
# -X stamps what upstream's Makefile stamps, so `skaffold version` prints the version (and
# skaffold's schema checks know it); commit and date are the tag's, from the proxy's .info file
# of the version (go.sum already pins the module's content), which keeps the build reproducible.
info_file="$(GOTOOLCHAIN=local GOFLAGS=-mod=readonly go mod download -json "$module@$version" |
    sed -n 's/^[[:space:]]*"Info": "\([^"]*\)".*/\1/p')"
commit="$(sed -n 's/.*"Hash":"\([0-9a-f]*\)".*/\1/p' "$info_file")"
date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info_file")"
vpkg="$module/pkg/skaffold/version"
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -p 2 -trimpath -tags "timetzdata osusergo netgo release" \
    -ldflags="-s -w -X $vpkg.version=$version -X $vpkg.gitCommit=$commit -X $vpkg.buildDate=$date" \
    -o "$tmp/skaffold" "$module/cmd/skaffold" >&2
end=$(date +%s)

"$tmp/skaffold" version >/dev/null
mkdir -p "$dest"
mv "$tmp/skaffold" "$dest/skaffold"
echo "build.sh: built skaffold $version in $((end - start))s ($(du -h "$dest/skaffold" | cut -f1)) at $dest" >&2
echo "$dest"
