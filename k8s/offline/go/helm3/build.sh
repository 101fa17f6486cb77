#!/usr/bin/env bash
# Builds Helm 3 from the Go module pinned in go.mod, once per machine, into
# <cache>/tools/helm-<version>/helm (the helm skaffold v2.16.1 can drive; see go.mod for why not
# the project's Helm 4) and prints that folder; see ../tool.sh. The version must equal
# HELM3_VERSION in k8s/offline/versions.env.
TOOL_NAME=helm
TOOL_MODULE=helm.sh/helm/v3
TOOL_PIN=HELM3_VERSION
TOOL_PACKAGE="$TOOL_MODULE/cmd/helm"

# As upstream's Makefile: the version, and the Kubernetes version `helm template` assumes, taken
# from the client-go it is built with (v0.X.Y is Kubernetes 1.X).
tool_ldflags() {
    local m="$TOOL_MODULE" client_go k8s_minor flags
    client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' go.mod)"
    k8s_minor="$(cut -d. -f2 <<<"$client_go")"
    flags="-X $m/internal/version.version=$1 -X $m/internal/version.metadata="
    flags+=" -X $m/internal/version.gitTreeState=clean"
    if [[ -n "$k8s_minor" ]]; then
        flags+=" -X $m/pkg/lint/rules.k8sVersionMajor=1 -X $m/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
        flags+=" -X $m/pkg/chartutil.k8sVersionMajor=1 -X $m/pkg/chartutil.k8sVersionMinor=$k8s_minor"
    fi
    echo "$flags"
}
tool_check() { "$1" version >/dev/null; }

# shellcheck source-path=SCRIPTDIR source=../tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tool.sh"
