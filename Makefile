# The one entry point: build, test, bench. Every Go module of the workspace is
# tested (with go.work, `go test ./...` at the root finds nothing).
MODULES := $(shell go list -f '{{.Dir}}' -m)
# e2e starts containers: it runs in test-e2e, with the images built and Docker up.
PKGS    := $(addsuffix /...,$(filter-out %/e2e,$(MODULES)))
FUZZTIME ?= 20s
# testcontainers-go on a machine with no registry: no reaper image to pull, and
# published ports are reached on loopback.
E2E_ENV := TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1

.PHONY: build test test-go fuzz test-e2e docker images deps bench run clean

build:
	mkdir -p bin
	cd cmd/siphond && CGO_ENABLED=0 go build -trimpath -o ../../bin/siphond .

run: build
	./bin/siphond --mode minimal --udp-bind 127.0.0.1:5060 --tcp-bind 127.0.0.1:5060

deps:
	./scripts/install-deps.sh

# test: everything the README promises, on a fresh Debian machine with Go.
test: deps test-go fuzz test-e2e

test-go:
	go vet $(PKGS)
	go test -count=1 -race -timeout 20m $(PKGS)

fuzz:
	cd services/edge && go test -run '^$$' -fuzz FuzzEdgeInput -fuzztime $(FUZZTIME) .

# The lab: Docker (installed and started if missing, compose plugin built from
# the Go module proxy), the images (no registry needed), then the e2e suites.
docker:
	./scripts/install-docker.sh

images: docker
	./scripts/build-images.sh

test-e2e: images
	cd e2e && go vet ./... && $(E2E_ENV) go test -count=1 -timeout 20m -v ./...

# bench: OPTIONS (embedded, multi-process), then REGISTER without and with
# digest against Kamailio in the same run, then calls per second against SIPp's own uas. Reports land in bench/results/.
bench: build
	./scripts/install-deps.sh --bench
	./bench/run.sh
	./bench/run.sh --mode registrar --setups kamailio,embedded,multi
	./bench/run.sh --mode registrar --auth --setups kamailio,embedded,multi --rates 1000,2000,3000,4000,5000,6000
	./bench/run.sh --mode calls --setups sipp-uas,embedded,multi --rates 1000,1500,2000,2500,3000,3500,4000,5000,6000,7000,8000
	./bench/run.sh --mode proxy --setups kamailio,embedded,multi --rates 500,1000,1500,2000,2500,3000
	./bench/run.sh --mode b2bua --setups proxy,embedded,multi --rates 500,1000,1500,2000,2500
	./bench/run.sh --mode subscribe --setups embedded,multi --rates 1000,2000,2500,3000
	./bench/run.sh --mode runner --setups sipp-uac,siphond-run --rates 2000,3000,4000,5000,6000
	./bench/run.sh --mode minimal --setups embedded,limited --rates 2000,4000,6000,8000,10000,12000
	./bench/run.sh --mode flood
	./bench/run.sh --mode soak --rates 1000 --duration 180s --soak-idle 60s

clean:
	rm -rf bin bench/results
