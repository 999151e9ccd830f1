#!/usr/bin/env bash
# Prints the path of a Traefik binary built from its Go module, building it once if needed.
# No release binary can be downloaded on our machines, and building takes 15-25 minutes on
# 2 cores, so the binary is cached outside the repo, keyed by version.
#   TRAEFIK_VERSION  (default v3.6.12; newer versions do not build from the module proxy)
#   TRAEFIK_CACHE    (default $HOME/.cache/sentinel/traefik)
set -euo pipefail
. "$(dirname "$0")/lib/module-bin.sh"
MB_NAME=traefik
MB_MODULE=github.com/traefik/traefik/v3
MB_VERSION=${TRAEFIK_VERSION:-v3.6.12}
MB_CACHE=${TRAEFIK_CACHE:-$HOME/.cache/sentinel/traefik}
MB_PKG=./cmd/traefik
MB_LDFLAGS="-X github.com/traefik/traefik/v3/pkg/version.Version=$MB_VERSION"
MB_ESTIMATE="15-25 minutes"
# Traefik's web UI assets are not in the module; an empty placeholder satisfies its go:embed.
prepare_source() {
  mkdir -p webui/static
  [ -n "$(ls -A webui/static)" ] || echo '<!doctype html><title>traefik</title>' > webui/static/index.html
}
module_bin
