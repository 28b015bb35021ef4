#!/usr/bin/env bash
# Runs a benchmark and writes the report to bench/results/. Usage:
#   bench/run.sh                                       # OPTIONS, embedded and multi-process
#   bench/run.sh --mode registrar --setups embedded,multi,kamailio [--auth]
#   bench/run.sh --rates 8000,10000,12000 --duration 10s
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
out="bench/results/$(date -u +%Y%m%d-%H%M%S).md"
(cd bench && go run . -siphond ../bin/siphond -sipp sipp -kamailio kamailio -out "../$out" "$@")
echo "report: $out"
