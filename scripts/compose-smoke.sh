#!/usr/bin/env bash
# Compose smoke test, on this machine (no registry): deploy/compose/docker-compose.yml with
# deploy/compose/single-node.yml (the laptop stack; scripts/ha-smoke.sh runs the replicated
# default) and deploy/compose/smoke.override.yml, which substitutes only what cannot be pulled here (Kafka →
# the same Kafka jars in an image laid out like apache/kafka, Redis → Debian's, Keycloak → the
# same Keycloak in an image built from the Maven Central distribution, smoke/keycloak.Dockerfile)
# with images built locally. Builds what it needs, brings both projects up (keycloak.yml with
# the realm import, then docker-compose.yml), waits until every service is healthy, gets a token
# for alice from Keycloak through its published port (its iss must be the issuer the frontend
# trusts), submits one job per
# runtime (python, command; from the `examples` git server) with curl, checks status and
# output, and always takes everything
# down again (down -v, also on failure or Ctrl-C). Exit status 0 = passed.
#   scripts/compose-smoke.sh
# Host ports, on 127.0.0.1 only: SMOKE_HTTP_PORT (18080, the frontend) and SMOKE_KEYCLOAK_PORT
# (18180, Keycloak), SMOKE_OBSERVER_METRICS_PORT (19102) — not those of scripts/stack.sh (8080,
# 8180, 9092, 6390, 9418, 9101-9103).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROJECT=gitfaas-smoke
AUTH_PROJECT=gitfaas-smoke-auth
COMPOSE_DIR="$ROOT/deploy/compose"
SMOKE_DIR="$STATE_DIR/compose-smoke"
HEALTH_TIMEOUT="${SMOKE_HEALTH_TIMEOUT:-300}"   # Keycloak: a first start-dev in a container

export GITFAAS_TAG=local
export GITFAAS_HTTP_PORT="${SMOKE_HTTP_PORT:-18080}"
export KEYCLOAK_PORT="${SMOKE_KEYCLOAK_PORT:-18180}"
export GITFAAS_OBSERVER_METRICS_PORT="${SMOKE_OBSERVER_METRICS_PORT:-19102}"
export GITFAAS_PROMETHEUS_PORT="${SMOKE_PROMETHEUS_PORT:-19090}"
export GITFAAS_AUTH_NETWORK=gitfaas-smoke-auth
export GITFAAS_WORK_DIR="$SMOKE_DIR/work"
export GITFAAS_DEPS_DIR="$SMOKE_DIR/deps"
DEPS_FILES="$SMOKE_DIR/deps-files" # the dependency job's repository and package index
API="http://127.0.0.1:$GITFAAS_HTTP_PORT"
export GITFAAS_WEB_URL="$API"   # the realm's web client redirects here
KEYCLOAK="http://127.0.0.1:$KEYCLOAK_PORT"
BUILD_LOG="$LOG_DIR/compose-smoke-build.log"

# ---------------------------------------------------------------------------- prerequisites
ensure_setup "the compose smoke test (scripts/compose-smoke.sh)"
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  if ! command -v docker-compose >/dev/null; then
    say "installing docker-compose (apt-get): this Docker engine has no compose plugin, and the smoke test runs compose"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose
  fi
  COMPOSE=(docker-compose)
fi
# containers of both projects (two queries: label filters are and-ed)
project_containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"
  docker ps -aq --filter "label=com.docker.compose.project=$AUTH_PROJECT"
}
# one run at a time: the projects and ports are fixed. (Taken after setup.sh, which may start
# dockerd: a daemon would inherit the descriptor and hold the lock for ever.)
exec 9>"$RUN_DIR/compose-smoke.lock"
flock -n 9 || die "another compose smoke test is running"

