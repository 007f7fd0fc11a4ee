# Smoke test only (apache/kafka cannot be pulled here): Apache Kafka from the same jars the local
# stack runs (scripts/maven/pom.xml), laid out and configured like the apache/kafka image —
# /opt/kafka/bin/*.sh, KAFKA_* environment variables turned into server properties, storage
# formatted on first start — so docker-compose.yml's kafka and kafka-init services run unchanged.
# Context: a directory with libs/ (the jars) and bin/ (deploy/compose/smoke/kafka/).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends openjdk-17-jre-headless; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 1000 --home-dir /opt/kafka --no-create-home --shell /usr/sbin/nologin appuser; \
    install -d -o appuser -g appuser /var/lib/kafka/data /opt/kafka/config
COPY libs/ /opt/kafka/libs/
COPY bin/ /opt/kafka/bin/
USER appuser
EXPOSE 9092
ENTRYPOINT ["/opt/kafka/bin/run.sh"]
