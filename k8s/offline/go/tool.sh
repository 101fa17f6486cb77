# shellcheck shell=bash
# Sourced by k8s/offline/go/<tool>/build.sh: builds one Go tool from the module its wrapper go.mod
# pins, once per machine, into a cache folder keyed by its version,
#
#   ${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/tools/<name>-<version>/<name>
#
# and prints that folder as the only line on stdout (progress goes to stderr); a no-op when the
# binary is there. The caller sets, before sourcing:
#   TOOL_NAME      binary and cache folder name (traefik, skaffold, helm)
#   TOOL_MODULE    the Go module required by go.mod (its version is the tool's)
#   TOOL_PIN       the variable of k8s/offline/versions.env that must hold the same version
#   TOOL_PACKAGE   the main package to build
#   TOOL_TAGS      (optional) build tags
#   TOOL_UPGRADE   (optional) how to move go.mod to another version, for the mismatch message
# and may define tool_ldflags VERSION (extra -ldflags, e.g. the version stamp upstream's release
# build sets) and tool_check BINARY (a smoke run of the built binary before it is moved in place).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
cd "$here"

# Read the version from go.mod directly: asking `go list` would cost a second on every no-op run.
version="$(awk -v m="$TOOL_MODULE" '
    ($1 == m && $2 ~ /^v/) { print $2; exit }
    ($1 == "require" && $2 == m) { print $3; exit }' go.mod)"
if [[ -z "$version" ]]; then
    echo "build.sh: no $TOOL_MODULE requirement found in $here/go.mod" >&2
    exit 1
fi
versions_env="$here/../../versions.env"
if [[ -f "$versions_env" ]]; then
    pinned="$(sed -n "s/^${TOOL_PIN}=//p" "$versions_env" | tr -d "\"'")"
    if [[ -n "$pinned" && "$pinned" != "$version" ]]; then
        echo "build.sh: go.mod requires $TOOL_NAME $version but versions.env pins $TOOL_PIN=$pinned;" \
            "change both (in $here: ${TOOL_UPGRADE:-go get $TOOL_MODULE@$pinned && go mod tidy})" >&2
        exit 1
    fi
fi

cache_root="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/tools"
dest="$cache_root/$TOOL_NAME-$version"
if [[ -x "$dest/$TOOL_NAME" ]]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$cache_root"
# Serialise concurrent callers: the second one waits and then finds the binary built.
exec 9>"$cache_root/.build-$TOOL_NAME-$version.lock"
flock 9
if [[ -x "$dest/$TOOL_NAME" ]]; then
    echo "$dest"
    exit 0
fi

command -v go >/dev/null || {
    echo "build.sh: 'go' not found on PATH; install Go to build $TOOL_NAME" >&2
    exit 1
}

# Build into a scratch folder and move the binary into place at the end, so an interrupted build
# never leaves a half-written binary where the fast path would trust it.
tmp="$(mktemp -d "$cache_root/.$TOOL_NAME-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

ldflags="-s -w"
if declare -F tool_ldflags >/dev/null; then
    ldflags+=" $(tool_ldflags "$version")"
fi

echo "build.sh: building $TOOL_NAME $version into $dest" >&2
start=$(date +%s)
# -p 2: two cores; more parallel compiles only add memory pressure. CGO off: a static binary.
# GOTOOLCHAIN=local: never fetch another toolchain. -mod=readonly: a go.sum that does not match
# go.mod is an error, not a silent rewrite.
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -p 2 -trimpath -tags "${TOOL_TAGS:-}" -ldflags="$ldflags" \
    -o "$tmp/$TOOL_NAME" "$TOOL_PACKAGE" >&2
end=$(date +%s)
if declare -F tool_check >/dev/null; then
    tool_check "$tmp/$TOOL_NAME"
fi

mkdir -p "$dest"
mv "$tmp/$TOOL_NAME" "$dest/$TOOL_NAME"
echo "build.sh: built $TOOL_NAME $version in $((end - start))s ($(du -h "$dest/$TOOL_NAME" | cut -f1)) at $dest" >&2
echo "$dest"