faas() { "${COMPOSE[@]}" --profile examples --profile prometheus -p "$PROJECT" -f "$COMPOSE_DIR/docker-compose.yml" -f "$COMPOSE_DIR/single-node.yml" -f "$COMPOSE_DIR/smoke.override.yml" "$@"; }
auth() { "${COMPOSE[@]}" -p "$AUTH_PROJECT" -f "$COMPOSE_DIR/keycloak.yml" -f "$COMPOSE_DIR/smoke/keycloak.override.yml" "$@"; }

down_all() {
  docker rm -f gitfaas-smoke-repo gitfaas-smoke-index >/dev/null 2>&1 || true
  faas down -v --remove-orphans -t 20 >>"$LOG_DIR/compose-smoke-down.log" 2>&1 || true
  auth down -v --remove-orphans -t 5 >>"$LOG_DIR/compose-smoke-down.log" 2>&1 || true
}

# ------------------------------------------------------------------------------ cleanup trap
EXECUTOR_IDS=()
cleanup() {
  local rc=$? leftover=()
  trap - EXIT INT TERM
  exec 1>&6 2>&7 # a signal can land inside a redirected command: report to the terminal
  if ((rc != 0)) && [[ -n "$(faas ps -q 2>/dev/null)" ]]; then
    say "FAILED — state and logs of the services:"
    faas ps 2>&1 | sed 's/^/  /' >&2 || true
    faas logs --no-color --tail=40 2>&1 | sed 's/^/  /' >&2 || true
    auth logs --no-color --tail=10 2>&1 | sed 's/^/  /' >&2 || true
  fi
  say "taking the smoke projects down"
  down_all
  # job containers are the executor's, not compose's: none may survive it
  for id in "${EXECUTOR_IDS[@]}"; do
    mapfile -t -O "${#leftover[@]}" leftover < <(docker ps -aq --filter "label=io.gitfaas.executor=$id")
  done
  if ((${#leftover[@]})); then
    docker rm -f "${leftover[@]}" >/dev/null 2>&1 || true
    say "error: the executor left ${#leftover[@]} job container(s) behind (removed now)"
    rc=1
  fi
  local rest
  rest=$(project_containers | tr '\n' ' ')
  [[ -z "${rest// }" ]] || { say "error: containers left behind: $rest"; rc=1; }
  rm -rf "$GITFAAS_WORK_DIR"
  if ((rc == 0)); then say "compose smoke test passed in ${SECONDS}s"; else say "compose smoke test FAILED (${SECONDS}s)"; fi
  exit "$rc"
}

# -------------------------------------------------------------------------------------- build
build() {
  : >"$BUILD_LOG"
  # gitfaas/{frontend,executor,observer}:local from host binaries, and the runtime images
  "$ROOT/deploy/docker/build-local.sh" "$GITFAAS_TAG"

  say "building gitfaas/examples:$GITFAAS_TAG, gitfaas/lb:$GITFAAS_TAG (compose build) and the smoke stand-ins (kafka, redis, keycloak, prometheus, package proxies)"
  local old image
  for image in examples lb; do
    old=$(docker image inspect -f '{{.Id}}' "gitfaas/$image:$GITFAAS_TAG" 2>/dev/null || true)
    faas build "$image" >>"$BUILD_LOG" 2>&1 || { tail -20 "$BUILD_LOG" >&2; die "compose build of $image failed"; }
    [[ -z "$old" || "$old" == "$(docker image inspect -f '{{.Id}}' "gitfaas/$image:$GITFAAS_TAG")" ]] || timeout 30 docker rmi "$old" >/dev/null 2>&1 || true
  done

  local ctx="$SMOKE_DIR/context"
  rm -rf "$ctx" && mkdir -p "$ctx/kafka" "$ctx/keycloak/keycloak" "$ctx/keycloak/java"
  cp -R "$(kafka_libs)" "$ctx/kafka/libs" && cp -R "$COMPOSE_DIR/smoke/kafka" "$ctx/kafka/bin"
  build_image gitfaas-smoke/kafka:local -f "$COMPOSE_DIR/smoke/kafka.Dockerfile" "$ctx/kafka"

  # Keycloak: the distribution scripts/keycloak.sh runs (without its local data) and its JDK
  local keycloak_home; keycloak_home=$("$ROOT/scripts/keycloak.sh" install)
  tar -C "$keycloak_home" --exclude=./data -cf - . | tar -C "$ctx/keycloak/keycloak" -xf -
  local java_home="$KEYCLOAK_JAVA_HOME"
  cp -a "$java_home/." "$ctx/keycloak/java/"
  # Debian's JDK links its CA store to /etc/ssl; Keycloak refuses to start without one
  cp -L --remove-destination "$java_home/lib/security/cacerts" "$ctx/keycloak/java/lib/security/cacerts"
  build_image gitfaas-smoke/keycloak:local -f "$COMPOSE_DIR/smoke/keycloak.Dockerfile" "$ctx/keycloak"

  # the package proxies: devpi-server's wheelhouse and verdaccio's package as scripts/proxies.sh
  # installed them on the host (it installs them when missing); the smoke only checks that they
  # are healthy and answer the executor — nothing here makes them reach their public upstreams
  "$ROOT/scripts/proxies.sh" install
  mkdir -p "$ctx/pypi-proxy" "$ctx/npm-proxy"
  cp -R "$DEVPI_VENV/wheels" "$ctx/pypi-proxy/wheels"
  cp -R "$VERDACCIO_HOME/node_modules" "$ctx/npm-proxy/node_modules"
  build_image gitfaas-smoke/pypi-proxy:local -f "$COMPOSE_DIR/smoke/pypi-proxy.Dockerfile" "$ctx/pypi-proxy"
  build_image gitfaas-smoke/npm-proxy:local -f "$COMPOSE_DIR/smoke/npm-proxy.Dockerfile" "$ctx/npm-proxy"

  build_image gitfaas-smoke/redis:local -f "$COMPOSE_DIR/smoke/redis.Dockerfile" "$COMPOSE_DIR/smoke"
  build_image gitfaas-smoke/prometheus:local -f "$COMPOSE_DIR/smoke/prometheus.Dockerfile" "$COMPOSE_DIR/smoke"
  rm -rf "$ctx"
}

# ------------------------------------------------------------------------------------ waiting
# all_up — every service container of both projects is healthy (or, for the one-shot
# services, has exited 0); fails hard on a one-shot that exited non-zero.
EXPECTED_SERVICES=(kafka kafka-init redis runtime-python runtime-node runtime-command frontend lb executor observer examples prometheus pypi-proxy npm-proxy)
all_up() {
  local ids line name state health code service seen=()
  ids=$(project_containers)
  [[ -n "$ids" ]] || return 1
  local pending=0
  while read -r service state health code; do
    seen+=("$service")
    case "$service" in
      kafka-init|runtime-*)
        if [[ "$state" == exited ]]; then
          [[ "$code" == 0 ]] || { echo "FATAL $service exited $code"; return 2; }
        else pending=1; fi ;;
      *)
        [[ "$state" == running && "$health" == healthy ]] || pending=1 ;;
    esac
  done < <(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' $ids)
  for name in "${EXPECTED_SERVICES[@]}" keycloak; do
    [[ " ${seen[*]} " == *" $name "* ]] || pending=1
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

# ---------------------------------------------------------------------------------- the jobs
TOKEN=
# run_job NAME REQUEST-JSON EXPECTED-OUTPUT-JSON [ALSO [WAITS]]: the job must succeed with that
# output and, if given, the jq condition ALSO must hold of its result; its result is awaited in up
# to WAITS long polls of 60 s (the most one may ask for), default one
run_job() {
  local name="$1" request="$2" expected="$3" also="${4:-true}" waits="${5:-1}" response id result i
  response=$(curl -sS -X POST "$API/v1/jobs" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d "$request")
  id=$(jq -r '.id // empty' <<<"$response")
  [[ -n "$id" ]] || die "$name: job not accepted: $response"
  for ((i = 0; i < waits; i++)); do
    result=$(curl -sS "$API/v1/jobs/$id/result?wait=60" -H "authorization: Bearer $TOKEN")
    [[ -z "$(jq -r '.status | strings' <<<"$result")" ]] || break # a result, not a 409 problem
  done
  jq -e --argjson want "$expected" ".status == \"succeeded\" and .output == \$want and ($also)" <<<"$result" >/dev/null \
    || die "$name: unexpected result: $result"
  say "$name: $(jq -c '{status, output, executor_id, timings, dependencies} | with_entries(select(.value != null))' <<<"$result")"
}

jwt_claims() { local p; p=$(cut -d. -f2 <<<"$1" | tr '_-' '/+'); while (( ${#p} % 4 )); do p+='='; done; base64 -d <<<"$p"; }

# A dependency build by an executor in a container, from a package index of this run's own:
# a hand-made wheel (gitfaas-smoke-greet) served by `python3 -m http.server` and a repository
# whose requirements.txt names it, served by a git daemon, both on the project's network.
serve_dependency_job() {
  rm -rf "$DEPS_FILES" && mkdir -p "$DEPS_FILES/index/simple/gitfaas-smoke-greet" "$DEPS_FILES/git/greet"
  python3 - "$DEPS_FILES/index/simple/gitfaas-smoke-greet" <<'PY'
import base64, hashlib, sys, zipfile
name, version = "gitfaas_smoke_greet", "1.0"
info = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": "def greet(who):\n    return 'greetings, ' + who\n",
    f"{info}/METADATA": f"Metadata-Version: 2.1\nName: gitfaas-smoke-greet\nVersion: {version}\n",
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: gitfaas-smoke\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},{len(text.encode())}"
          for path, text in files.items()] + [f"{info}/RECORD,,"]
files[f"{info}/RECORD"] = "\n".join(record) + "\n"
with zipfile.ZipFile(f"{sys.argv[1]}/{name}-{version}-py3-none-any.whl", "w") as wheel:
    for path, text in files.items():
        wheel.writestr(path, text)
PY
  local repo="$DEPS_FILES/git/greet"
  printf 'runtime = "python"\n' >"$repo/gitfaas.toml"
  printf 'gitfaas-smoke-greet==1.0\n' >"$repo/requirements.txt"
  printf 'from gitfaas_smoke_greet import greet\n\n\ndef main(data, credentials):\n    return {"greeting": greet(data)}\n' >"$repo/main.py"
  git -C "$repo" init -q -b main && git -C "$repo" add -A \
    && git -C "$repo" -c user.name=smoke -c user.email=smoke@localhost commit -qm greet
  chown -R 65534:65534 "$DEPS_FILES"
  docker run -d --name gitfaas-smoke-repo --network "${PROJECT}_default" -v "$DEPS_FILES/git:/srv/git:ro" \
    "gitfaas/examples:$GITFAAS_TAG" >/dev/null
  docker run -d --name gitfaas-smoke-index --network "${PROJECT}_default" --user 65534:65534 \
    -v "$DEPS_FILES/index:/srv/index:ro" gitfaas/python:bookworm python3 -m http.server 8000 --directory /srv/index >/dev/null
  export GITFAAS_PIP_INDEX=http://gitfaas-smoke-index:8000/simple/
  REPO_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' gitfaas-smoke-repo)
  [[ -n "$REPO_IP" ]] || die "no address for the dependency job's git server"
}

# The job builds its layer (from requirements.txt) in a build container whose network has no
# host address, through the executor's proxy; a second run reuses the layer.
run_dependency_job() {
  local built
  for built in true false; do
    # a build may take longer than one wait
    run_job "dependency job (layer built: $built)" '{"repo": "git://gitfaas-smoke-repo:9418/greet", "input": "compose"}' \
      '{"greeting": "greetings, compose"}' ".dependencies.file == \"requirements.txt\" and .dependencies.built == $built" 3
  done
  # the build networks were the executor's own, and it took them down with its builds
  [[ -z "$(docker network ls -q --filter label=io.gitfaas.executor)" ]] || die "a build network was left behind"
}

# ---------------------------------------------------------------------------------------- main
for port in "$GITFAAS_HTTP_PORT" "$KEYCLOAK_PORT" "$GITFAAS_PROMETHEUS_PORT"; do
  if ss -Hltn "sport = :$port" | grep -q .; then
    # ours, from a run that was killed hard? then down_all below frees it
    project_containers | grep -q . \
      || die "port $port is in use (set SMOKE_HTTP_PORT / SMOKE_KEYCLOAK_PORT)"
  fi
done

: >"$LOG_DIR/compose-smoke-up.log"
: >"$LOG_DIR/compose-smoke-down.log"
build
down_all # leftovers of a run that could not clean up
rm -rf "$GITFAAS_WORK_DIR" && mkdir -p "$GITFAAS_WORK_DIR"
exec 6>&1 7>&2
trap cleanup EXIT
trap 'exit 130' INT TERM

say "compose up (${COMPOSE[*]}): $AUTH_PROJECT, then $PROJECT"
up_at=$SECONDS
auth up -d >>"$LOG_DIR/compose-smoke-up.log" 2>&1 || { tail -20 "$LOG_DIR/compose-smoke-up.log" >&2; die "compose up of $AUTH_PROJECT failed"; }
faas up -d --no-build >>"$LOG_DIR/compose-smoke-up.log" 2>&1 || { tail -20 "$LOG_DIR/compose-smoke-up.log" >&2; die "compose up of $PROJECT failed"; }
for c in $(faas ps -q executor); do EXECUTOR_IDS+=("$(docker inspect -f '{{.Config.Hostname}}' "$c")"); done
wait_healthy
# internal addresses are refused by default: allow exactly the examples git server (never the
# network: Kafka and Redis are on it), as deploy/compose/README.md tells an operator to, and
# start the frontend and executor again with it
examples_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(faas ps -q examples)")
[[ -n "$examples_ip" ]] || die "no address for the examples service"
serve_dependency_job
export GITFAAS_ALLOWED_RANGES="$examples_ip/32,$REPO_IP/32"
faas up -d --no-build frontend executor >>"$LOG_DIR/compose-smoke-up.log" 2>&1 || die "restarting frontend and executor failed"
EXECUTOR_IDS=()
for c in $(faas ps -q executor); do EXECUTOR_IDS+=("$(docker inspect -f '{{.Config.Hostname}}' "$c")"); done
wait_healthy
# the package proxies answer the executor, under the names its dependency settings give
for probe in pypi-proxy:3141/+api npm-proxy:4873/-/ping; do
  host=${probe%%:*} port=${probe#*:} port=${port%%/*} path=/${probe#*/}
  faas exec -T executor bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3 \
    && IFS= read -r -t 5 status <&3 && [[ "$status" =~ ^HTTP/[0-9.]+\ 200 ]]' probe "$host" "$port" "$path" \
    || die "the package proxy at $probe does not answer the executor"
done
say "all services healthy $((SECONDS - up_at))s after up: $(faas ps --services | sort | tr '\n' ' ')keycloak (allowed: $GITFAAS_ALLOWED_RANGES)"

TOKEN_URL="$KEYCLOAK/realms/gitfaas/protocol/openid-connect/token"
TOKEN=$(curl -sS -d grant_type=password -d client_id=gitfaas-cli -d username=alice -d password=gitfaas \
  "$TOKEN_URL" | jq -r '.access_token // empty')
[[ -n "$TOKEN" ]] || die "no token from $TOKEN_URL"
iss=$(jwt_claims "$TOKEN" | jq -r .iss)
[[ "$iss" == http://keycloak:8180/realms/gitfaas ]] || die "token fetched from the host has iss=$iss, not the issuer the frontend trusts"
say "token for alice from Keycloak at $KEYCLOAK (iss $iss, roles $(jwt_claims "$TOKEN" | jq -c .realm_access.roles))"

code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$API/v1/jobs" -H 'content-type: application/json' -d '{}')
[[ "$code" == 401 ]] || die "a submission without a token got HTTP $code, not 401"

run_job python '{"repo": "git://examples:9418/hello-python", "ref": "main",
  "input": {"name": "compose", "text": "to be or not to be"}}' \
  '{"greeting": "hello, compose!", "words": 6, "top": [["to", 2], ["be", 2], ["or", 1]]}'
run_job command '{"repo": "git://examples:9418/shout-command", "input": "hello compose"}' \
  '{"shouted": "HELLO COMPOSE"}'
run_dependency_job
# the broker's address is not allowed: the executor refuses to fetch from it
id=$(curl -sS -X POST "$API/v1/jobs" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"repo": "git://kafka:9092/x", "runtime": "command"}' | jq -r '.id // empty')
[[ -n "$id" ]] || die "internal-address job not accepted for the executor to judge"
result=$(curl -sS "$API/v1/jobs/$id/result?wait=60" -H "authorization: Bearer $TOKEN")
jq -e '.status == "rejected" and (.reason | test("private address"))' <<<"$result" >/dev/null \
  || die "a repository on the broker's address was not refused: $result"
say "internal address refused: $(jq -c '{status, reason}' <<<"$result")"

# metrics: the frontend on its API port, each executor replica and the observer on the host
# ports the compose file publishes them on
curl -fsS "$API/metrics" | grep -Eq '^gitfaas_jobs_submitted_total [1-9]' || die "the frontend's /metrics counts no submitted job"
finished=0
for c in $(faas ps -q executor); do
  address=$(docker port "$c" 9101/tcp | head -1)
  [[ -n "$address" ]] || die "executor $c publishes no metrics port"
  metrics=$(curl -fsS "http://$address/metrics") || die "executor $c: no /metrics at $address"
  finished=$((finished + $(awk '/^gitfaas_jobs_finished_total\{/ {n += $2} END {print n + 0}' <<<"$metrics")))
done
((finished >= 3)) || die "the executors' /metrics count $finished finished jobs, not 3"
curl -fsS "http://127.0.0.1:${GITFAAS_OBSERVER_METRICS_PORT:-9102}/metrics" | grep -q '^gitfaas_observer_arrival_rate ' \
  || die "the observer's /metrics has no arrival rate"
say "metrics: frontend, executors ($finished jobs finished) and observer scraped"

# the prometheus profile: Prometheus scrapes every service with deploy/prometheus/prometheus.yml
# and loaded its alert rules
PROMETHEUS="http://127.0.0.1:$GITFAAS_PROMETHEUS_PORT"
up=
for _ in $(seq 60); do
  up=$(curl -fsS "$PROMETHEUS/api/v1/query" --data-urlencode 'query=up == 1' \
    | jq -r '[.data.result[].metric.job] | unique | join(" ")' 2>/dev/null || true)
  [[ "$up" == "gitfaas-executor gitfaas-frontend gitfaas-observer" ]] && break
  sleep 2
done
[[ "$up" == "gitfaas-executor gitfaas-frontend gitfaas-observer" ]] || die "Prometheus scrapes [$up], not every service"
rules=$(curl -fsS "$PROMETHEUS/api/v1/rules" | jq '[.data.groups[].rules[]] | length')
((rules > 0)) || die "Prometheus loaded no alert rule"
say "prometheus: every service up ($up), $rules alert rules loaded"
