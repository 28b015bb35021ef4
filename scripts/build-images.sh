#!/usr/bin/env bash
# Builds every image the lab uses, with no container registry: siphond and nats
# FROM scratch from static Go binaries, redis from a Debian rootfs made with
# debootstrap against the host's own apt mirror, then `docker import`.
# Skips an image that is already there (siphond: one built from the same binary)
# unless --rebuild is given.
#
#   scripts/build-images.sh [--rebuild]
#
# Names: SIPHON_IMAGE, NATS_IMAGE, REDIS_IMAGE (defaults below, as compose.yaml uses).
set -euo pipefail
cd "$(dirname "$0")/.."
SIPHON_IMAGE="${SIPHON_IMAGE:-siphon/siphond:dev}"
NATS_VERSION="${NATS_VERSION:-v2.15.2}"
NATS_IMAGE="${NATS_IMAGE:-siphon/nats:${NATS_VERSION#v}}"
REDIS_IMAGE="${REDIS_IMAGE:-siphon/redis:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
rebuild=false
[ "${1:-}" = "--rebuild" ] && rebuild=true

step() { echo "==> $*"; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "building static binaries (siphond, probe)"
mkdir -p "$work/siphond" "$work/nats"
(cd cmd/siphond && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/siphond/siphond" .)
(cd tools/probe && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/siphond/probe" .)
cp "$work/siphond/probe" "$work/nats/probe"

sum=$(cat "$work/siphond/siphond" "$work/siphond/probe" | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{index .Config.Labels "siphon.binary"}}' "$SIPHON_IMAGE" 2>/dev/null || true)
if $rebuild || [ "$current" != "$sum" ]; then
  step "image $SIPHON_IMAGE"
  cp deploy/images/siphond/Dockerfile "$work/siphond/"
  docker build -q --label "siphon.binary=$sum" -t "$SIPHON_IMAGE" "$work/siphond" >/dev/null
else
  step "image $SIPHON_IMAGE is up to date"
fi

if $rebuild || ! have "$NATS_IMAGE"; then
  step "image $NATS_IMAGE (nats-server $NATS_VERSION from the Go module proxy)"
  mod="$work/natsmod"
  mkdir -p "$mod"
  (cd "$mod" && go mod init natsbuild >/dev/null 2>&1 \
    && GOWORK=off go get "github.com/nats-io/nats-server/v2@$NATS_VERSION" >/dev/null 2>&1 \
    && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/nats/nats-server" github.com/nats-io/nats-server/v2)
  cp deploy/images/nats/Dockerfile "$work/nats/"
  docker build -q -t "$NATS_IMAGE" "$work/nats" >/dev/null
else
  step "image $NATS_IMAGE exists"
fi

if $rebuild || ! have "$REDIS_IMAGE"; then
  mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
  [ -n "$mirror" ] || { echo "no Debian mirror found in the host's apt sources" >&2; exit 1; }
  command -v debootstrap >/dev/null || { step "installing debootstrap"; apt-get install -y -qq debootstrap >/dev/null; }
  step "image $REDIS_IMAGE: debootstrap $SUITE from $mirror (a few minutes)"
  root="$work/rootfs"
  debootstrap --variant=minbase --include=redis-server --components=main "$SUITE" "$root" "$mirror" \
    | grep --line-buffered -E '^I: (Retrieving Release|Validating Packages|Extracting|Installing core|Configuring|Base system)' | sed -u 's/^/    /' || true
  [ -x "$root/usr/bin/redis-server" ] || { echo "debootstrap did not install redis-server" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man
  tar -C "$root" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/bin/redis-server"]' \
    --change 'CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "yes", "--dir", "/tmp"]' \
    --change 'EXPOSE 6379' \
    --change 'HEALTHCHECK --interval=2s --timeout=3s --retries=15 CMD ["/usr/bin/redis-cli", "ping"]' \
    - "$REDIS_IMAGE" >/dev/null
else
  step "image $REDIS_IMAGE exists"
fi
step "images ready: $SIPHON_IMAGE $NATS_IMAGE $REDIS_IMAGE"
