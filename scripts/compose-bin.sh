#!/usr/bin/env bash
# Prints the path of a Docker Compose v2 binary built from its Go module, building it once if
# needed (about 5 minutes on 2 cores; cached outside the repo, keyed by version). make
# compose-test installs it as the docker CLI plugin `docker compose`.
#   COMPOSE_VERSION  (default v2.40.3)
#   COMPOSE_CACHE    (default $HOME/.cache/sentinel/compose)
set -euo pipefail
. "$(dirname "$0")/lib/module-bin.sh"
MB_NAME=docker-compose
MB_MODULE=github.com/docker/compose/v2
MB_VERSION=${COMPOSE_VERSION:-v2.40.3}
MB_CACHE=${COMPOSE_CACHE:-$HOME/.cache/sentinel/compose}
MB_PKG=./cmd
MB_LDFLAGS="-X github.com/docker/compose/v2/internal.Version=$MB_VERSION"
MB_ESTIMATE="about 5 minutes"
module_bin
