# The README's commands. `make test` is what CI runs (.ci/run).

GO ?= go

.PHONY: run test lint unit node-deps azurite-deps bench bench-system soak

run:
	$(GO) run ./cmd/iothub-emulator

# Everything: formatting, vet, and every Go test with the race detector,
# including the e2e suite that drives the official Node.js SDKs.
test: node-deps azurite-deps lint unit

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# IOTHUB_E2E_NODE turns on the official Node SDK tests (they need npm ci and
# ports 443, 8883, 5671 and 5672), IOTHUB_E2E_BROWSER the dashboard's browser tests (they
# need chromium), IOTHUB_E2E_AZURITE the file upload and import/export tests
# (they start Azurite from e2e/azurite); a plain `go test ./...` skips them.
unit:
	IOTHUB_E2E_NODE=1 IOTHUB_E2E_BROWSER=1 IOTHUB_E2E_AZURITE=1 $(GO) test -race -count=1 -timeout 30m ./...

# npm ci again when package-lock.json is newer than what is installed.
node-deps:
	@if [ ! -f e2e/node/node_modules/.package-lock.json ] || [ e2e/node/package-lock.json -nt e2e/node/node_modules/.package-lock.json ]; then cd e2e/node && npm ci --no-audit --no-fund; fi

azurite-deps:
	@if [ ! -d e2e/azurite/node_modules ]; then cd e2e/azurite && npm ci --no-audit --no-fund; fi

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

# The emulator as its own process against its baselines measured in the
# same run (a bbolt scan, a raw bbolt Batch, bare mochi, bare HTTPS); prints
# a table of ratios with the load average. Takes about 15 minutes; pass
# flags with BENCH_FLAGS, e.g. BENCH_FLAGS='-only query -rounds 3'.
bench-system:
	$(GO) build -o bench-system.bin ./scripts/benchsystem && ./bench-system.bin $(BENCH_FLAGS); s=$$?; rm -f bench-system.bin; exit $$s

# 1,000 simulated devices under mixed traffic for 30 minutes against the
# emulator as its own process; fails if memory or goroutines grow by more
# than 5% after warm-up or a reply is lost. Not part of test. Shorter:
# make soak DEVICES=200 DURATION=5m
soak:
	DEVICES=$(or $(DEVICES),1000) DURATION=$(or $(DURATION),30m) scripts/soak.sh
