#!/bin/bash
# The broker, configured as the apache/kafka image configures it: every KAFKA_FOO_BAR variable
# becomes the server property foo.bar (`__` stands for `_`, `___` for `-`); the storage is
# formatted once with CLUSTER_ID (the image's default when unset).
set -euo pipefail
props=/opt/kafka/config/server.properties
: >"$props"
while IFS='=' read -r name value; do
  [[ "$name" == KAFKA_* && "$name" != KAFKA_HEAP_OPTS && "$name" != KAFKA_OPTS ]] || continue
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "$key" "$value" >>"$props"
done < <(env)
dirs=$(sed -n 's/^log\.dirs=//p' "$props")
if [[ ! -f "${dirs%%,*}/meta.properties" ]]; then
  java -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" \
    -c "$props" --ignore-formatted
fi
exec java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile=/opt/kafka/bin/log4j2.yaml -cp '/opt/kafka/libs/*' kafka.Kafka "$props"
