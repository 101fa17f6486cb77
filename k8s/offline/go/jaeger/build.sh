#!/usr/bin/env bash
# Builds Jaeger v2 all-in-one from the Go module pinned in go.mod, once per machine, into
# <cache>/tools/jaeger-<version>/jaeger (the trace store of tests/tracing and `TRACING=1 make dev`:
# OTLP in on 4317/4318, the query API and UI on 16686, in-memory storage; its config is
# services/local/jaeger.yaml) and prints that folder; see ../tool.sh. The version must equal
# JAEGER_VERSION in k8s/offline/versions.env.
TOOL_NAME=jaeger
TOOL_MODULE=github.com/jaegertracing/jaeger
TOOL_PIN=JAEGER_VERSION
TOOL_PACKAGE="$TOOL_MODULE/cmd/jaeger"

tool_check() { "$1" --help >/dev/null; }

# shellcheck source-path=SCRIPTDIR source=../tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tool.sh"
