#!/usr/bin/env bash
# Idempotent machine set-up: system packages, the Kafka jars and Keycloak (Maven Central), a running
# Docker engine (runc + gVisor) and the locally built runtime images. Safe to run again.
#   scripts/setup.sh           install and start what is missing
#   scripts/setup.sh --check   only list what is missing, and why it is needed (exit 1 if anything)
# scripts/infra.sh (so stack.sh and test.sh) runs it, saying so, when --check finds something.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(docker.io redis-server runsc debootstrap busybox-static cmake pkg-config
  libssl-dev libcurl4-openssl-dev zlib1g-dev libsasl2-dev curl jq git iproute2
  chromium maven openjdk-17-jre-headless)   # chromium: the web app's browser test (tests/web); maven + JRE: Kafka and Keycloak

SCHEMATHESIS="$STATE_DIR/venv/bin/schemathesis"

missing_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

docker_ready() { grep -q runsc /etc/docker/daemon.json 2>/dev/null && docker info >/dev/null 2>&1; }

# check: one line per missing piece, what it is and what needs it; exit 1 if any.
check() {
  local out=() packages images
  packages=$(missing_packages | tr '\n' ' ')
  [[ -z "$packages" ]] || out+=("system packages (apt-get): ${packages% } — the build's C libraries, Docker, Redis, gVisor, Java and Maven (Kafka, Keycloak), chromium (the web app test)")
  [[ -x "$SCHEMATHESIS" ]] || out+=("schemathesis (pip, into $STATE_DIR/venv) — the OpenAPI conformance test")
  docker_ready || out+=("a running Docker engine with gVisor (runsc) registered — every job runs in a container")
  kafka_installed || out+=("the Apache Kafka $(pom_property kafka.version) jars (Maven Central) — the broker")
  keycloak_installed || out+=("Keycloak $(pom_property keycloak.version) (Maven Central) — the OpenID provider")
  if docker info >/dev/null 2>&1; then
    images=$("$ROOT/scripts/images.sh" check | tr '\n' ' ') || out+=("runtime images, built locally by scripts/images.sh: ${images% } — jobs run in them")
  else
    out+=("runtime images, built locally by scripts/images.sh — jobs run in them")
  fi
  ((${#out[@]})) || return 0
  printf '%s\n' "${out[@]}"
  return 1
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]})); then
    say "installing packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}

configure_docker() {
  local cfg=/etc/docker/daemon.json
  if ! grep -q runsc "$cfg" 2>/dev/null; then
    say "registering gVisor (runsc) with docker"
    mkdir -p /etc/docker
    cat >"$cfg" <<'JSON'
{
  "runtimes": { "runsc": { "path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"] } }
}
JSON
    if docker info >/dev/null 2>&1; then pkill -HUP dockerd || true; sleep 2; fi
  fi
  if ! docker info >/dev/null 2>&1; then
    say "starting dockerd"
    nohup setsid dockerd >"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
    wait_for "docker engine" 60 docker info
  fi
}

install_test_tools() {
  # schemathesis checks the frontend against its OpenAPI document
  local venv="$STATE_DIR/venv"
  if [[ ! -x "$SCHEMATHESIS" ]]; then
    say "installing schemathesis"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==4.32.5"
  fi
}

case "${1:-}" in
  --check) check; exit ;;
  "") ;;
  *) die "usage: $0 [--check]" ;;
esac
install_packages
install_test_tools
configure_docker
"$ROOT/scripts/kafka.sh" install >/dev/null
"$ROOT/scripts/keycloak.sh" install >/dev/null
"$ROOT/scripts/images.sh"
say "setup complete"
