#!/usr/bin/env bash
# Builds skaffold from the Go module pinned in go.mod, once per machine, into
# <cache>/tools/skaffold-<version>/skaffold (the `skaffold build` / `skaffold run` of the kind
# test cluster, docs/kubernetes.md) and prints that folder; see ../tool.sh. The version must equal
# SKAFFOLD_VERSION in k8s/offline/versions.env.
#
# Why a wrapper module: skaffold's go.mod pins docker, viper and buildpacks' lifecycle with
# `replace` lines, which Go ignores in a dependency (so `go install ...@v2.16.1` selects docker v28
# and fails to compile). go.mod here repeats them; `go list -m all` gives the same versions as in
# skaffold's own module.
TOOL_NAME=skaffold
TOOL_MODULE=github.com/GoogleContainerTools/skaffold/v2
TOOL_PIN=SKAFFOLD_VERSION
TOOL_PACKAGE="$TOOL_MODULE/cmd/skaffold"
# Upstream links statically with cgo; its linux tags osusergo and netgo select the same pure-Go
# user and DNS code as CGO off does. timetzdata and release are upstream's other tags.
TOOL_TAGS="timetzdata osusergo netgo release"
TOOL_UPGRADE="go get $TOOL_MODULE@<version>, copy the replace lines of its go.mod, go mod tidy"

# What upstream's Makefile stamps, so `skaffold version` prints the version (and skaffold's schema
# checks know it); commit and date are the tag's, from the proxy's .info file of the version
# (go.sum already pins the module's content), which keeps the build reproducible.
tool_ldflags() {
    local info_file commit date vpkg="$TOOL_MODULE/pkg/skaffold/version"
    info_file="$(GOTOOLCHAIN=local GOFLAGS=-mod=readonly go mod download -json "$TOOL_MODULE@$1" |
        sed -n 's/^[[:space:]]*"Info": "\([^"]*\)".*/\1/p')"
    commit="$(sed -n 's/.*"Hash":"\([0-9a-f]*\)".*/\1/p' "$info_file")"
    date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info_file")"
    echo "-X $vpkg.version=$1 -X $vpkg.gitCommit=$commit -X $vpkg.buildDate=$date"
}
tool_check() { "$1" version >/dev/null; }

# shellcheck source-path=SCRIPTDIR source=../tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tool.sh"
