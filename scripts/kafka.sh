#!/usr/bin/env bash
# Apache Kafka for the local stack: the jars from Maven Central (versions pinned in
# scripts/maven/pom.xml), one KRaft node in combined mode (broker + controller) on
# loopback, its log directories under the state directory so it keeps its data
# across restarts.
#   scripts/kafka.sh install            fetch the jars once per machine, print their directory
#   scripts/kafka.sh up | down | status the local broker
#   scripts/kafka.sh run NAME DIR PORT CONTROLLER_PORT [KEY=VALUE…]
#                                       a node in the foreground (what tests spawn)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$ROOT/scripts/maven/pom.xml"
KAFKA_PORT="${GITFAAS_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${GITFAAS_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_DIR="$STATE_DIR/kafka"

install() {
  local libs; libs=$(kafka_libs)
  # fetched again when the pinned set changes
  if ! kafka_installed; then
    say "fetching Apache Kafka $(pom_property kafka.version) jars from Maven Central (once per machine)"
    rm -rf "$libs" && mkdir -p "$libs"
    mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" \
      >"$LOG_DIR/mvn-kafka.log" 2>&1 || { tail -20 "$LOG_DIR/mvn-kafka.log"; die "fetching the kafka jars failed"; }
    pom_hash >"$libs/.complete"
  fi
  echo "$libs"
}

# server_properties DIR PORT CONTROLLER_PORT NODE_ID VOTERS [KEY=VALUE…]: a combined-mode node's
# configuration. Extra settings override the defaults (later keys win in a properties file).
server_properties() {
  local dir=$1 port=$2 controller_port=$3 node_id=$4 voters=$5; shift 5
  cat <<EOF
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  printf '%s\n' "$@"
}

# run DIR PORT CONTROLLER_PORT [NODE_ID VOTERS] [KEY=VALUE…]: formats the node's storage once
# and runs it in the foreground (exec), logging to stdout.
run() {
  local dir=$1 port=$2 controller_port=$3 node_id=1 voters
  shift 3
  voters="1@127.0.0.1:$controller_port"
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then node_id=$1 voters=$2; shift 2; fi
  local libs; libs=$(install)
  mkdir -p "$dir"
  server_properties "$dir" "$port" "$controller_port" "$node_id" "$voters" "$@" >"$dir/server.properties"
  cat >"$dir/log4j2.yaml" <<'EOF'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: WARN
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
EOF
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local cluster_id="${GITFAAS_KAFKA_CLUSTER_ID:-}"
    [[ -n "$cluster_id" ]] || cluster_id=$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)
    # GITFAAS_KAFKA_FORMAT_ARGS: more format options, e.g. --add-scram=… for SASL/SCRAM users
    # shellcheck disable=SC2086
    java -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
      --ignore-formatted ${GITFAAS_KAFKA_FORMAT_ARGS:-} >/dev/null
  fi
  exec java -Xms256m -Xmx${GITFAAS_KAFKA_HEAP:-768m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.yaml" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties"
}

up() {
  install >/dev/null
  start_bg kafka "$ROOT/scripts/kafka.sh" run "$KAFKA_DIR" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  # a broker with many partitions takes a while to load them (scripts/test.sh sweeps test topics)
  wait_for "kafka broker on :$KAFKA_PORT" 300 kafka_ready "$KAFKA_PORT"
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) stop_bg kafka ;;
  status) if is_running kafka; then echo "kafka: running"; else echo "kafka: stopped"; fi ;;
  run) shift; run "$@" ;;
  *) die "usage: $0 install|up|down|status|run DIR PORT CONTROLLER_PORT [NODE_ID VOTERS] [KEY=VALUE…]" ;;
esac
