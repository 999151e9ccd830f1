#!/usr/bin/env bash
# Makes sure a Docker engine answers, for make compose-test: uses the running one, else starts
# Debian's dockerd (docker.io) in the background. Exits 1, saying why, when none can run.
#   --default-ulimit: the sandbox our machines run in cannot raise rlimits, and dockerd's
#     defaults would try to.
#   --experimental --ip6tables: the engine NATs IPv6 to containers as it does IPv4 (Docker 27
#     and later do by default; this engine is 20.10), so IPv6 clients keep their addresses
#     instead of going through the userland proxy (README, "Client addresses").
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || { echo "docker-engine: no dockerd (apt-get install docker.io)" >&2; exit 1; }
log=${DOCKERD_LOG:-/tmp/sentinel-dockerd.log}
echo "docker-engine: starting dockerd (log: $log)" >&2
nohup dockerd --default-ulimit nofile=10000:10000 --default-ulimit nproc=10000:10000 \
  --experimental --ip6tables >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 1
done
echo "docker-engine: dockerd did not answer within 60 s:" >&2
tail -n 20 "$log" >&2
exit 1
