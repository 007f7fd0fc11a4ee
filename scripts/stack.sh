#!/usr/bin/env bash
# The whole gitfaas stack on this machine, plus a demo job.
#   scripts/stack.sh up     install what is missing, start broker, Redis, git server,
#                           frontend and executor, submit the demo job, print its result
#   scripts/stack.sh down   stop everything this script started
#   scripts/stack.sh demo   submit the demo job again
#   scripts/stack.sh token [alice|bob|admin]   print an access token
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GIT_PORT="${GITFAAS_GIT_PORT:-9418}"
OIDC_PORT="${GITFAAS_OIDC_PORT:-9556}"
ISSUER="http://127.0.0.1:$OIDC_PORT"
FRONTEND_PORT="${GITFAAS_FRONTEND_PORT:-8080}"
API="http://127.0.0.1:$FRONTEND_PORT"
REPOS="$STATE_DIR/repos"
PROFILE="${GITFAAS_PROFILE:-dev}"
BIN_DIR="$CARGO_TARGET_DIR/$([[ "$PROFILE" == dev ]] && echo debug || echo "$PROFILE")"

publish_examples() {
  mkdir -p "$REPOS"
  for dir in "$ROOT"/examples/*/; do
    local name; name=$(basename "$dir")
    rm -rf "$REPOS/$name"
    cp -r "$dir" "$REPOS/$name"
    git -C "$REPOS/$name" init -q -b main
    git -C "$REPOS/$name" add -A
    git -C "$REPOS/$name" -c user.name=gitfaas -c user.email=gitfaas@localhost commit -qm "example $name"
  done
  start_bg git-daemon git daemon --reuseaddr --export-all --listen=127.0.0.1 --port="$GIT_PORT" \
    --base-path="$REPOS" "$REPOS"
}

# An access token for a demo user (alice; bob and admin also exist) from the local
# OpenID provider, with the client-credentials grant.
token() {
  curl -fsS -u "${1:-alice}:${1:-alice}-secret" -d grant_type=client_credentials -d resource=urn:gitfaas \
    -d scope=jobs "$ISSUER/token" | jq -r .access_token
}

demo() {
  say "getting a token for alice from the local OpenID provider"
  local response id token
  token=$(token alice)
  say "submitting the demo job (examples/hello-python)"
  response=$(curl -sS -X POST "$API/v1/jobs" -H "authorization: Bearer $token" -H 'content-type: application/json' -d "{
      \"repo\": \"git://127.0.0.1:$GIT_PORT/hello-python\", \"ref\": \"main\",
      \"input\": {\"name\": \"gitfaas\", \"text\": \"the quick brown fox jumps over the lazy dog. the end.\"}
    }")
  echo "$response" | jq .
  id=$(echo "$response" | jq -r .id)
  [[ "$id" != null ]] || die "job was not accepted"
  say "waiting for job $id"
  curl -sS -H "authorization: Bearer $token" "$API/v1/jobs/$id/result?wait=60" | tee "$RUN_DIR/demo-result.json" | jq .
  [[ "$(jq -r .status "$RUN_DIR/demo-result.json")" == succeeded ]] || die "demo job did not succeed"
}

up() {
  "$ROOT/scripts/infra.sh" up
  say "building gitfaas ($PROFILE profile)"
  (cd "$ROOT" && cargo build --profile "$PROFILE" --bins)
  publish_examples
  [[ -d "$ROOT/tests/oidc/node_modules/oidc-provider" ]] ||
    npm install --prefix "$ROOT/tests/oidc" --no-audit --no-fund --silent
  start_bg oidc node "$ROOT/tests/oidc/provider.mjs" --port="$OIDC_PORT"
  wait_for "OpenID provider" 30 curl -fsS "$ISSUER/.well-known/openid-configuration"
  export GITFAAS_CONFIG_DIR="$ROOT/config"
  export GITFAAS__FRONTEND__AUTH__MODE=oidc GITFAAS__FRONTEND__AUTH__ISSUER="$ISSUER" \
    GITFAAS__FRONTEND__AUTH__AUDIENCE=urn:gitfaas
  GITFAAS__FRONTEND__LISTEN="127.0.0.1:$FRONTEND_PORT" start_bg frontend "$BIN_DIR/gitfaas-frontend"
  GITFAAS__EXECUTOR__ID=executor-1 start_bg executor "$BIN_DIR/gitfaas-executor"
  wait_for "frontend readiness" 60 curl -fsS "$API/health/ready"
  say "gitfaas is up: $API (logs in $LOG_DIR)"
  demo
}

down() {
  for s in executor frontend oidc git-daemon; do stop_bg "$s"; done
  "$ROOT/scripts/infra.sh" down
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  demo) demo ;;
  token) token "${2:-alice}" ;;
  *) die "usage: $0 up|down|demo|token [user]" ;;
esac
