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

# pom_property NAME: a version pinned in scripts/maven/pom.xml.
pom_property() {
  sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$ROOT/scripts/maven/pom.xml" | head -1
}

# The Kafka jars (scripts/kafka.sh install), by version, in the state directory.
kafka_libs() { echo "$STATE_DIR/jvm/kafka-$(pom_property kafka.version)/lib"; }

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
