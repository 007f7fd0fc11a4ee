#!/usr/bin/env bash
# Builds the runtime images jobs run in, locally: no registry is reachable here.
#   gitfaas/python:bookworm  — Debian bookworm minbase + python3 (python runtime)
#   gitfaas/node:bookworm    — Debian bookworm minbase + nodejs (node runtime)
#   gitfaas/command:busybox  — busybox-static, for the command runtime
# Root filesystems are cached as tarballs under $STATE_DIR/images, so re-importing is quick.
#   scripts/images.sh          build the missing ones
#   scripts/images.sh check    list the missing ones (exit 1 if any)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE_DIR="$STATE_DIR/images"
mkdir -p "$IMAGE_DIR"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

debian_mirror() {
  local m
  m=$(grep -rhoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  [[ -n "$m" ]] || m=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# debian_image NAME TARBALL PACKAGE: a bookworm minbase root fs with PACKAGE, imported as NAME.
debian_image() {
  local name=$1 tarball=$2 package=$3
  have_image "$name" && return 0
  if [[ ! -s "$tarball" ]]; then
    local dir; dir=$(mktemp -d)
    say "debootstrap bookworm + $package (about a minute)"
    debootstrap --variant=minbase --include="$package" bookworm "$dir" "$(debian_mirror)" >"$LOG_DIR/debootstrap-$package.log" 2>&1 \
      || { tail -20 "$LOG_DIR/debootstrap-$package.log"; die "debootstrap failed"; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
  fi
  say "importing $name"
  docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$tarball" "$name" >/dev/null
}

build_python() {
  debian_image gitfaas/python:bookworm "$IMAGE_DIR/python-bookworm.tar" python3
  # Dockerfiles in deploy/ start from debian:bookworm-slim; the same root fs stands in for it here.
  have_image debian:bookworm-slim || docker tag gitfaas/python:bookworm debian:bookworm-slim
}

build_node() {
  debian_image gitfaas/node:bookworm "$IMAGE_DIR/node-bookworm.tar" nodejs
}

build_busybox() {
  local name=gitfaas/command:busybox
  have_image "$name" && return 0
  local dir; dir=$(mktemp -d)
  mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $("$dir/bin/busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$dir/bin/$applet"
  done
  echo 'nobody:x:65534:65534:nobody:/tmp:/bin/sh' >"$dir/etc/passwd"
  say "importing $name"
  tar -C "$dir" -c . | docker import -c 'ENV PATH=/bin' - "$name" >/dev/null
  rm -rf "$dir"
}

# check: the images above that this engine lacks, one a line; exit 1 if any.
check() {
  local image status=0
  for image in gitfaas/command:busybox gitfaas/python:bookworm debian:bookworm-slim gitfaas/node:bookworm; do
    have_image "$image" || { echo "$image"; status=1; }
  done
  return "$status"
}

case "${1:-}" in
  check) check ;;
  "") build_busybox; build_python; build_node ;;
  *) die "usage: $0 [check]" ;;
esac
