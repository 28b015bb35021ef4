#!/usr/bin/env bash
# Installs what the tests and benchmarks run against, from Debian's packages:
# SIPp (sip-tester), redis-server, nats-server, baresip (a phone, headless);
# with --bench also Kamailio, the
# registrar bench/ compares against. Skips what is already there.
set -euo pipefail
need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nats-server >/dev/null || need+=(nats-server)
command -v baresip >/dev/null || need+=(baresip-core)
if [ "${1:-}" = "--bench" ]; then
  command -v kamailio >/dev/null || need+=(kamailio)
fi
if [ ${#need[@]} -eq 0 ]; then
  echo "deps: everything needed is installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "deps: installing ${need[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start services on their default ports; tests start their own.
for svc in redis-server nats-server kamailio; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done
echo "deps: done"
