#!/bin/bash
# A gitfaas Kafka node on Kumori (mounted by kafka/component.cue at /etc/gitfaas/kafka-start.sh;
# run instead of the apache/kafka image's own start). Every instance of the `kafka` role is a
# broker and a controller (KRaft, combined mode). The instances find each other through the
# role's duplex channel `peer`, which a complete (`full`) connector joins to itself: its DNS
# name ($PEERS, 0.peer) answers with one address per instance.
#
#   node id      1 + the rank of this instance's address among the $REPLICAS addresses $PEERS
#                answers (sorted numerically), taken at the first start, when the data volume
#                is empty, and kept in the volume's meta.properties after that
#   quorum       formatted once with the $REPLICAS voters `<id>@<address>:$CONTROLLER_PORT:<dir>`
#                (each voter's directory id derived from its node id), so that all instances
#                agree without talking; later starts find the quorum through
#                controller.quorum.bootstrap.servers = every current address of $PEERS
#                (dynamic quorum, KIP-853: a voter that comes back on a new address updates it)
#   advertised   this instance's own address on the broker port — clients reach every broker
#                through their full connector (0.kafkaclient answers every instance) — and on
#                the controller port: the endpoint the other voters record for it
set -euo pipefail
: "${PEERS:?}" "${REPLICAS:?}" "${MIN_INSYNC_REPLICAS:?}" "${CLUSTER_ID:?}" "${BROKER_PORT:?}" "${CONTROLLER_PORT:?}"
DATA=/var/lib/kafka/data/logs
CONFIG=/var/lib/kafka/data/server.properties
KAFKA=/opt/kafka/bin

addresses() { # every IPv4 address of $1, one a line, numerically sorted
  { getent ahostsv4 "$1" 2>/dev/null || nslookup "$1" 2>/dev/null | sed -n '/^Name:/,$s/^Address[^:]*: *//p'; } |
    awk '{print $1}' | grep -E '^[0-9]+(\.[0-9]+){3}$' | sort -u -t. -k1,1n -k2,2n -k3,3n -k4,4n
}
own=$(hostname -i | awk '{print $1}')
peers=
for _ in $(seq 300); do # the other instances may start later (5 minutes)
  peers=$(addresses "$PEERS")
  [[ $(grep -c . <<<"$peers") -ge $REPLICAS ]] && grep -qx "$own" <<<"$peers" && break
  sleep 1
done
[[ $(grep -c . <<<"$peers") -ge $REPLICAS ]] || { echo "kafka-start: $PEERS answers $(tr '\n' ' ' <<<"$peers")— not $REPLICAS instances" >&2; exit 1; }

directory_id() { printf 'gitfaas-kraft-%02d' "$1" | base64 | tr '+/' '-_' | tr -d '='; }
if [[ -f "$DATA/meta.properties" ]]; then
  id=$(sed -n 's/^node\.id=//p' "$DATA/meta.properties")
else
  rank=$(grep -nx "$own" <<<"$peers" | cut -d: -f1)
  [[ -n "$rank" && $rank -le $REPLICAS ]] || { echo "kafka-start: $own is not among the first $REPLICAS of $PEERS" >&2; exit 1; }
  id=$rank
fi
bootstrap=$(head -n "$REPLICAS" <<<"$peers" | sed "s/\$/:$CONTROLLER_PORT/" | paste -sd,)

cat >"$CONFIG" <<PROPERTIES
node.id=$id
process.roles=broker,controller
listeners=PLAINTEXT://:$BROKER_PORT,CONTROLLER://:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$own:$BROKER_PORT,CONTROLLER://$own:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.quorum.bootstrap.servers=$bootstrap
log.dirs=$DATA
num.partitions=${PARTITIONS:-4}
default.replication.factor=$REPLICAS
min.insync.replicas=$MIN_INSYNC_REPLICAS
offsets.topic.replication.factor=$REPLICAS
transaction.state.log.replication.factor=$REPLICAS
transaction.state.log.min.isr=$MIN_INSYNC_REPLICAS
broker.session.timeout.ms=6000
auto.create.topics.enable=false
PROPERTIES

if [[ ! -f "$DATA/meta.properties" ]]; then
  voters=
  n=0
  while read -r address; do
    n=$((n + 1))
    voters+="${voters:+,}$n@$address:$CONTROLLER_PORT:$(directory_id "$n")"
  done < <(head -n "$REPLICAS" <<<"$peers")
  echo "kafka-start: formatting node $id of $REPLICAS (voters $voters)"
  # the directory id this node's voter entry names must be its own
  "$KAFKA/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config "$CONFIG" \
    --initial-controllers "$voters" --ignore-formatted
fi
echo "kafka-start: node $id at $own, quorum via $bootstrap"
exec "$KAFKA/kafka-server-start.sh" "$CONFIG"
