#!/usr/bin/env bash
# The whole gitfaas stack on this machine, plus a demo job.
#   scripts/stack.sh up     install what is missing, start broker, Redis, Keycloak, git server,
#                           the package proxies (scripts/proxies.sh: devpi for pip, verdaccio
#                           for npm, on loopback), frontend and executor (its package index and
#                           registry: those proxies), submit the demo jobs, print their results
#   scripts/stack.sh down   stop everything this script started
#   scripts/stack.sh demo   submit the demo jobs again
#   scripts/stack.sh token [alice|bob|admin]   print an access token
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GIT_PORT="${GITFAAS_GIT_PORT:-9418}"
# Keycloak (scripts/keycloak.sh) with the realm of deploy/compose/keycloak/gitfaas-realm.json
ISSUER="http://127.0.0.1:${GITFAAS_KEYCLOAK_PORT:-8180}/realms/gitfaas"
DEMO_PASSWORD="${GITFAAS_DEMO_PASSWORD:-gitfaas}"
FRONTEND_PORT="${GITFAAS_FRONTEND_PORT:-8080}"
API="http://127.0.0.1:$FRONTEND_PORT"
REPOS="$STATE_DIR/repos"
PROFILE="${GITFAAS_PROFILE:-dev}"
BIN_DIR="$(bin_dir "$PROFILE")"

# build_wasm DIR: a Go example for the wasm runtime (a go.mod beside `runtime = "wasm"`) built
# into the main.wasm its manifest names — the module is built here, never committed
build_wasm() {
  [[ -f "$1/go.mod" ]] && grep -q '^runtime = "wasm"' "$1/gitfaas.toml" 2>/dev/null || return 0
  if ! command -v go >/dev/null; then
    say "go not found: $(basename "$1") is published without its main.wasm (its jobs are rejected)"
    return 0
  fi
  (cd "$1" && GOOS=wasip1 GOARCH=wasm go build -o main.wasm .) || die "building $(basename "$1") for wasm failed"
}

