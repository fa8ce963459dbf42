# Eventmart. `make run` runs the product on the embedded default;
# `make test` runs every test, starting real Kafka, PostgreSQL and Apicurio
# Registry if the EVENTMART_TEST_* variables do not already point at running ones.

GO      ?= go
BIN     := bin/eventmart
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/eventmart/eventmart/internal/cli.Version=$(VERSION)
# encoding/json on Go's new implementation (encoding/json/v2 underneath, the
# same behaviour): about a tenth less CPU per order, decoding events being a
# fifth of it (docs/benchmarks.md). Builds, tests and the scripts make starts
# all use it; a plain `go build` without it works too, a little slower.
GOEXPERIMENT ?= jsonv2
export GOEXPERIMENT

.PHONY: all build run test test-go test-browser check check-rules schema-check fuzz bench bench-embedded bench-kafka servers-up servers-down cluster cluster-down regions regions-down region-drill region-drill-short chaos chaos-short test-monitoring clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/eventmart

run: build
	./$(BIN) run

# Every test, against real servers that this target starts and stops.
# The tests must leave the working tree as they found it (clean-tree.sh).
test:
	deploy/scripts/clean-tree.sh deploy/scripts/with-servers.sh $(MAKE) --no-print-directory test-go
	deploy/scripts/clean-tree.sh $(MAKE) --no-print-directory chaos-short
	deploy/scripts/clean-tree.sh $(MAKE) --no-print-directory test-monitoring
	deploy/scripts/clean-tree.sh $(MAKE) --no-print-directory region-drill-short

# The Go tests alone; integration tests skip (or fail under CI) without servers.
# The services' own tests run twice: on SQLite, and on PostgreSQL when a
# server is named (EVENTMART_TEST_POSTGRES), one fresh database per test.
SERVICES := ./user/ ./catalog/ ./inventory/ ./cart/ ./order/ ./payment/ ./shipping/ ./notification/ ./audit/ ./webhook/
# The end-to-end tests run after the others, not beside them: they delete
# the ADR topics of the shared test broker at start (to drop the offsets of
# earlier runs), which would pull the topics from under another package's
# Kafka tests running at the same time.
E2E := ./test/e2e/
test-go: check check-rules
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/test/e2e$$')
	$(GO) test -race -count=1 -timeout 20m $(E2E)
	$(MAKE) --no-print-directory fuzz FUZZ_ENVELOPE=150000x FUZZ_QUICKCHECK=200000x FUZZ_BODY=40000x FUZZ_API=1500x
	$(MAKE) --no-print-directory test-browser
	@if [ -n "$$EVENTMART_TEST_POSTGRES" ]; then \
		echo "services on PostgreSQL:"; \
		EVENTMART_TEST_SERVICES_DB=postgres $(GO) test -count=1 -timeout 10m $(SERVICES); \
	fi

# The event-flow console in a real browser: playwright-core (pinned in
# test/browser/package-lock.json) drives Debian's chromium against the built
# binary. Skipped without node or chromium, except under CI where it fails.
CHROMIUM ?= /usr/bin/chromium
test-browser: build
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null || ! [ -x "$(CHROMIUM)" ]; then \
		if [ -n "$$CI" ]; then echo "test-browser: node, npm and $(CHROMIUM) are required under CI (apt-get install chromium)"; exit 1; fi; \
		echo "test-browser: SKIPPED (needs node, npm and $(CHROMIUM): apt-get install chromium)"; exit 0; \
	fi; \
	cd test/browser && npm ci --no-audit --no-fund --loglevel=error && \
		EVENTMART_BIN=$(CURDIR)/$(BIN) CHROMIUM=$(CHROMIUM) node console.test.mjs

check: schema-check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# The Prometheus alert rules: syntax, and their unit tests. promtool comes
# with Debian's prometheus package (.ci/run installs it); without it the
# check is skipped, except under CI where it fails.
check-rules:
	@if command -v promtool >/dev/null; then \
		promtool check rules deploy/prometheus/alerts.yml deploy/prometheus/kafka_alerts.yml deploy/prometheus/region_alerts.yml && \
		promtool check config deploy/prometheus/prometheus.yml && \
		promtool test rules deploy/prometheus/alerts_test.yml deploy/prometheus/kafka_alerts_test.yml deploy/prometheus/region_alerts_test.yml; \
	elif [ -n "$$CI" ]; then \
		echo "check-rules: promtool not found (apt-get install prometheus); required under CI" >&2; exit 1; \
	else \
		echo "check-rules: promtool not found, skipping the alert rule checks (apt-get install prometheus)"; \
	fi

