# admind with the admin console: a static binary on a minimal base (no shell; the compose
# health check runs `admind healthcheck`).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=web /web/dist ./web/dist
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/admind ./admind

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/admind /admind
USER nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/admind"]
