#!/usr/bin/env bash
# Builds promtool from the Go module pinned in go.mod, once per machine, into
# <cache>/tools/promtool-<version>/promtool (what tests/alerts runs: `promtool check rules` and
# `promtool test rules` on the operator chart's alert rules) and prints that folder; see
# ../tool.sh. The version must equal PROMETHEUS_VERSION in k8s/offline/versions.env.
TOOL_NAME=promtool
TOOL_MODULE=github.com/prometheus/prometheus
TOOL_PIN=PROMETHEUS_VERSION
TOOL_PACKAGE="$TOOL_MODULE/cmd/promtool"

# As upstream's .promu.yml: the version stamp, so `promtool --version` names the release. The Go
# module v0.X.Y is Prometheus 3.(X-300).Y; the revision is left out (the module zip has no VCS).
tool_ldflags() {
    local minor patch release
    minor="$(cut -d. -f2 <<<"$1")"
    patch="$(cut -d. -f3 <<<"$1")"
    release="3.$((minor - 300)).$patch"
    echo "-X github.com/prometheus/common/version.Version=$release" \
        "-X github.com/prometheus/common/version.Branch=HEAD"
}
tool_check() { "$1" --version >/dev/null; }

# shellcheck source-path=SCRIPTDIR source=../tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tool.sh"
