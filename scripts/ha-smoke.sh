#!/usr/bin/env bash
# HA smoke test, on this machine (no registry): the replicated default stack of
# deploy/compose/docker-compose.yml — three Kafka nodes (replication factor 3,
# min.insync.replicas 2), two frontends behind the load balancer (`lb`, HAProxy), two
# executors, Redis, observer — with the stand-ins of smoke.override.yml, and Keycloak
# (keycloak.yml). While alice and bob submit a burst of jobs through the balancer
# (scripts/ha-load.py), it
#   1. SIGKILLs the Kafka node leading most partitions (asked of Kafka: kafka-topics --describe),
#   2. SIGKILLs one frontend,
#   3. SIGKILLs one executor,
#   4. SIGKILLs Redis and starts it again empty (its volume removed),
# leaving the killed containers down (their restart policy is lifted first: the stack must
# finish the run without them). Then every accepted job must end in exactly one terminal
# result — `succeeded`, with its own output — read alike through the balancer from either
# frontend; a sync submission (Prefer: wait) and the events websocket through the balancer
# must work after the losses; no 5xx window may last longer than HA_SMOKE_MAX_5XX_SECONDS (15). The figures
# (5xx windows per event, slowest accepted submission) go to $LOG_DIR/ha-smoke.json, or to
# HA_SMOKE_OUT. Always takes everything down (down -v), also on failure or Ctrl-C.
#   scripts/ha-smoke.sh
# The images are those scripts/compose-smoke.sh builds (it runs first in .ci/run); missing
# ones are an error. Host ports, 127.0.0.1 only: HA_SMOKE_HTTP_PORT (28080, the balancer),
# HA_SMOKE_KEYCLOAK_PORT (28180), HA_SMOKE_OBSERVER_METRICS_PORT (29102).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROJECT=gitfaas-ha
AUTH_PROJECT=gitfaas-ha-auth
COMPOSE_DIR="$ROOT/deploy/compose"
HA_DIR="$STATE_DIR/ha-smoke"
HEALTH_TIMEOUT="${HA_SMOKE_HEALTH_TIMEOUT:-300}"
MAX_5XX="${HA_SMOKE_MAX_5XX_SECONDS:-15}"
JOBS_PER_USER="${HA_SMOKE_JOBS:-30}"
BURST="${HA_SMOKE_BURST:-80}"
OUT="${HA_SMOKE_OUT:-$LOG_DIR/ha-smoke.json}"

export GITFAAS_TAG=local
export GITFAAS_HTTP_PORT="${HA_SMOKE_HTTP_PORT:-28080}"
export KEYCLOAK_PORT="${HA_SMOKE_KEYCLOAK_PORT:-28180}"
export GITFAAS_OBSERVER_METRICS_PORT="${HA_SMOKE_OBSERVER_METRICS_PORT:-29102}"
export GITFAAS_AUTH_NETWORK=gitfaas-ha-auth
export GITFAAS_WORK_DIR="$HA_DIR/work"
export GITFAAS_KAFKA_HEAP="-Xms128m -Xmx384m"
API="http://127.0.0.1:$GITFAAS_HTTP_PORT"
export GITFAAS_WEB_URL="$API"
KEYCLOAK="http://127.0.0.1:$KEYCLOAK_PORT"
UP_LOG="$LOG_DIR/ha-smoke-up.log"
DOWN_LOG="$LOG_DIR/ha-smoke-down.log"
EVENTS="$HA_DIR/events"

ensure_setup "the HA smoke test (scripts/ha-smoke.sh)"
command -v docker-compose >/dev/null && COMPOSE=(docker-compose) || COMPOSE=(docker compose)
exec 9>"$RUN_DIR/ha-smoke.lock"
flock -n 9 || die "another HA smoke test is running"

faas() { "${COMPOSE[@]}" --profile examples -p "$PROJECT" -f "$COMPOSE_DIR/docker-compose.yml" -f "$COMPOSE_DIR/smoke.override.yml" "$@"; }
auth() { "${COMPOSE[@]}" -p "$AUTH_PROJECT" -f "$COMPOSE_DIR/keycloak.yml" -f "$COMPOSE_DIR/smoke/keycloak.override.yml" "$@"; }
project_containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"
  docker ps -aq --filter "label=com.docker.compose.project=$AUTH_PROJECT"
}
down_all() {
  faas down -v --remove-orphans -t 10 >>"$DOWN_LOG" 2>&1 || true
  auth down -v --remove-orphans -t 5 >>"$DOWN_LOG" 2>&1 || true
}
executor_ids() { for c in $(faas ps -q executor); do docker inspect -f '{{.Config.Hostname}}' "$c"; done; }

