#!/usr/bin/env bash
# Builds the gitfaas images on a machine that cannot pull from a registry, from binaries built
# on the machine itself (Debian bookworm, like the images). The service images come from the
# same Dockerfiles as the public build, `--target prebuilt` instead of the rust:1-bookworm stage:
#   deploy/docker/build-local.sh [TAG]        gitfaas/{frontend,executor,observer}:TAG (default: local)
# GITFAAS_PROFILE=dev|release picks the cargo profile (default dev). Also builds, through
# scripts/images.sh, the runtime images jobs run in and the local debian:bookworm-slim the
# Dockerfiles start from (a debootstrap root file system: see deploy/docker/README.md).
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

TAG="${1:-local}"
PROFILE="${GITFAAS_PROFILE:-dev}"
BIN_DIR="$(bin_dir "$PROFILE")"
SERVICES=(frontend executor observer)

BUILD_LOG="$LOG_DIR/build-local.log"   # build_image (scripts/lib.sh) writes here

binaries() {
  case "$1" in
    frontend) echo gitfaas-frontend ;;
    executor) echo gitfaas-executor gitfaas-scaler ;;
    observer) echo gitfaas-observer ;;
  esac
}

: >"$BUILD_LOG"
"$ROOT/scripts/images.sh"
say "building the gitfaas binaries ($PROFILE profile, $CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --profile "$PROFILE" --bins)

# A build context with the repository's layout but only what the runtime and prebuilt stages
# copy: config/, deploy/docker/ and the service's binaries in deploy/docker/prebuilt/.
# (Hard links when the target dir is on the same file system: nothing big is copied.)
STAGE="$STATE_DIR/image-context"
for svc in "${SERVICES[@]}"; do
  ctx="$STAGE/$svc"
  rm -rf "$ctx"
  mkdir -p "$ctx/deploy/docker/prebuilt"
  cp -R "$ROOT/config" "$ctx/config"
  cp "$ROOT"/deploy/docker/*.sh "$ctx/deploy/docker/"
  # the executor's dependency installers: the host's (scripts/setup.sh fetched them)
  mkdir -p "$ctx/deploy/docker/deps-tools"
  if [[ $svc == executor ]]; then
    [[ -s "$STATE_DIR/deps-tools/pip.whl" ]] || die "no dependency installers in $STATE_DIR/deps-tools: run scripts/setup.sh"
    cp -R "$STATE_DIR/deps-tools/." "$ctx/deploy/docker/deps-tools/"
  fi
  for bin in $(binaries "$svc"); do
    [[ -x "$BIN_DIR/$bin" ]] || die "$BIN_DIR/$bin was not built"
    cp -l "$BIN_DIR/$bin" "$ctx/deploy/docker/prebuilt/" 2>/dev/null || cp "$BIN_DIR/$bin" "$ctx/deploy/docker/prebuilt/"
  done
  say "building gitfaas/$svc:$TAG (prebuilt $PROFILE binaries)"
  build_image "gitfaas/$svc:$TAG" --target prebuilt -f "$ROOT/deploy/docker/$svc.Dockerfile" "$ctx"
  rm -rf "$ctx"
done
say "images: $(printf 'gitfaas/%s:'"$TAG"' ' "${SERVICES[@]}")and the runtime images of scripts/images.sh"
