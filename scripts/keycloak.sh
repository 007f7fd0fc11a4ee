#!/usr/bin/env bash
# Keycloak for the local stack and the tests: the Quarkus distribution from Maven Central
# (version pinned as keycloak.version in scripts/maven/pom.xml), in dev mode on loopback,
# with the project's realm (deploy/compose/keycloak/gitfaas-realm.json, the one compose and
# Kumori import too). Its H2 data lives in the distribution's data/ directory under the state
# directory, so users, keys and sessions survive a restart; the realm is imported again (the
# data wiped) only when the realm file or the values substituted into it change.
#   scripts/keycloak.sh install            fetch and unpack once per machine, print its directory
#   scripts/keycloak.sh up | down | status the local Keycloak on 127.0.0.1:8180
#   scripts/keycloak.sh issuer             print the realm's issuer URL
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$ROOT/scripts/maven/pom.xml"
REALM_FILE="$ROOT/deploy/compose/keycloak/gitfaas-realm.json"
KEYCLOAK_PORT="${GITFAAS_KEYCLOAK_PORT:-8180}"
KEYCLOAK_URL="http://127.0.0.1:$KEYCLOAK_PORT"
ISSUER="$KEYCLOAK_URL/realms/gitfaas"
# what the realm file's ${…} placeholders become at import
export GITFAAS_WEB_URL="${GITFAAS_WEB_URL:-http://127.0.0.1:8080}"
export GITFAAS_DEMO_PASSWORD="${GITFAAS_DEMO_PASSWORD:-gitfaas}"
export GITFAAS_SERVICE_CLIENT_SECRET="${GITFAAS_SERVICE_CLIENT_SECRET:-gitfaas-service-secret}"

install() {
  local home version; home=$(keycloak_home) version=$(pom_property keycloak.version)
  if ! keycloak_installed; then
    say "fetching Keycloak $version from Maven Central (once per machine)"
    local download; download=$(mktemp -d)
    mvn -q -B -f "$POM" dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$version:tar.gz" \
      -DoutputDirectory="$download" >"$LOG_DIR/mvn-keycloak.log" 2>&1 ||
      { tail -20 "$LOG_DIR/mvn-keycloak.log"; rm -rf "$download"; die "fetching keycloak failed"; }
    rm -rf "$home" && mkdir -p "$(dirname "$home")"
    tar -xzf "$download/keycloak-quarkus-dist-$version.tar.gz" -C "$(dirname "$home")"
    rm -rf "$download"
    [[ -x "$home/bin/kc.sh" ]] || die "the keycloak archive has no keycloak-$version/bin/kc.sh"
    touch "$home/.complete"
  fi
  echo "$home"
}

# The realm as imported: the file and the values substituted into it.
realm_hash() {
  { cat "$REALM_FILE"; echo "$GITFAAS_WEB_URL $GITFAAS_DEMO_PASSWORD $GITFAAS_SERVICE_CLIENT_SECRET"; } |
    sha256sum | cut -d' ' -f1
}

ready() { curl -fsS "$ISSUER/.well-known/openid-configuration" >/dev/null; }

up() {
  [[ -x "$KEYCLOAK_JAVA_HOME/bin/java" ]] || die "no JDK at $KEYCLOAK_JAVA_HOME (set GITFAAS_KEYCLOAK_JAVA_HOME to a JDK 21 or 25)"
  local home hash; home=$(install) hash=$(realm_hash)
  if [[ "$(cat "$home/data/.realm-sha256" 2>/dev/null)" != "$hash" ]]; then
    # a changed realm: start from an empty database so that --import-realm imports it
    say "keycloak: importing the gitfaas realm afresh (the realm file or its values changed)"
    stop_bg keycloak
    rm -rf "$home/data/h2" && mkdir -p "$home/data/import"
    cp "$REALM_FILE" "$home/data/import/gitfaas-realm.json"
    echo "$hash" >"$home/data/.realm-sha256"
  fi
  JAVA_HOME="$KEYCLOAK_JAVA_HOME" JAVA_OPTS_KC_HEAP="-Xms64m -Xmx${GITFAAS_KEYCLOAK_HEAP:-512m}" \
    KC_BOOTSTRAP_ADMIN_USERNAME="${GITFAAS_KEYCLOAK_ADMIN:-admin}" \
    KC_BOOTSTRAP_ADMIN_PASSWORD="${GITFAAS_KEYCLOAK_ADMIN_PASSWORD:-admin}" \
    start_bg keycloak "$home/bin/kc.sh" start-dev --http-host=127.0.0.1 --http-port="$KEYCLOAK_PORT" \
    --hostname="$KEYCLOAK_URL" --import-realm
  wait_for "keycloak realm gitfaas on :$KEYCLOAK_PORT (log: $LOG_DIR/keycloak.log)" 180 ready
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) stop_bg keycloak ;;
  status) if is_running keycloak && ready; then echo "keycloak: running ($ISSUER)"; else echo "keycloak: stopped"; fi ;;
  issuer) echo "$ISSUER" ;;
  *) die "usage: $0 install|up|down|status|issuer" ;;
esac
