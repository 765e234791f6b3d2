# mqim developer and CI targets. GOFLAGS from the environment is left as is.

GO           ?= go
TEST_TIMEOUT ?= 20m
FUZZTIME     ?= 10s
CI_FUZZTIME  ?= 5s
PKGS         ?= ./...

SHELL := /usr/bin/env bash

.PHONY: all test test-sqlite build run fmt vet bench fuzz clean

all: build

# vet, then the whole suite with the race detector. The tests always run
# against SQLite; scripts/test-mysql.sh additionally provides a throwaway
# MariaDB (MQIM_TEST_MYSQL_DSN) so the store and end-to-end suites also run
# against MySQL, scripts/test-browser.sh Debian's chromium (installed
# when missing) for the browser tests, and scripts/test-node.sh Node.js
# and clients/js's npm dependencies (installed when missing) for the client
# library's tests. Finally every Fuzz target runs briefly.
# The outage pass kills and restarts that MariaDB, so it runs alone, after
# the main pass, against the same server.
test: vet
	bash scripts/test-node.sh bash scripts/test-browser.sh bash scripts/test-mysql.sh bash -c 'bash scripts/gotest.sh -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS) && \
		MQIM_TEST_OUTAGE=1 bash scripts/gotest.sh -race -count=1 -timeout 10m -run Outage ./internal/e2e/'
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(CI_FUZZTIME)

# Same, without MySQL.
test-sqlite: vet
	env -u MQIM_TEST_MYSQL_DSN $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

build:
	$(GO) build -buildvcs=auto -o bin/mqim ./cmd/mqim

run:
	$(GO) run ./cmd/mqim

fmt:
	$(GO) fmt $(PKGS)

vet:
	$(GO) vet $(PKGS)

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -timeout $(TEST_TIMEOUT) $(PKGS)

# Run each Fuzz target for $(FUZZTIME). `go test -list` prints the matching
# names of a package followed by its "ok <pkg>" line; zero targets is fine.
fuzz:
	@set -euo pipefail; \
	list=$$($(GO) test -list '^Fuzz' $(PKGS)) || { printf '%s\n' "$$list"; exit 1; }; \
	targets=$$(printf '%s\n' "$$list" | awk '/^Fuzz/ { n[c++] = $$1; next } /^ok[ \t]/ { for (i = 0; i < c; i++) print $$2 "," n[i] } { c = 0 }'); \
	if [ -z "$$targets" ]; then echo "fuzz: no Fuzz targets"; exit 0; fi; \
	for t in $$targets; do \
		pkg=$${t%%,*}; name=$${t#*,}; \
		dir=$$($(GO) list -f '{{.Dir}}' "$$pkg")/testdata/fuzz/$$name; \
		before=$$(ls "$$dir" 2>/dev/null | sort); \
		echo "fuzz: $$pkg $$name ($(FUZZTIME))"; \
		if ! $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) "$$pkg" </dev/null; then \
			if [ "$$(ls "$$dir" 2>/dev/null | sort)" != "$$before" ]; then exit 1; fi; \
			echo "fuzz: $$name failed without a failing input (the fuzz coordinator's deadline race, golang/go#75804): once more"; \
			$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) "$$pkg" </dev/null; \
		fi; \
	done

clean:
	rm -rf bin
