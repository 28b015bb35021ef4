#!/usr/bin/env bash
# Makes Docker usable for the lab: installs docker.io from Debian if missing,
# starts dockerd if it is not running, and builds the `docker compose` v2 plugin
# from the Go module proxy when the CLI has none (Debian does not package it and
# no registry is reachable). Skips every step that is already done.
set -euo pipefail
COMPOSE_VERSION="${COMPOSE_VERSION:-v2.40.3}"
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
  echo "docker: installing docker.io (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "docker: starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "docker: dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

if ! docker compose version >/dev/null 2>&1; then
  echo "docker: building the compose plugin $COMPOSE_VERSION from the Go module proxy (a few minutes the first time)"
  src=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -n "$src" ] || { echo "docker: could not download github.com/docker/compose/v2@$COMPOSE_VERSION" >&2; exit 1; }
  work=$(mktemp -d)
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    -o "$work/docker-compose" ./cmd)
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$work/docker-compose" "$PLUGIN_DIR/docker-compose"
  rm -rf "$work"
fi
echo "docker: $(docker version --format '{{.Server.Version}}') with compose $(docker compose version --short)"