LOAD_PID=
EXECUTOR_IDS=()
cleanup() {
  local rc=$? leftover=() id
  trap - EXIT INT TERM
  exec 1>&6 2>&7
  [[ -z "$LOAD_PID" ]] || kill "$LOAD_PID" 2>/dev/null || true
  if ((rc != 0)) && [[ -n "$(faas ps -q 2>/dev/null)" ]]; then
    say "FAILED — state and logs of the services:"
    faas ps 2>&1 | sed 's/^/  /' >&2 || true
    faas logs --no-color --tail=30 2>&1 | sed 's/^/  /' >&2 || true
  fi
  say "taking the HA smoke projects down"
  down_all
  # a SIGKILLed executor cannot remove its job containers: whatever is left goes now
  for id in "${EXECUTOR_IDS[@]}"; do
    mapfile -t -O "${#leftover[@]}" leftover < <(docker ps -aq --filter "label=io.gitfaas.executor=$id")
  done
  ((${#leftover[@]} == 0)) || docker rm -f "${leftover[@]}" >/dev/null 2>&1 || true
  local rest
  rest=$(project_containers | tr '\n' ' ')
  [[ -z "${rest// }" ]] || { say "error: containers left behind: $rest"; rc=1; }
  rm -rf "$GITFAAS_WORK_DIR"
  if ((rc == 0)); then say "HA smoke test passed in ${SECONDS}s"; else say "HA smoke test FAILED (${SECONDS}s)"; fi
  exit "$rc"
}

# all_up — every container of both projects healthy (one-shots: exited 0), each expected
# service present with its replica count.
declare -A EXPECTED=([kafka]=1 [kafka-2]=1 [kafka-3]=1 [kafka-init]=1 [redis]=1 [frontend]=2 [lb]=1
  [executor]=2 [observer]=1 [examples]=1 [keycloak]=1)
all_up() {
  local ids service state health code pending=0
  declare -A seen=()
  ids=$(project_containers)
  [[ -n "$ids" ]] || return 1
  while read -r service state health code; do
    seen[$service]=$((${seen[$service]:-0} + 1))
    case "$service" in
      kafka-init|runtime-*)
        if [[ "$state" == exited ]]; then
          [[ "$code" == 0 ]] || { echo "FATAL $service exited $code"; return 2; }
        else pending=1; fi ;;
      *) [[ "$state" == running && "$health" =~ ^(healthy|none)$ ]] || pending=1 ;;
    esac
  done < <(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' $ids)
  for service in "${!EXPECTED[@]}"; do
    [[ "${seen[$service]:-0}" == "${EXPECTED[$service]}" ]] || pending=1
  done
  return "$pending"
}
wait_healthy() {
  local status
  for _ in $(seq "$HEALTH_TIMEOUT"); do
    all_up >/dev/null && return 0
    status=$?
    ((status == 2)) && die "$(all_up)"
    sleep 1
  done
  die "services not healthy after ${HEALTH_TIMEOUT}s"
}

# Kafka's own view, from inside the first node: every topic three copies, gitfaas' with
# min.insync.replicas=2; prints the node id leading most partitions.
topics() { docker exec "$(faas ps -q kafka)" /opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092,kafka-2:9092,kafka-3:9092 --describe; }
check_replication() {
  local described="$1"
  awk '/ReplicationFactor:/ && !/ReplicationFactor: 3/ {bad = bad " " $2} END {if (bad) {print "not three copies:" bad; exit 1}}' <<<"$described" || return 1
  awk '/^Topic: gitfaas\./ && /ReplicationFactor:/ && !/min.insync.replicas=2/ {bad = bad " " $2} END {if (bad) {print "min.insync.replicas not 2:" bad; exit 1}}' <<<"$described" || return 1
  grep -q '^Topic: __consumer_offsets' <<<"$described" || { echo "no __consumer_offsets yet"; return 1; }
}
busiest_leader() {
  awk '/Partition:/ {for (i = 1; i < NF; i++) if ($i == "Leader:") n[$(i + 1)]++}
       END {for (id in n) if (n[id] > max) {max = n[id]; best = id}; print best, max}' <<<"$1"
}
service_of_node() { case "$1" in 1) echo kafka ;; 2) echo kafka-2 ;; 3) echo kafka-3 ;; *) die "unknown Kafka node id $1" ;; esac; }

# event NAME AT — logged for ha-load.py, which charges each 5xx window and slow submission
# to the last event before it (AT: taken just before the kill)
event() { echo "$1 $2" >>"$EVENTS"; say "event: $1"; }
# kill_one SERVICE — SIGKILL one container of SERVICE for good (restart policy lifted first)
kill_one() {
  local c at; c=$(faas ps -q "$1" | awk 'NR == 1')  # awk reads it all: no SIGPIPE under pipefail
  [[ -n "$c" ]] || die "no container of $1 to kill"
  docker update --restart=no "$c" >/dev/null
  at=$(date +%s.%N)
  docker kill -s KILL "$c" >/dev/null
  event "kill $1 ($(docker inspect -f '{{.Name}}' "$c" | tr -d /))" "$at"
}

# ---------------------------------------------------------------------------------------- main
for image in gitfaas/frontend gitfaas/executor gitfaas/observer gitfaas/examples gitfaas-smoke/kafka gitfaas-smoke/redis gitfaas-smoke/keycloak; do
  docker image inspect "$image:local" >/dev/null 2>&1 || die "image $image:local missing: run scripts/compose-smoke.sh first (it builds them)"
