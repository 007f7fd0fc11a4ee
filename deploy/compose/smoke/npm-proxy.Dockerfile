# Smoke test only (this machine's docker builds reach no package registry): the npm-proxy service
# of docker-compose.yml (deploy/docker/package-proxy-npm.Dockerfile), with the verdaccio package
# scripts/proxies.sh installed on the host (pure JavaScript) — the same version, config, user,
# volume, command and health check.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY node_modules /opt/verdaccio/node_modules
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends nodejs; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s /opt/verdaccio/node_modules/verdaccio/bin/verdaccio /usr/local/bin/verdaccio; \
    shipped=$(find /opt/verdaccio/node_modules -path '*/@verdaccio/config/build/conf/docker.yaml' | head -1); \
    mkdir -p /verdaccio/conf; \
    sed 's|^\( *\)file: /verdaccio/storage/htpasswd$|&\n\1max_users: -1|' "$shipped" >/verdaccio/conf/config.yaml; \
    grep -q 'max_users: -1' /verdaccio/conf/config.yaml; \
    useradd --system --home-dir /verdaccio verdaccio; \
    install -d -o verdaccio -g verdaccio /verdaccio/storage /verdaccio/plugins
USER verdaccio
VOLUME /verdaccio/storage
EXPOSE 4873
CMD ["verdaccio", "--config", "/verdaccio/conf/config.yaml", "--listen", "0.0.0.0:4873"]
HEALTHCHECK --interval=5s --timeout=3s --retries=30 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:4873/-/ping').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
