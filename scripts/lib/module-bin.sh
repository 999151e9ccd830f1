# Builds a Go command from a module version on the module proxy, once, into a cache outside
# the repo (our machines can download modules but no release binaries). Sourced by the
# *-bin.sh scripts, which set the variables below and may define prepare_source.
#   MB_NAME MB_MODULE MB_VERSION MB_CACHE MB_PKG MB_LDFLAGS MB_ESTIMATE
# Progress goes to stderr; only the binary's path goes to stdout.
module_bin() {
  local bin="$MB_CACHE/$MB_VERSION/$MB_NAME"
  if [ -x "$bin" ]; then echo "$bin"; return 0; fi
  mkdir -p "$MB_CACHE/$MB_VERSION"
  exec 9>"$MB_CACHE/$MB_VERSION.lock"
  echo "$MB_NAME-bin: waiting for the build lock $MB_CACHE/$MB_VERSION.lock" >&2
  flock 9
  if [ -x "$bin" ]; then echo "$bin"; return 0; fi

  echo "$MB_NAME-bin: building $MB_MODULE@$MB_VERSION ($MB_ESTIMATE on 2 cores, once per machine)" >&2
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  local dir
  dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$MB_MODULE@$MB_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { echo "$MB_NAME-bin: go mod download gave no directory" >&2; return 1; }
  # The module cache is read-only, and some builds write beside their sources.
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  if declare -F prepare_source >/dev/null; then (cd "$work/src" && prepare_source); fi
  local start; start=$(date +%s)
  ( while sleep 60; do echo "$MB_NAME-bin: still building ($(( $(date +%s) - start ))s)" >&2; done ) &
  ticker=$!
  trap 'kill $ticker 2>/dev/null; chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  (cd "$work/src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $MB_LDFLAGS" -o "$bin.tmp" "$MB_PKG")
  mv "$bin.tmp" "$bin"
  echo "$MB_NAME-bin: built $bin in $(( $(date +%s) - start ))s" >&2
  echo "$bin"
}
