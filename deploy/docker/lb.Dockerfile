# The load balancer in front of the frontends (deploy/compose/docker-compose.yml, service `lb`):
# Debian's HAProxy package with deploy/docker/haproxy.cfg. Context: deploy/docker.
#   docker build -f deploy/docker/lb.Dockerfile -t gitfaas/lb:0.1.0 deploy/docker
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends haproxy; \
    rm -rf /var/lib/apt/lists/*
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
RUN haproxy -c -f /etc/haproxy/haproxy.cfg
USER haproxy
EXPOSE 8080
# alive: HAProxy answers its own monitor URI (not the frontends' state)
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /lb/health HTTP/1.0\\r\\n\\r\\n' >&3 && read -r s <&3 && [[ $s == *' 200 '* ]]"]
CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
