#!/usr/bin/env bash
# Prints the path of golangci-lint at the version make lint pins, building it once from its
# module (no release binaries can be downloaded on our machines; a few minutes on 2 cores).
#   GOLANGCI_LINT_VERSION (default below)  GOLANGCI_LINT_CACHE (default $HOME/.cache/sentinel/golangci-lint)
set -euo pipefail
. "$(dirname "$0")/lib/module-bin.sh"
MB_NAME=golangci-lint
MB_MODULE=github.com/golangci/golangci-lint/v2
MB_VERSION=${GOLANGCI_LINT_VERSION:-v2.15.0}
MB_CACHE=${GOLANGCI_LINT_CACHE:-$HOME/.cache/sentinel/golangci-lint}
MB_PKG=./cmd/golangci-lint
MB_LDFLAGS="-X main.version=${MB_VERSION#v}"
MB_ESTIMATE="3-8 minutes"
module_bin
