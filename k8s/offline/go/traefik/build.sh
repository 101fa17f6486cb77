#!/usr/bin/env bash
# Builds Traefik from the Go module pinned in go.mod, once per machine, into
# <cache>/tools/traefik-<version>/traefik (the binary of the offline path's ingress image,
# k8s/offline/build.sh) and prints that folder; see ../tool.sh. The version must equal
# TRAEFIK_VERSION in k8s/offline/versions.env, the pin the manifests' image tag is checked against
# (tests/charts/test_traefik_manifest.py).
TOOL_NAME=traefik
TOOL_MODULE=github.com/traefik/traefik/v3
TOOL_PIN=TRAEFIK_VERSION
TOOL_PACKAGE="$TOOL_MODULE/cmd/traefik"

# Upstream's Makefile stamps the version; without it `traefik version` says "dev".
tool_ldflags() { echo "-X $TOOL_MODULE/pkg/version.Version=$1"; }

# shellcheck source-path=SCRIPTDIR source=../tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tool.sh"
