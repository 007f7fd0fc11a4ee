#!/usr/bin/env bash
# Idempotent machine set-up: system packages, the Kafka jars and Keycloak (Maven Central), a running
# Docker engine (runc + gVisor) and the locally built runtime images. Safe to run again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(docker.io redis-server runsc debootstrap busybox-static cmake pkg-config
  libssl-dev libcurl4-openssl-dev zlib1g-dev libsasl2-dev curl jq git iproute2
  chromium maven openjdk-17-jre-headless)   # chromium: the web app's browser test (tests/web); maven + JRE: Kafka and Keycloak

install_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
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
  if [[ ! -x "$venv/bin/schemathesis" ]]; then
    say "installing schemathesis"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==4.32.5"
  fi
}

install_packages
install_test_tools
configure_docker
"$ROOT/scripts/kafka.sh" install >/dev/null
"$ROOT/scripts/keycloak.sh" install >/dev/null
"$ROOT/scripts/images.sh"
say "setup complete"
