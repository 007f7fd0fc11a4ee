# shellcheck shell=bash
# Shared helpers for gitfaas scripts: paths, logging, idempotent installs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# State that outlives one checkout (broker data, caches, built binaries) lives here,
# so a second clone on the same machine reuses what the first one built.
STATE_DIR="${GITFAAS_STATE_DIR:-/var/lib/gitfaas}"
RUN_DIR="${GITFAAS_RUN_DIR:-$STATE_DIR/run}"
LOG_DIR="${GITFAAS_LOG_DIR:-$STATE_DIR/log}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STATE_DIR/target}"
mkdir -p "$STATE_DIR" "$RUN_DIR" "$LOG_DIR"

# prune_build_cache: the shared target directory grows with every checkout path that builds
# into it (cargo puts a hash of the path in each workspace artifact's name: ≈ 20 GiB of debug
# test binaries per path). Past GITFAAS_TARGET_MAX_GB (60) used, or with less than
# GITFAAS_MIN_FREE_GB (12) free on its disk, the incremental state goes, then, if that is not
# enough, the debug profile (the next build starts over, as on a fresh machine).
prune_build_cache() {
  local dir="$CARGO_TARGET_DIR" max="${GITFAAS_TARGET_MAX_GB:-60}" min_free="${GITFAAS_MIN_FREE_GB:-12}"
  [[ -d "$dir" ]] || return 0
  cache_gb() { du -sx --block-size=1G "$dir" | cut -f1; }
  disk_free_gb() { df --output=avail --block-size=1G "$dir" | tail -1 | tr -d ' '; }
  local before
  before="$(cache_gb)"
  (( before > max || $(disk_free_gb) < min_free )) || return 0
  say "build cache $dir: ${before} GiB, $(disk_free_gb) GiB free on its disk; pruning"
  rm -rf "$dir"/*/incremental
  if (( $(cache_gb) > max || $(disk_free_gb) < min_free )); then
    rm -rf "$dir/debug"
  fi
  say "build cache $dir: $(cache_gb) GiB, $(disk_free_gb) GiB free"
}

say() { printf '\033[1m[gitfaas]\033[0m %s\n' "$*" >&2; }
die() { printf '[gitfaas] error: %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND... — retry COMMAND once a second until it succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  for _ in $(seq "$secs"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "timed out after ${secs}s waiting for $what"
}

# start_bg NAME COMMAND... — start a daemon in the background with a pid file and a log.
start_bg() {
  local name="$1"; shift
  if is_running "$name"; then say "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return 0; fi
  say "starting $name"
  nohup setsid "$@" >"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

is_running() {
  local pidfile="$RUN_DIR/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

stop_bg() {
  local name="$1" pidfile="$RUN_DIR/$1.pid"
  if is_running "$name"; then
    say "stopping $name"
    kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 30); do is_running "$name" || break; sleep 0.5; done
    is_running "$name" && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# bin_dir [PROFILE]: where cargo puts the binaries of a profile (default GITFAAS_PROFILE, dev).
bin_dir() {
  local profile="${1:-${GITFAAS_PROFILE:-dev}}"
  echo "$CARGO_TARGET_DIR/$([[ "$profile" == dev ]] && echo debug || echo "$profile")"
}

# build_image TAG DOCKER-BUILD-ARGS... — a quiet docker build (output appended to $BUILD_LOG)
# that removes the image it replaces, so that rebuilding leaves no dangling images behind.
build_image() {
  local tag="$1" old new log="${BUILD_LOG:-$LOG_DIR/docker-build.log}"; shift
  old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  docker build -t "$tag" "$@" >>"$log" 2>&1 || { tail -30 "$log" >&2; die "docker build of $tag failed (log: $log)"; }
  new=$(docker image inspect -f '{{.Id}}' "$tag")
  # (bounded: an engine that cannot delete images must not hang the build)
  if [[ -n "$old" && "$old" != "$new" ]]; then timeout 30 docker rmi "$old" >/dev/null 2>&1 || true; fi
}

# npm_deps DIR WHY — the npm packages of DIR's package-lock.json (npm ci), installed again
# only when its package.json or lock file changed since the last install.
npm_deps() {
  local dir="$ROOT/$1" why="$2" stamp
  stamp="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)"
  [[ "$(cat "$dir/node_modules/.gitfaas-deps" 2>/dev/null)" == "$stamp" ]] && return 0
  command -v npm >/dev/null || die "npm is required for $why (Debian: apt-get install npm)"
  say "installing the npm packages of $1 ($why)"
  npm ci --prefix "$dir" --no-audit --no-fund --silent
  echo "$stamp" >"$dir/node_modules/.gitfaas-deps"
}

# ensure_setup WHO — runs scripts/setup.sh when this machine lacks something it installs,
# after saying what is missing and why WHO needs it. Nothing is installed without that message.
ensure_setup() {
  local missing
  if missing=$("$ROOT/scripts/setup.sh" --check); then return 0; fi
  say "$1 needs what scripts/setup.sh installs, and this machine lacks:"
  sed 's/^/  - /' <<<"$missing" >&2
  say "running scripts/setup.sh now (as root: apt-get, pip into $STATE_DIR/venv, Maven Central, docker);"
  say "run it yourself beforehand to keep this step apart"
  "$ROOT/scripts/setup.sh"
}

# pom_property NAME: a version pinned in scripts/maven/pom.xml.
pom_property() {
  sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$ROOT/scripts/maven/pom.xml" | head -1
}

# The Kafka jars (scripts/kafka.sh install), by version, in the state directory; installed when
# their marker names the current pom.
kafka_libs() { echo "$STATE_DIR/jvm/kafka-$(pom_property kafka.version)/lib"; }
pom_hash() { sha256sum "$ROOT/scripts/maven/pom.xml" | cut -d' ' -f1; }
kafka_installed() { [[ "$(cat "$(kafka_libs)/.complete" 2>/dev/null)" == "$(pom_hash)" ]]; }

# The Keycloak distribution (scripts/keycloak.sh install), by version, in the state directory.
keycloak_home() { echo "$STATE_DIR/jvm/keycloak-$(pom_property keycloak.version)"; }
keycloak_installed() { [[ -f "$(keycloak_home)/.complete" ]]; }
# The package proxies (scripts/proxies.sh), by version, in the state directory: devpi-server in
# a venv (with the wheelhouse it was installed from) and verdaccio's npm package.
DEVPI_VERSION=6.20.3
VERDACCIO_VERSION=6.5.2      # the last 6.x that runs on node 18 (Debian bookworm's)
DEVPI_VENV="$STATE_DIR/venv-devpi"
VERDACCIO_HOME="$STATE_DIR/verdaccio"

# The JDK Keycloak runs on (Java 25 is supported from Keycloak 26.6 on; Debian's 17 is deprecated there).
KEYCLOAK_JAVA_HOME="${GITFAAS_KEYCLOAK_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"

# kafka_ready PORT: the broker on 127.0.0.1:PORT answers an ApiVersions request without error.
kafka_ready() {
  python3 - "$1" <<'PY'
import socket, struct, sys
body = struct.pack(">hhih", 18, 0, 1, 7) + b"gitfaas"
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4))[0]
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    sys.exit(0 if struct.unpack(">ih", data[:6])[1] == 0 else 1)
PY
}
