#!/usr/bin/env bash
# Starts or stops the infrastructure gitfaas needs on this machine, all on loopback:
# the tansu Kafka-protocol broker (durable sqlite storage), Redis and the Docker engine.
#   scripts/infra.sh up | down | status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${GITFAAS_KAFKA_PORT:-9092}"
REDIS_PORT="${GITFAAS_REDIS_PORT:-6390}"

kafka_ready() {
  python3 - "$KAFKA_PORT" <<'PY'
import socket, struct, sys
# ApiVersions v0 request: the broker must answer it with error code 0
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

up() {
  "$ROOT/scripts/setup.sh"
  mkdir -p "$STATE_DIR/redis" "$STATE_DIR/tansu"
  start_bg redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE_DIR/redis" \
    --appendonly yes --save "" --daemonize no
  # tansu resolves sqlite:// paths against its working directory
  (cd "$STATE_DIR/tansu" && start_bg tansu "$(command -v tansu)" broker \
    --storage-engine "sqlite://tansu.db" \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT")
  wait_for "redis on :$REDIS_PORT" 30 redis-cli -p "$REDIS_PORT" ping
  wait_for "kafka broker on :$KAFKA_PORT" 60 kafka_ready
  say "infrastructure up: kafka 127.0.0.1:$KAFKA_PORT, redis 127.0.0.1:$REDIS_PORT, docker"
}

down() {
  stop_bg tansu
  stop_bg redis
}

status() {
  for s in tansu redis; do
    if is_running "$s"; then echo "$s: running"; else echo "$s: stopped"; fi
  done
  docker info >/dev/null 2>&1 && echo "docker: running" || echo "docker: stopped"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
