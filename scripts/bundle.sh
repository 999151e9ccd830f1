#!/usr/bin/env bash
# make bundle: everything an offline (air-gapped) host needs to run Key-IP Sentinel beside New
# API with Docker, as one tarball: a static admind (console included) with a FROM-scratch
# Dockerfile that needs no base image, the compose file and an override that uses it, the
# Traefik configs and New API examples, the plugin's source (Traefik loads it as a local
# plugin, no catalog), and, when this machine has Docker, the three upstream images.
# Output: ${BUNDLE_DIR:-bin/bundle}/key-ip-sentinel-<version>.tar.gz (+ .sha256)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f web/dist/index.html ] || { echo "bundle: the console is not built; run make web first" >&2; exit 1; }

version=$(git describe --always --dirty 2>/dev/null || echo dev)
out_dir=${BUNDLE_DIR:-bin/bundle}
name=key-ip-sentinel-$version
stage=$out_dir/$name
rm -rf "$stage" && mkdir -p "$stage"

echo "bundle: building a static admind ($version)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$stage/admind" ./admind

echo "bundle: copying configs and the plugin source"
cp docker-compose.yml .env.example .traefik.yml go.mod go.sum "$stage/"
mkdir -p "$stage/traefik" "$stage/scripts"
cp -r traefik/static.yml traefik/dynamic traefik/examples "$stage/traefik/"
cp scripts/make-secrets.sh "$stage/scripts/"
# The plugin package and the packages under it (plugin/identity), without tests or test data.
find plugin -name '*.go' ! -name '*_test.go' ! -path '*/testdata/*' | while read -r f; do
  mkdir -p "$stage/$(dirname "$f")" && cp "$f" "$stage/$f"
done
cp /etc/ssl/certs/ca-certificates.crt "$stage/ca-certificates.crt" # webhooks over https

cat > "$stage/Dockerfile.offline" <<'DOCKERFILE'
# admind from the prebuilt static binary: FROM scratch needs nothing from a registry.
FROM scratch
COPY admind /admind
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/admind"]
DOCKERFILE

cat > "$stage/docker-compose.offline.yml" <<'COMPOSE'
# Use with: docker compose -f docker-compose.yml -f docker-compose.offline.yml up -d
services:
  admind:
    build:
      context: .
      dockerfile: Dockerfile.offline
COMPOSE

images="traefik:v3.6.12 redis:7-alpine postgres:16"
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  echo "bundle: saving images ($images)"
  for i in $images; do docker image inspect "$i" >/dev/null 2>&1 || docker pull "$i"; done
  docker save -o "$stage/images.tar" $images
  images_note="images.tar holds them: docker load -i images.tar"
else
  images_note="this bundle was made without Docker, so they are not included: on a connected machine run
  docker pull <image> for each, then docker save -o images.tar $images
and copy images.tar next to this file; on the offline host: docker load -i images.tar"
fi

cat > "$stage/OFFLINE.md" <<EOF_DOC
# Key-IP Sentinel $version: offline installation

1. Images. The stack needs $images. $images_note
2. admind's image is built here from the static binary, with no registry:
   \`docker compose -f docker-compose.yml -f docker-compose.offline.yml build admind\`
3. \`cp .env.example .env\` and adjust; \`scripts/make-secrets.sh\` creates ./secrets/ and prints the
   admin login.
4. \`docker network create shared_network\` (once), and attach New API to it with the labels in
   traefik/examples/ (pattern A: its compose file; pattern B: docker run).
5. \`docker compose -f docker-compose.yml -f docker-compose.offline.yml up -d\`
6. Point clients at http://<host>:8016 instead of New API; the console is at /admin/ui/.

The Traefik plugin is loaded from this directory (mounted at
/plugins-local/src/github.com/key-ip-sentinel/sentinel): no plugin catalog is contacted.
EOF_DOC

(cd "$stage" && sha256sum admind > admind.sha256)
tar -C "$out_dir" -czf "$out_dir/$name.tar.gz" "$name"
(cd "$out_dir" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "bundle: $out_dir/$name.tar.gz ($(du -h "$out_dir/$name.tar.gz" | cut -f1))"
