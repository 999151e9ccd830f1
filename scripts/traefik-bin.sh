#!/usr/bin/env bash
# Prints the path of a Traefik binary built from its Go module, building it once if needed.
# No release binary can be downloaded on our machines, and building takes 15-25 minutes on
# 2 cores, so the binary is cached outside the repo, keyed by version.
#   TRAEFIK_VERSION  (default v3.6.12; newer versions do not build from the module proxy)
#   TRAEFIK_CACHE    (default $HOME/.cache/sentinel/traefik)
# Progress goes to stderr; only the binary's path goes to stdout.
set -euo pipefail
version=${TRAEFIK_VERSION:-v3.6.12}
cache=${TRAEFIK_CACHE:-$HOME/.cache/sentinel/traefik}
bin="$cache/$version/traefik"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache/$version"
lock="$cache/$version.lock"
exec 9>"$lock"
echo "traefik-bin: waiting for the build lock $lock" >&2
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

echo "traefik-bin: building Traefik $version from its Go module (15-25 minutes on 2 cores, once per machine)" >&2
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@$version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "traefik-bin: go mod download gave no directory" >&2; exit 1; }
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
# Traefik's web UI assets are not in the module; an empty placeholder satisfies its go:embed.
mkdir -p webui/static && [ -n "$(ls -A webui/static)" ] || echo '<!doctype html><title>traefik</title>' > webui/static/index.html
start=$(date +%s)
( while sleep 60; do echo "traefik-bin: still building ($(( $(date +%s) - start ))s)" >&2; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null; chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
  -o "$bin.tmp" ./cmd/traefik
mv "$bin.tmp" "$bin"
echo "traefik-bin: built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
