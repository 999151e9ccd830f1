# admind with the admin console: a static binary on a minimal base (no shell; the compose
# health check runs `admind healthcheck`).
#
# Build inputs, all empty by default (README, "Building behind a proxy or a mirror"):
#   EXTRA_CA_CERTS  PEM text of CA certificates to trust while building, for a
#                   TLS-intercepting proxy; used by npm and go, not copied into the image
#   NPM_REGISTRY    an npm registry mirror, e.g. https://registry.npmmirror.com
#   GOPROXY         a Go module proxy, e.g. https://goproxy.cn,direct
# Node is the version the console's dependencies ask for (vue-i18n, @vueuse: node >= 22).
FROM node:22-bookworm-slim AS web
ARG EXTRA_CA_CERTS=""
ARG NPM_REGISTRY=""
WORKDIR /web
COPY web/package.json web/package-lock.json ./
# npm rewrites the lock file's registry.npmjs.org addresses to a configured registry.
RUN if [ -n "$EXTRA_CA_CERTS" ]; then printf '%s\n' "$EXTRA_CA_CERTS" > /tmp/extra-ca.pem; \
      export NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem; fi; \
    if [ -n "$NPM_REGISTRY" ]; then export npm_config_registry="$NPM_REGISTRY"; fi; \
    npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM golang:1.26-bookworm AS build
ARG EXTRA_CA_CERTS=""
ARG GOPROXY=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/build-extra.crt && \
      update-ca-certificates; fi
WORKDIR /src
COPY go.mod go.sum ./
# An empty GOPROXY is Go's default (proxy.golang.org).
RUN go mod download
COPY . .
COPY --from=web /web/dist ./web/dist
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/admind ./admind

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/admind /admind
USER nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/admind"]
