#!/usr/bin/env bash
# Runs the OPTIONS benchmark (embedded and multi-process) and writes the report
# to bench/results/. Usage: bench/run.sh [bench flags], e.g. --rates 8000,10000,12000
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
out="bench/results/options-$(date -u +%Y%m%d-%H%M).md"
(cd bench && go run . -siphond ../bin/siphond -scenario sipp/options.xml -out "../$out" "$@")
echo "report: $out"
