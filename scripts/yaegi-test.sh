#!/usr/bin/env bash
# Runs the plugin's tests with the yaegi CLI v0.16.1 (the interpreter Traefik embeds).
# The CLI resolves imports GOPATH-style, so the repo is linked into a temporary GOPATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=v0.16.1
# `yaegi version` prints "devel" for go-installed builds, so the binary is kept in a
# directory named after its version.
gobin=${YAEGI_CACHE:-$HOME/.cache/sentinel/yaegi}/$version
yaegi=$gobin/yaegi
if ! [ -x "$yaegi" ]; then
  echo "yaegi-test: installing yaegi $version" >&2
  GOBIN=$gobin go install "github.com/traefik/yaegi/cmd/yaegi@$version"
fi
gp=$(mktemp -d)
trap 'rm -rf "$gp"' EXIT
mkdir -p "$gp/src/github.com/key-ip-sentinel"
ln -s "$root" "$gp/src/github.com/key-ip-sentinel/sentinel"
cd "$gp"
for pkg in github.com/key-ip-sentinel/sentinel/plugin/identity github.com/key-ip-sentinel/sentinel/plugin; do
  GOPATH=$gp "$yaegi" test "$@" "$pkg"
done
