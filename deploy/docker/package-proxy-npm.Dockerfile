# The package proxy dependency builds install node packages through (compose service
# `npm-proxy`; scripts/proxies.sh runs the same on the host): verdaccio with the config it
# ships for containers (its uplink: the public registry), user registration turned off so
# that no one can publish. Built locally, from Debian's nodejs and npm and verdaccio from its
# registry (6.5.2: the last 6.x running on node 18, Debian bookworm's):
#   docker build -f deploy/docker/package-proxy-npm.Dockerfile -t gitfaas/npm-proxy deploy/docker
# The registry for npm: http://HOST:4873/.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG VERDACCIO_VERSION=6.5.2
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends nodejs npm; \
    npm install --global --no-audit --no-fund --omit=dev "verdaccio@${VERDACCIO_VERSION}"; \
    npm cache clean --force; \
    apt-get purge -y npm; apt-get autoremove -y; \
    rm -rf /var/lib/apt/lists/* /root/.npm; \
    shipped=$(find /usr/local/lib/node_modules/verdaccio -path '*/@verdaccio/config/build/conf/docker.yaml' | head -1); \
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