publish_examples() {
  mkdir -p "$REPOS"
  for dir in "$ROOT"/examples/*/; do
    local name; name=$(basename "$dir")
    rm -rf "$REPOS/$name"
    cp -r "$dir" "$REPOS/$name"
    build_wasm "$REPOS/$name"
    git -C "$REPOS/$name" init -q -b main
    git -C "$REPOS/$name" add -A
    git -C "$REPOS/$name" -c user.name=gitfaas -c user.email=gitfaas@localhost commit -qm "example $name"
  done
  start_bg git-daemon git daemon --reuseaddr --export-all --listen=127.0.0.1 --port="$GIT_PORT" \
    --base-path="$REPOS" "$REPOS"
}

# An access token for a demo user of the realm (alice; bob and admin also exist): the
# password grant with the command line client.
token() {
  curl -fsS -d grant_type=password -d client_id=gitfaas-cli -d username="${1:-alice}" \
    --data-urlencode password="$DEMO_PASSWORD" "$ISSUER/protocol/openid-connect/token" | jq -r .access_token
}

# demo_job NAME BODY — submit a job as alice, wait for its result, fail unless it succeeded.
demo_job() {
  local name="$1" body="$2" response id result
  say "submitting the demo job $name"
  response=$(curl -sS -X POST "$API/v1/jobs" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$body")
  echo "$response" | jq .
  id=$(echo "$response" | jq -r .id)
  [[ "$id" != null ]] || die "job was not accepted"
  say "waiting for job $id"
  result="$RUN_DIR/demo-result-$name.json"
  # (a first dependency build downloads through the proxies: up to five waits of a minute)
  for _ in 1 2 3 4 5; do
    [[ "$(curl -sS -o "$result" -w '%{http_code}' -H "authorization: Bearer $TOKEN" \
      "$API/v1/jobs/$id/result?wait=60")" == 200 ]] && break
  done
  jq . "$result"
  [[ "$(jq -r .status "$result")" == succeeded ]] || die "demo job $name did not succeed"
}

demo() {
  say "getting a token for alice from Keycloak"
  TOKEN=$(token alice)
  demo_job hello-python "{\"repo\": \"git://127.0.0.1:$GIT_PORT/hello-python\", \"ref\": \"main\",
      \"input\": {\"name\": \"gitfaas\", \"text\": \"the quick brown fox jumps over the lazy dog. the end.\"}}"
  # third-party packages: the executor installs them from the package proxies (a first run
  # builds the layer through them; later runs reuse it)
  demo_job deps-python "{\"repo\": \"git://127.0.0.1:$GIT_PORT/deps-python\",
      \"input\": {\"headers\": [\"runtime\", \"installer\"], \"rows\": [[\"python\", \"pip\"], [\"node\", \"npm\"]]}}"
  demo_job deps-node "{\"repo\": \"git://127.0.0.1:$GIT_PORT/deps-node\", \"input\": {\"millis\": [60000, 7200000]}}"
}

up() {
  "$ROOT/scripts/infra.sh" up
  "$ROOT/scripts/proxies.sh" up
  say "building gitfaas ($PROFILE profile)"
  (cd "$ROOT" && cargo build --profile "$PROFILE" --bins)
  publish_examples
  # the web app signs in at Keycloak: the realm's gitfaas-web client redirects to this URL
  GITFAAS_WEB_URL="$API" "$ROOT/scripts/keycloak.sh" up
  export GITFAAS_CONFIG_DIR="$ROOT/config"
  export GITFAAS__FRONTEND__AUTH__MODE=oidc GITFAAS__FRONTEND__AUTH__ISSUER="$ISSUER" \
    GITFAAS__FRONTEND__AUTH__AUDIENCE=gitfaas GITFAAS__FRONTEND__AUTH__ROLES_CLAIM=realm_access.roles \
    GITFAAS__FRONTEND__WEB__CLIENT_ID=gitfaas-web
  # internal addresses are refused by default; this stack's git server is on loopback, so it
  # opts in to loopback explicitly (a deployment allows only the ranges of its own git servers)
  export GITFAAS__FRONTEND__POLICY__ALLOWED_RANGES=127.0.0.0/8,::1 GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES=127.0.0.0/8,::1
  # dependency builds install from the package proxies (executor.dependencies.pip_index and
  # npm_registry): a build reaches them through the executor's own proxy, nothing else
  local setting
  while read -r setting; do export "${setting?}"; done < <("$ROOT/scripts/proxies.sh" env)
  GITFAAS__FRONTEND__LISTEN="127.0.0.1:$FRONTEND_PORT" start_bg frontend "$BIN_DIR/gitfaas-frontend"
  GITFAAS__EXECUTOR__ID=executor-1 start_bg executor "$BIN_DIR/gitfaas-executor"
  start_bg observer "$BIN_DIR/gitfaas-observer"
  wait_for "frontend readiness" 60 curl -fsS "$API/health/ready"
  wait_for "executor readiness" 60 curl -fsS http://127.0.0.1:9101/health/ready
  wait_for "observer readiness" 60 curl -fsS http://127.0.0.1:9102/health/ready
  say "gitfaas is up: $API (logs in $LOG_DIR)"
  say "metrics: $API/metrics (frontend), http://127.0.0.1:9101/metrics (executor-1)," \
    "http://127.0.0.1:9102/metrics (observer); the scaler (127.0.0.1:9103) starts executors" \
    "itself and is not part of this stack"
  demo
}

down() {
  for s in observer executor frontend oidc git-daemon; do stop_bg "$s"; done   # oidc: what older versions started
  "$ROOT/scripts/proxies.sh" down
  "$ROOT/scripts/infra.sh" down
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  demo) demo ;;
  token) token "${2:-alice}" ;;
  *) die "usage: $0 up|down|demo|token [user]" ;;
esac
