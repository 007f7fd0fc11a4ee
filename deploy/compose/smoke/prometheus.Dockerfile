# Smoke test only (prom/prometheus cannot be pulled here): Debian's prometheus, laid out like
# the official image — the binary as the entrypoint, run as nobody, its data in /prometheus —
# so that docker-compose.yml's command, volumes and health check run unchanged.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends prometheus wget; \
    rm -rf /var/lib/apt/lists/*; \
    install -d -o nobody -g nogroup /prometheus /etc/prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