done
for port in "$GITFAAS_HTTP_PORT" "$KEYCLOAK_PORT" "$GITFAAS_OBSERVER_METRICS_PORT"; do
  if ss -Hltn "sport = :$port" | grep -q .; then
    project_containers | grep -q . || die "port $port is in use (set HA_SMOKE_HTTP_PORT / HA_SMOKE_KEYCLOAK_PORT / HA_SMOKE_OBSERVER_METRICS_PORT)"
  fi
done
: >"$UP_LOG"
: >"$DOWN_LOG"
BUILD_LOG="$LOG_DIR/ha-smoke-build.log"
: >"$BUILD_LOG"
say "building gitfaas/lb:$GITFAAS_TAG (HAProxy from Debian's package)"
faas build lb >>"$BUILD_LOG" 2>&1 || { tail -20 "$BUILD_LOG" >&2; die "compose build of lb failed"; }
down_all
rm -rf "$HA_DIR" && mkdir -p "$GITFAAS_WORK_DIR"
: >"$EVENTS"
exec 6>&1 7>&2
trap cleanup EXIT
trap 'exit 130' INT TERM

say "compose up (${COMPOSE[*]}): $AUTH_PROJECT, then $PROJECT (3 Kafka nodes, 2 frontends behind lb, 2 executors)"
up_at=$SECONDS
auth up -d >>"$UP_LOG" 2>&1 || { tail -20 "$UP_LOG" >&2; die "compose up of $AUTH_PROJECT failed"; }
# the examples git server first: its address is the one internal address jobs may fetch from
faas up -d --no-build examples >>"$UP_LOG" 2>&1 || { tail -20 "$UP_LOG" >&2; die "compose up of examples failed"; }
examples_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(faas ps -q examples)")
[[ -n "$examples_ip" ]] || die "no address for the examples service"
export GITFAAS_ALLOWED_RANGES="$examples_ip/32"
faas up -d --no-build >>"$UP_LOG" 2>&1 || { tail -20 "$UP_LOG" >&2; die "compose up of $PROJECT failed"; }
mapfile -t EXECUTOR_IDS < <(executor_ids)
wait_healthy
say "all services healthy $((SECONDS - up_at))s after up"
[[ "$(printf '%s\n' "${EXECUTOR_IDS[@]}" | sort -u | wc -l)" == 2 ]] || die "the two executors do not have two ids: ${EXECUTOR_IDS[*]}"

TOKEN_URL="$KEYCLOAK/realms/gitfaas/protocol/openid-connect/token"
python3 "$ROOT/scripts/ha-load.py" --api "$API" --token-url "$TOKEN_URL" --events "$EVENTS" \
  --out "$OUT" --jobs "$JOBS_PER_USER" --burst "$BURST" &
LOAD_PID=$!

# Kafka's view while the first jobs flow (__consumer_offsets exists once the groups joined)
described=
for _ in $(seq 30); do
  described=$(topics 2>/dev/null) && check_replication "$described" >/dev/null && break
  sleep 1
done
problem=$(check_replication "$described") || die "replication: $problem"
read -r leader led < <(busiest_leader "$described")
say "replication: every topic 3 copies, gitfaas.* min.insync.replicas=2; node $leader leads $led partitions"

# one event every GAP seconds, all within the burst, the last one with a third of it to go
GAP="${HA_SMOKE_GAP:-12}"
sleep 5
kill_one "$(service_of_node "$leader")"
sleep "$GAP"
kill_one frontend
sleep "$GAP"
kill_one executor
sleep "$GAP"
redis=$(faas ps -q redis)
at=$(date +%s.%N)
docker kill -s KILL "$redis" >/dev/null
event "kill redis, start it empty" "$at"
faas rm -f -s redis >>"$UP_LOG" 2>&1
docker volume rm "${PROJECT}_redis-data" >>"$UP_LOG" 2>&1 || die "could not remove Redis' volume"
faas up -d --no-build --no-deps redis >>"$UP_LOG" 2>&1 || die "could not start Redis again"
echo "done 0" >>"$EVENTS"

say "waiting for every job's result (ha-load.py)"
rc=0
wait "$LOAD_PID" || rc=$?
LOAD_PID=
((rc == 0)) || die "the jobs did not all end in one result each, or a check failed (figures: $OUT)"
worst=$(jq -r '[.worst_5xx_window_seconds_after | to_entries[] | .value] | max // 0' "$OUT")
say "figures: $(jq -c '{jobs_accepted, results, requests, requests_5xx_or_unanswered, worst_5xx_window_seconds_after, last_5xx_seconds_after, slowest_submit_seconds_after}' "$OUT")"
jq -e --argjson max "$MAX_5XX" '[.windows_5xx[].seconds] | all(. <= $max)' "$OUT" >/dev/null \
  || die "a client saw 5xx for ${worst}s, longer than the documented ${MAX_5XX}s"
