# Smoke test only (apache/kafka cannot be pulled here): a Kafka-protocol broker, tansu, from the
# binary scripts/setup.sh built on this machine. Context: a directory holding that binary.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY tansu /usr/local/bin/tansu
RUN useradd --system --uid 10002 --home-dir /var/lib/kafka --no-create-home --shell /usr/sbin/nologin tansu \
    && install -d -o tansu -g tansu /var/lib/kafka/data
USER tansu
# sqlite storage, in the kafka-data volume docker-compose.yml mounts here
WORKDIR /var/lib/kafka/data
EXPOSE 9092
ENTRYPOINT ["tansu"]
CMD ["broker", "--storage-engine", "sqlite://tansu.db", "--listener-url", "tcp://0.0.0.0:9092", \
     "--advertised-listener-url", "tcp://kafka:9092"]
