#!/usr/bin/env bash
# Starts or stops the infrastructure gitfaas needs on this machine, all on loopback:
# Apache Kafka (one KRaft node, durable log directories), Redis, Keycloak and the
# Docker engine.
#   scripts/infra.sh up | down | status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${GITFAAS_KAFKA_PORT:-9092}"
REDIS_PORT="${GITFAAS_REDIS_PORT:-6390}"

up() {
  ensure_setup "the local infrastructure (scripts/infra.sh up, which stack.sh up and test.sh run)"
  mkdir -p "$STATE_DIR/redis"
  start_bg redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE_DIR/redis" \
    --appendonly yes --save "" --daemonize no
  "$ROOT/scripts/kafka.sh" up
  "$ROOT/scripts/keycloak.sh" up
  wait_for "redis on :$REDIS_PORT" 30 redis-cli -p "$REDIS_PORT" ping
  say "infrastructure up: kafka 127.0.0.1:$KAFKA_PORT, redis 127.0.0.1:$REDIS_PORT, keycloak 127.0.0.1:${GITFAAS_KEYCLOAK_PORT:-8180}, docker"
}

down() {
  "$ROOT/scripts/keycloak.sh" down
  "$ROOT/scripts/kafka.sh" down
  stop_bg redis
}

status() {
  "$ROOT/scripts/kafka.sh" status
  "$ROOT/scripts/keycloak.sh" status
  if is_running redis; then echo "redis: running"; else echo "redis: stopped"; fi
  docker info >/dev/null 2>&1 && echo "docker: running" || echo "docker: stopped"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
