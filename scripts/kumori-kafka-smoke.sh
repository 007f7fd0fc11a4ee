#!/usr/bin/env bash
# The Kumori kafka role's start, run here (no Kumori cluster, no kam): three containers of the
# Kafka stand-in image (scripts/compose-smoke.sh builds gitfaas-smoke/kafka:local) on a network
# of their own where the name 0.peer (and 0.kafkaclient) answers all three addresses — what
# a full connector's DNS name does on Kumori. Each runs the start script and the environment
# of the kafka role exactly as the rendered deployment has them ($STATE_DIR/kumori/faas.json,
# written by scripts/cue-vet.sh; only the heap is made smaller). Checks:
#   1. the three derive distinct node ids 1, 2, 3 (rank of their address) and form one quorum
#      whose voters are their addresses;
#   2. a topic created with the broker defaults (as the services create theirs) has three
#      copies, and every node runs with min.insync.replicas=2;
#   3. node 2 restarted on a new address keeps its id, the quorum records the new address and
#      its partitions are fully in sync again.
# Everything it creates is removed at the end, also on failure.
#   scripts/kumori-kafka-smoke.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=gitfaas-smoke/kafka:local
NET=gitfaas-kumori-kafka
RENDERED="$STATE_DIR/kumori/faas.json"
BIN="$ROOT/deploy/compose/smoke/kafka"
WORK="$STATE_DIR/kumori-kafka-smoke"
NODES=(a b c)

docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE missing: run scripts/compose-smoke.sh first (it builds it)"
[[ -s "$RENDERED" ]] || die "$RENDERED missing: run scripts/cue-vet.sh first (it renders the deployment)"
exec 9>"$RUN_DIR/kumori-kafka-smoke.lock"
flock -n 9 || die "another kumori-kafka smoke is running"

name() { echo "gitfaas-kumori-kafka-$1"; }
teardown() {
  local n
  for n in "${NODES[@]}" filler; do docker rm -f "$(name "$n")" >/dev/null 2>&1 || true; done
  for n in "${NODES[@]}"; do docker volume rm "$(name "$n")" >/dev/null 2>&1 || true; done
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((rc != 0)); then
    for n in "${NODES[@]}"; do docker logs "$(name "$n")" 2>&1 | grep -E 'kafka-start|ERROR' | tail -5 | sed "s/^/  $n: /" >&2 || true; done
  fi
  teardown
  if ((rc == 0)); then say "kumori kafka smoke passed in ${SECONDS}s"; else say "kumori kafka smoke FAILED (${SECONDS}s)"; fi
  exit "$rc"
}

# the kafka role as rendered: its container's environment and the script it mounts
role='.artifact.description.role.kafka.artifact.description.code.kafka'
script=$(jq -r "$role.mapping.filesystem[\"/etc/gitfaas/kafka-start.sh\"].data.value" "$RENDERED")
peers=$(jq -r "$role.mapping.env.PEERS.value" "$RENDERED")
replicas=$(jq -r "$role.mapping.env.REPLICAS.value" "$RENDERED")
min_isr=$(jq -r "$role.mapping.env.MIN_INSYNC_REPLICAS.value" "$RENDERED")
[[ "$replicas" == "${#NODES[@]}" ]] || die "the rendered deployment has $replicas Kafka replicas; this test runs ${#NODES[@]}"
mapfile -t env_args < <(jq -r "$role.mapping.env | to_entries[] | select(.key != \"KAFKA_HEAP_OPTS\") | \"-e\", \"\(.key)=\(.value.value)\"" "$RENDERED")

teardown
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK"
printf '%s\n' "$script" >"$WORK/kafka-start.sh"
docker network create "$NET" >/dev/null

