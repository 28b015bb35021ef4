# The one entry point: build, test, bench. Every Go module of the workspace is
# tested (with go.work, `go test ./...` at the root finds nothing).
MODULES := $(shell go list -f '{{.Dir}}' -m)
PKGS    := $(addsuffix /...,$(MODULES))
FUZZTIME ?= 20s

.PHONY: build test test-go fuzz deps bench run clean

build:
	mkdir -p bin
	cd cmd/siphond && CGO_ENABLED=0 go build -trimpath -o ../../bin/siphond .

run: build
	./bin/siphond --mode minimal --udp-bind 127.0.0.1:5060 --tcp-bind 127.0.0.1:5060

deps:
	./scripts/install-deps.sh

# test: everything the README promises, on a fresh Debian machine with Go.
test: deps test-go fuzz

test-go:
	go vet $(PKGS)
	go test -count=1 -race -timeout 20m $(PKGS)

fuzz:
	cd services/edge && go test -run '^$$' -fuzz FuzzEdgeInput -fuzztime $(FUZZTIME) .

bench: deps build
	./bench/run.sh

clean:
	rm -rf bin bench/results
