#!/bin/sh
# Pattern B: New API started with docker run on the shared network. This variant defines its
# own sentinel middleware instance with labels (sentinel@docker) instead of using sentinel@file;
# the option values are the same, and secrets are still files inside the Traefik container.
# No port is published: clients reach New API only through Traefik.
exec docker run -d --name new-api --restart unless-stopped \
  --network shared_network \
  -v new-api-data:/data \
  --label 'traefik.enable=true' \
  --label 'traefik.docker.network=shared_network' \
  --label 'traefik.http.routers.newapi.rule=PathPrefix(`/`)' \
  --label 'traefik.http.routers.newapi.entrypoints=web' \
  --label 'traefik.http.routers.newapi.middlewares=sentinel@docker' \
  --label 'traefik.http.services.newapi.loadbalancer.server.port=3000' \
  --label 'traefik.http.middlewares.sentinel.plugin.sentinel.admindURL=http://admind:9090' \
  --label 'traefik.http.middlewares.sentinel.plugin.sentinel.internalTokenFile=/run/secrets/sentinel_internal_token' \
  --label 'traefik.http.middlewares.sentinel.plugin.sentinel.hmacSecretFile=/run/secrets/sentinel_hmac_secret' \
  --label 'traefik.http.middlewares.sentinel.plugin.sentinel.redisAddr=redis:6379' \
  --label 'traefik.http.middlewares.sentinel.plugin.sentinel.redisPasswordFile=/run/secrets/redis_password' \
  --label 'traefik.http.middlewares.sentinel.plugin.sentinel.failsafeMode=closed' \
  calciumion/new-api:latest
