#!/usr/bin/env bash
# Local caching package proxies, one per ecosystem, on loopback, so that a function that
# declares dependencies installs them out of the box in the local stack (scripts/stack.sh):
#   devpi-server (PyPI, pip-installed into $STATE_DIR/venv-devpi), index
#     http://127.0.0.1:$GITFAAS_DEVPI_PORT/root/pypi/+simple/ (default port 3141)
#   verdaccio (npm, npm-installed under $STATE_DIR/verdaccio), registry
#     http://127.0.0.1:$GITFAAS_VERDACCIO_PORT/ (default port 4873)
# Their upstream is the public index each tool ships with by default: devpi's root/pypi
# mirror, verdaccio's shipped default config (its uplink). This repository names neither.
# What they fetched stays in $STATE_DIR/package-proxies, so a package is downloaded once.
#   scripts/proxies.sh install  install what is missing (also what compose-smoke.sh builds its
#                               stand-in images from)
#   scripts/proxies.sh up       install what is missing, start both, wait until they answer
#   scripts/proxies.sh down     stop both
#   scripts/proxies.sh status
#   scripts/proxies.sh env      the executor settings pointing at them (GITFAAS__… lines)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEVPI_PORT="${GITFAAS_DEVPI_PORT:-3141}"
VERDACCIO_PORT="${GITFAAS_VERDACCIO_PORT:-4873}"
DATA="$STATE_DIR/package-proxies"
PIP_INDEX="http://127.0.0.1:$DEVPI_PORT/root/pypi/+simple/"
NPM_REGISTRY="http://127.0.0.1:$VERDACCIO_PORT/"

install_devpi() {
  [[ "$(cat "$DEVPI_VENV/.complete" 2>/dev/null)" == "$DEVPI_VERSION" ]] && return 0
  say "installing devpi-server $DEVPI_VERSION into $DEVPI_VENV (pip, from its default index)"
  rm -rf "$DEVPI_VENV"
  python3 -m venv "$DEVPI_VENV"
  # through a wheelhouse, which the compose smoke's stand-in image installs from too
  "$DEVPI_VENV/bin/pip" download -q --disable-pip-version-check -d "$DEVPI_VENV/wheels" "devpi-server==$DEVPI_VERSION"
  "$DEVPI_VENV/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$DEVPI_VENV/wheels" \
    "devpi-server==$DEVPI_VERSION"
  echo "$DEVPI_VERSION" >"$DEVPI_VENV/.complete"
}

install_verdaccio() {
  [[ "$(cat "$VERDACCIO_HOME/.complete" 2>/dev/null)" == "$VERDACCIO_VERSION" ]] && return 0
  command -v npm >/dev/null || die "npm is required for the npm proxy (Debian: apt-get install npm)"
  say "installing verdaccio $VERDACCIO_VERSION under $VERDACCIO_HOME (npm, from its default registry)"
  rm -rf "$VERDACCIO_HOME"
  npm install --prefix "$VERDACCIO_HOME" --no-audit --no-fund --silent "verdaccio@$VERDACCIO_VERSION"
  echo "$VERDACCIO_VERSION" >"$VERDACCIO_HOME/.complete"
}

# devpi's server directory, made once. root gets a random password nobody is told (kept
# 0600 beside the data), so nothing on this host can log in and change the mirror.
init_devpi() {
  local dir="$DATA/devpi"
  [[ -f "$dir/.nodeinfo" ]] && return 0
  mkdir -p "$DATA" && chmod 0700 "$DATA"
  (umask 077; head -c 24 /dev/urandom | base64 >"$DATA/devpi-root-password")
  "$DEVPI_VENV/bin/devpi-init" --serverdir "$dir" --root-passwd "$(cat "$DATA/devpi-root-password")" \
    >>"$LOG_DIR/devpi.log" 2>&1 || die "devpi-init failed (log: $LOG_DIR/devpi.log)"
}

# verdaccio's config is the default it ships (@verdaccio/config's default.yaml, its uplink
# included; storage beside the config), with user registration turned off: no one can publish.
init_verdaccio() {
  local config="$DATA/verdaccio/config.yaml" shipped
  mkdir -p "$DATA/verdaccio" && chmod 0700 "$DATA"
  if [[ ! -f "$config" ]]; then
    shipped=$(find "$VERDACCIO_HOME/node_modules" -path '*/@verdaccio/config/build/conf/default.yaml' | head -1)
    [[ -n "$shipped" ]] || die "verdaccio's default config is not under $VERDACCIO_HOME"
    sed 's|^\( *\)file: ./htpasswd$|&\n\1max_users: -1|' "$shipped" >"$config.new"
    grep -q 'max_users: -1' "$config.new" || die "could not turn registration off in $config"
    mv "$config.new" "$config"
  fi
  echo "$config"
}

up() {
  install_devpi
  install_verdaccio
  init_devpi
  local config; config=$(init_verdaccio)
  start_bg devpi "$DEVPI_VENV/bin/devpi-server" --serverdir "$DATA/devpi" --host 127.0.0.1 --port "$DEVPI_PORT"
  start_bg verdaccio "$VERDACCIO_HOME/node_modules/.bin/verdaccio" --config "$config" \
    --listen "127.0.0.1:$VERDACCIO_PORT"
  wait_for "devpi on :$DEVPI_PORT" 120 curl -fsS "http://127.0.0.1:$DEVPI_PORT/+api"
  wait_for "verdaccio on :$VERDACCIO_PORT" 60 curl -fsS "${NPM_REGISTRY}-/ping"
  say "package proxies up: pip $PIP_INDEX, npm $NPM_REGISTRY (cache in $DATA)"
}

down() {
  stop_bg verdaccio
  stop_bg devpi
}

status() {
  for s in devpi verdaccio; do
    if is_running "$s"; then echo "$s: running"; else echo "$s: stopped"; fi
  done
}

env_lines() {
  echo "GITFAAS__EXECUTOR__DEPENDENCIES__PIP_INDEX=$PIP_INDEX"
  echo "GITFAAS__EXECUTOR__DEPENDENCIES__NPM_REGISTRY=$NPM_REGISTRY"
}

case "${1:-up}" in
  install) install_devpi; install_verdaccio ;;
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_lines ;;
  *) die "usage: $0 install|up|down|status|env" ;;
esac
