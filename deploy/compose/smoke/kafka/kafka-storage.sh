#!/bin/sh
# as in the Kafka distribution
exec java -Xmx256m -Dlog4j2.configurationFile=/opt/kafka/bin/log4j2-tools.yaml -cp '/opt/kafka/libs/*' kafka.tools.StorageTool "$@"
