#!/usr/bin/env bash
# Runs govulncheck on the module against the Go vulnerability database, offline: the
# database's site cannot be reached from our machines, but its data is the module
# golang.org/x/vulndb, whose OSV files x/vulndb's indexdb turns into the directory layout
# `govulncheck -db file://…` reads. Both tools and the database are built once per machine,
# keyed by version (bump VULNDB_VERSION to a newer pseudo-version for newer advisories).
# What fails is decided by scripts/vulngate.
#   GOVULNCHECK_VERSION  VULNDB_VERSION  VULN_CACHE (default $HOME/.cache/sentinel/vuln)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tool_version=${GOVULNCHECK_VERSION:-v1.9.0}
db_version=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
cache=${VULN_CACHE:-$HOME/.cache/sentinel/vuln}

bin=$cache/govulncheck-$tool_version/govulncheck
if ! [ -x "$bin" ]; then
  echo "govulncheck: installing golang.org/x/vuln/cmd/govulncheck@$tool_version" >&2
  GOBIN=$(dirname "$bin") GOFLAGS=-mod=mod go install "golang.org/x/vuln/cmd/govulncheck@$tool_version"
fi

db=$cache/db-$db_version
if ! [ -d "$db/index" ]; then
  echo "govulncheck: building the database from golang.org/x/vulndb@$db_version (about a minute, once)" >&2
  src=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$db_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$db.tmp"
  (cd "$(mktemp -d)" && GOFLAGS=-mod=mod go run "golang.org/x/vulndb/cmd/indexdb@$db_version" -vulns "$src/data/osv" -out "$db.tmp")
  mv "$db.tmp" "$db"
fi

cd "$root"
echo "govulncheck: database golang.org/x/vulndb@$db_version" >&2
# A vulnerability called in a required module fails; the standard library's are listed with
# the Go release that fixes them (scripts/vulngate).
"$bin" -db "file://$db" -format json ./... | go run ./scripts/vulngate
