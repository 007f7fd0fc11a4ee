#!/usr/bin/env bash
# Idempotent machine set-up: system packages, the Kafka jars and Keycloak (Maven Central), a running
# Docker engine (runc + gVisor) and the locally built runtime images. Safe to run again.
#   scripts/setup.sh           install and start what is missing
#   scripts/setup.sh --check   only list what is missing, and why it is needed (exit 1 if anything)
# scripts/infra.sh (so stack.sh and test.sh) runs it, saying so, when --check finds something.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(docker.io redis-server runsc debootstrap busybox-static cmake pkg-config
  libssl-dev libcurl4-openssl-dev zlib1g-dev libsasl2-dev curl jq git iproute2
  chromium maven openjdk-17-jre-headless prometheus)
# chromium: the web app's browser test (tests/web); maven + JRE: Kafka and Keycloak;
# prometheus (+ promtool): the test that scrapes a stack and runs the dashboard's queries,
# and the alert rules' checks (tests/tests/prometheus.rs)

SCHEMATHESIS="$STATE_DIR/venv/bin/schemathesis"
# the installers a dependency build mounts (the runtime images hold bare interpreters):
# pip's wheel, run as `python3 pip.whl/pip`, and npm's package, run as `node npm/bin/npm-cli.js`
DEPS_TOOLS="$STATE_DIR/deps-tools"
PIP_VERSION=24.3.1
NPM_VERSION=10.9.2
# the local package index the dependency tests start (tests/tests/dependencies.rs), on waitress:
# a build's proxy passes plain-http requests in absolute form, which servers must accept
# (RFC 9112 3.2.2) and waitress does, where pypiserver's fallback (wsgiref) does not
PYPISERVER="$STATE_DIR/venv-pypiserver/bin/pypi-server"
PYPISERVER_VERSION=2.3.2
WAITRESS_VERSION=3.0.2

deps_tools_ready() { [[ -s "$DEPS_TOOLS/pip.whl" && -s "$DEPS_TOOLS/npm/bin/npm-cli.js" ]]; }

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
  [[ -z "$packages" ]] || out+=("system packages (apt-get): ${packages% } — the build's C libraries, Docker, Redis, gVisor, Java and Maven (Kafka, Keycloak), chromium (the web app test), prometheus (the dashboard and alert rule tests)")
  [[ -x "$SCHEMATHESIS" ]] || out+=("schemathesis (pip, into $STATE_DIR/venv) — the OpenAPI conformance test")
  deps_tools_ready || out+=("pip $PIP_VERSION's wheel (PyPI) and npm $NPM_VERSION (npm) in $DEPS_TOOLS — the installers of dependency builds")
  [[ -x "$PYPISERVER" && -x "$STATE_DIR/venv-pypiserver/bin/waitress-serve" ]] || out+=("pypiserver $PYPISERVER_VERSION + waitress $WAITRESS_VERSION (pip, into $STATE_DIR/venv-pypiserver) — the dependency tests' package index")
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
  if [[ ! -x "$PYPISERVER" || ! -x "$STATE_DIR/venv-pypiserver/bin/waitress-serve" ]]; then
    say "installing pypiserver"
    python3 -m venv "$STATE_DIR/venv-pypiserver"
    "$STATE_DIR/venv-pypiserver/bin/pip" install -q "pypiserver==$PYPISERVER_VERSION" "waitress==$WAITRESS_VERSION"
  fi
}

install_deps_tools() {
  deps_tools_ready && return 0
  say "fetching the dependency installers (pip $PIP_VERSION, npm $NPM_VERSION)"
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$DEPS_TOOLS"
  command -v npm >/dev/null || die "npm is required to fetch npm for dependency builds (Debian: apt-get install npm)"
  # the venv's pip: Debian's python3 may have none of its own
  "$STATE_DIR/venv-pypiserver/bin/pip" download -q --no-deps --only-binary=:all: -d "$tmp/pip" "pip==$PIP_VERSION"
  mv "$tmp"/pip/pip-*.whl "$DEPS_TOOLS/pip.whl.tmp" && mv "$DEPS_TOOLS/pip.whl.tmp" "$DEPS_TOOLS/pip.whl"
  (cd "$tmp" && npm pack -q "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$tmp/npm" && tar -C "$tmp/npm" -xzf "$tmp"/npm-*.tgz
  rm -rf "$DEPS_TOOLS/npm" && mv "$tmp/npm/package" "$DEPS_TOOLS/npm"
  chmod -R a+rX "$DEPS_TOOLS"
  rm -rf "$tmp"
}

case "${1:-}" in
  --check) check; exit ;;
  "") ;;
  *) die "usage: $0 [--check]" ;;
esac
install_packages
install_test_tools
install_deps_tools
configure_docker
"$ROOT/scripts/kafka.sh" install >/dev/null
"$ROOT/scripts/keycloak.sh" install >/dev/null
"$ROOT/scripts/images.sh"
prune_build_cache
say "setup complete"
