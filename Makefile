# Key-IP Sentinel. `make help` lists the targets.
SHELL := bash
GO    ?= go
# Building Traefik from its module takes 15-25 minutes once per machine; the binary is cached
# under ~/.cache/sentinel/traefik (scripts/traefik-bin.sh).
TRAEFIK_BIN ?= $(shell scripts/traefik-bin.sh)
FUZZTIME    ?= 30s
DURATION    ?= 10m

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: test
test: lint web unit yaegi fuzz-brief e2e compose-if-docker ## everything CI checks: lint, unit + integration (-race), yaegi, console build, each fuzz target briefly, end-to-end + browser, the compose deployment when a Docker engine can run

.PHONY: unit
unit: web ## unit and integration tests (real PostgreSQL and redis-server), with -race
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e)

.PHONY: yaegi
yaegi: ## the plugin's tests under the yaegi CLI v0.16.1 (the interpreter Traefik embeds), and the plugin loaded in process as Traefik and the Plugin Catalog load it (internal/yaegihost, a module of its own)
	scripts/yaegi-test.sh
	cd internal/yaegihost && $(GO) test -race -count=1 -timeout 10m .
# Without -race: Yaegi's own data races would fail it (internal/yaegihost/concurrency_test.go).
	cd internal/yaegihost && $(GO) test -count=1 -timeout 10m -run '^TestConcurrentRedisUnderYaegi$$' -v .

.PHONY: web
web: ## build the admin console (npm ci + vite build into web/dist, embedded by admind)
	cd web && npm ci --no-audit --no-fund && npm run build

.PHONY: e2e
e2e: traefik web ## end-to-end tests through a real Traefik v3.6.12 with the plugin, and the console in chromium
	TRAEFIK_BIN=$(TRAEFIK_BIN) $(GO) test -race -count=1 -timeout 20m -v ./e2e

.PHONY: conformance
conformance: traefik web ## the real New API as the oracle (SQLite and MariaDB): no request it authenticates with a bound key passes from another address; NEWAPI_BIN / NEWAPI_SRC for another version
	TRAEFIK_BIN=$(TRAEFIK_BIN) $(GO) test -count=1 -timeout 20m -run '^TestConformance$$' -v ./e2e
	$(GO) test -count=1 -run 'TestPluginRouteTablesAreNewAPIs|TestRoutesFromSource' -v ./internal/newapi

.PHONY: traefik
traefik: ## build (once) and print the cached Traefik binary
	@echo "traefik: $(TRAEFIK_BIN)"

.PHONY: lint
lint: ## gofmt, go vet, go mod tidy, golangci-lint (pinned, .golangci.yml names the linters) and govulncheck, on both modules; fails when a tool is missing
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd internal/yaegihost && $(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "lint: go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@cd internal/yaegihost && { $(GO) mod tidy -diff || { echo "lint: internal/yaegihost/go.mod is not tidy: run go mod tidy there"; exit 1; }; }
	@gcl=$$(scripts/golangci-lint-bin.sh) || { echo "lint: golangci-lint could not be built (scripts/golangci-lint-bin.sh)"; exit 1; }; \
		echo "$$gcl run ./..."; $$gcl run ./... && (cd internal/yaegihost && $$gcl run ./...)
	scripts/govulncheck.sh

.PHONY: fuzz-brief
fuzz-brief: ## every fuzz target for 2s (make test); crashers found are kept in testdata/fuzz
	@$(MAKE) --no-print-directory fuzz FUZZTIME=2s

.PHONY: fuzz
fuzz: ## run every fuzz target (plugin and admind) for FUZZTIME each (30s); scripts/fuzz.sh
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

.PHONY: demo
# The demo is built and then run, not run by go run, which exits 1 on Ctrl-C whatever the
# demo answers (make then reports an error).
demo: web ## run the whole stack locally (no Docker); DEMO_HTTP_PORT (8016), DEMO_UPSTREAM; Ctrl-C stops it
	$(GO) build -o bin/demo ./internal/demo
	bin/demo

.PHONY: compose-test
compose-test: traefik ## the compose deployment for real: Docker engine, Compose v2, stand-in images, New API attached by labels (e2e/compose_test.go)
	scripts/docker-engine.sh
	mkdir -p $(HOME)/.docker/cli-plugins && ln -sf $$(scripts/compose-bin.sh) $(HOME)/.docker/cli-plugins/docker-compose
	scripts/standin-images.sh
	SENTINEL_COMPOSE=1 $(GO) test -count=1 -timeout 40m -run '^TestCompose$$' -v ./e2e

# make test runs compose-test when a Docker engine answers or can be started, and says loudly
# when it cannot (scripts/docker-engine.sh prints why).
.PHONY: compose-if-docker
compose-if-docker:
	@if scripts/docker-engine.sh; then $(MAKE) --no-print-directory compose-test; \
	else echo "compose-test: SKIPPED: no Docker engine could be started here (apt-get install docker.io debootstrap)"; fi

.PHONY: bench
bench: traefik ## benchmarks through the real stack (wrk): bare vs no-op plugin vs sentinel; rewrites BENCHMARKS.md
	@command -v wrk >/dev/null || { echo "bench: wrk not found: apt-get install -y wrk"; exit 1; }
	SENTINEL_BENCH=full TRAEFIK_BIN=$(TRAEFIK_BIN) $(GO) test -count=1 -timeout 30m -run '^TestBench$$' -v ./e2e

.PHONY: chaos
chaos: traefik ## under load through the real Traefik, hang/stop/restart Redis, admind and PostgreSQL in turn (class E, docs/testing.md)
	SENTINEL_CHAOS=1 TRAEFIK_BIN=$(TRAEFIK_BIN) $(GO) test -count=1 -timeout 20m -run '^TestChaos$$' -v ./e2e

.PHONY: soak
soak: traefik ## the whole stack under mixed traffic for DURATION (10m): goroutine, open-file and RSS trends, keys without TTL
	@command -v wrk >/dev/null || { echo "soak: wrk not found: apt-get install -y wrk"; exit 1; }
	SENTINEL_SOAK=$(DURATION) TRAEFIK_BIN=$(TRAEFIK_BIN) $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./e2e

.PHONY: bundle
bundle: web ## offline bundle: static admind with the console, configs, plugin source (bin/bundle/)
	scripts/bundle.sh

.PHONY: build
build: ## build admind into bin/ (with the console if `make web` ran; a page saying how otherwise)
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/admind ./admind