# The event schemas must stay compatible with those at SCHEMA_BASE: by
# default the branch's fork point from main (HEAD itself on main, or where
# there is no main), so uncommitted and branch changes are both checked.
# With a registry: eventmart schema check --registry URL.
SCHEMA_BASE ?= $(shell git rev-parse -q --verify main >/dev/null 2>&1 && git merge-base HEAD main 2>/dev/null || echo HEAD)
schema-check:
	$(GO) run ./cmd/eventmart schema check --against git:$(SCHEMA_BASE)

# Fuzz the decoders of untrusted input for a while each (corpus in testdata/fuzz):
# the envelope, the JSON body decoder, and every API operation that takes a body.
# FUZZTIME is each target's budget, a duration or a number of runs (Nx); a target's
# own variable overrides it. make test gives numbers of runs, about ten seconds' worth
# each here: a duration can fail a clean run with "context deadline exceeded" when it
# ends on a busy machine (a race in Go 1.26's fuzzing coordinator, go.dev/issue/75804,
# fixed in Go 1.27), while a count has no deadline to race.
FUZZTIME ?= 1m
FUZZ_ENVELOPE ?= $(FUZZTIME)
FUZZ_QUICKCHECK ?= $(FUZZTIME)
FUZZ_BODY ?= $(FUZZTIME)
FUZZ_API ?= $(FUZZTIME)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_ENVELOPE) ./event/
	$(GO) test -run '^$$' -fuzz '^FuzzQuickCheckIsSound$$' -fuzztime $(FUZZ_QUICKCHECK) ./event/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_BODY) ./internal/httpx/
	$(GO) test -run '^$$' -fuzz '^FuzzEndpoints$$' -fuzztime $(FUZZ_API) ./internal/app/apptests/

# Benchmarks; figures go to docs/benchmarks.md.
bench: bench-embedded bench-kafka

bench-embedded:
	$(GO) test -run '^$$' -bench . -benchmem ./bus/embedded/

bench-kafka:
	deploy/scripts/with-servers.sh $(GO) test -run '^$$' -bench . -benchmem ./bus/kafka/

# Start real servers for development; prints the variables to export.
servers-up:
	deploy/scripts/kafka.sh start && deploy/scripts/kafka.sh env
	deploy/scripts/postgres.sh start && deploy/scripts/postgres.sh env
	deploy/scripts/apicurio.sh start && deploy/scripts/apicurio.sh env

servers-down:
	-deploy/scripts/kafka.sh stop
	-deploy/scripts/postgres.sh stop
	-deploy/scripts/apicurio.sh stop

# Eventmart scaled out on this machine: a 3-broker Kafka cluster, PostgreSQL,
# two processes of every service and the gateway (deploy/scripts/cluster.sh).
cluster:
	deploy/scripts/cluster.sh start

cluster-down:
	deploy/scripts/cluster.sh stop

# Two regions on this machine (docs/regions.md): Kafka and PostgreSQL each,
# Eventmart primary in A and warm standby in B, MirrorMaker 2 replicating
# A -> B (deploy/scripts/regions.sh; failover, failback: see the README).
regions:
	deploy/scripts/regions.sh start

regions-down:
	deploy/scripts/regions.sh stop

# The region drill on regions of its own (free ports): orders in A, A
# killed, failover to B, invariants (test/regions); the full one then fails
# back. The short one (part of make test) takes about three minutes.
region-drill:
	EVENTMART_REGION_DRILL=full $(GO) test -count=1 -v -timeout 30m -run '^TestRegionDrill$$' ./test/regions/

region-drill-short:
	EVENTMART_REGION_DRILL=short $(GO) test -count=1 -v -timeout 15m -run '^TestRegionDrill$$' ./test/regions/

# Faults under load on a cluster of its own (free ports), then invariants:
# chaos for three minutes, chaos-short (part of make test) for about one.
chaos:
	EVENTMART_CHAOS=full $(GO) test -count=1 -v -timeout 30m -run '^TestChaos$$' ./test/chaos/

chaos-short:
	EVENTMART_CHAOS=short $(GO) test -count=1 -v -timeout 20m -run '^TestChaos$$' ./test/chaos/

# Debian's Prometheus with deploy/prometheus's configuration against a
# cluster of its own (free ports): the dashboards' metrics are scraped, and
# stopping a broker fires the under-replicated alert, which resolves once
# the broker is back (test/monitoring; about three minutes).
test-monitoring:
	EVENTMART_MONITORING=cluster $(GO) test -count=1 -v -timeout 15m -run '^TestBrokerAlertFiresAndResolves$$' ./test/monitoring/

clean:
	rm -rf bin
