#!/bin/sh
# as in the Kafka distribution: the broker with the given server.properties
exec java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile=/opt/kafka/bin/log4j2.yaml -cp '/opt/kafka/libs/*' kafka.Kafka "$@"