start() { # start NODE — one instance of the role
  docker run -d --name "$(name "$1")" --network "$NET" --network-alias "$peers" --network-alias 0.kafkaclient \
    "${env_args[@]}" -e KAFKA_HEAP_OPTS="-Xms128m -Xmx256m" \
    -v "$WORK/kafka-start.sh:/etc/gitfaas/kafka-start.sh:ro" \
    -v "$BIN/kafka-storage.sh:/opt/kafka/bin/kafka-storage.sh:ro" \
    -v "$BIN/kafka-server-start.sh:/opt/kafka/bin/kafka-server-start.sh:ro" \
    -v "$BIN/kafka-metadata-quorum.sh:/opt/kafka/bin/kafka-metadata-quorum.sh:ro" \
    -v "$(name "$1"):/var/lib/kafka/data" --entrypoint /bin/bash "$IMAGE" /etc/gitfaas/kafka-start.sh >/dev/null
}
address() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$(name "$1")"; }
node_id() { docker logs "$(name "$1")" 2>&1 | sed -n 's/^kafka-start: node \([0-9]*\) at .*/\1/p' | tail -1; }
kexec() { docker exec "$(name a)" "$@"; }
voters() { kexec /opt/kafka/bin/kafka-metadata-quorum.sh --bootstrap-server 0.kafkaclient:9092 describe --status 2>/dev/null | sed -n 's/^CurrentVoters: *//p'; }
# expect_voters — the quorum's voters are the nodes' ids at their current addresses
expect_voters() {
  local n want=() got
  for n in "${NODES[@]}"; do want+=("$(node_id "$n")@$(address "$n")"); done
  got=$(voters | jq -r '.[] | "\(.id)@\(.endpoints[0] | sub("^CONTROLLER://"; "") | sub(":[0-9]+$"; ""))"' 2>/dev/null | sort | tr '\n' ' ')
  [[ "$got" == "$(printf '%s\n' "${want[@]}" | sort | tr '\n' ' ')" ]]
}
in_sync() { # in_sync TOPIC — every partition has all three replicas in sync
  kexec /opt/kafka/bin/kafka-topics.sh --bootstrap-server 0.kafkaclient:9092 --describe --topic "$1" 2>/dev/null |
    awk -v r="$replicas" '/Partition:/ {for (i = 1; i < NF; i++) if ($i == "Isr:") {n = split($(i + 1), a, ","); if (n != r) bad = 1}; seen = 1}
      END {exit !(seen && !bad)}'
}

say "starting three instances of the kafka role ($peers answers all of them)"
for n in "${NODES[@]}"; do start "$n"; done
wait_for "a quorum of three voters at the instances' addresses" 120 expect_voters
ids=$(for n in "${NODES[@]}"; do node_id "$n"; done | sort | tr '\n' ' ')
[[ "$ids" == "1 2 3 " ]] || die "node ids $ids, not 1 2 3"
for n in "${NODES[@]}"; do
  rank=$(for m in "${NODES[@]}"; do address "$m"; done | sort -t. -k1,1n -k2,2n -k3,3n -k4,4n | grep -nx "$(address "$n")" | cut -d: -f1)
  [[ "$(node_id "$n")" == "$rank" ]] || die "$n at $(address "$n") took id $(node_id "$n"), not its rank $rank"
done
say "node ids by address rank: $(for n in "${NODES[@]}"; do printf '%s@%s ' "$(node_id "$n")" "$(address "$n")"; done)"

wait_for "a topic created with the broker defaults" 60 \
  kexec /opt/kafka/bin/kafka-topics.sh --bootstrap-server 0.kafkaclient:9092 --create --if-not-exists --topic ha.check --partitions 3
rf=$(kexec /opt/kafka/bin/kafka-topics.sh --bootstrap-server 0.kafkaclient:9092 --describe --topic ha.check | sed -n 's/.*ReplicationFactor: \([0-9]*\).*/\1/p' | head -1)
[[ "$rf" == "$replicas" ]] || die "a topic with the broker defaults has $rf copies, not $replicas"
for n in "${NODES[@]}"; do
  docker exec "$(name "$n")" grep -qx "min.insync.replicas=$min_isr" /var/lib/kafka/data/server.properties || die "$n does not run with min.insync.replicas=$min_isr"
done
wait_for "every partition in sync on three nodes" 60 in_sync ha.check
say "topic with the broker defaults: $rf copies, min.insync.replicas=$min_isr on every node"

old=$(address b) id=$(node_id b)
docker stop -t 10 "$(name b)" >/dev/null
# the freed address goes to another container, so b comes back on a new one
docker run -d --name "$(name filler)" --network "$NET" --entrypoint sleep "$IMAGE" 600 >/dev/null
docker start "$(name b)" >/dev/null
[[ "$(address b)" != "$old" ]] || die "b came back on its old address $old"
wait_for "node b back in the quorum at its new address" 120 expect_voters
[[ "$(node_id b)" == "$id" ]] || die "b took id $(node_id b) after the restart, not $id"
wait_for "b's partitions in sync again" 90 in_sync ha.check
say "node $id restarted on $(address b) (was $old): same id, the quorum has its new address, partitions in sync"
