# The package proxy dependency builds install python packages through (compose service
# `pypi-proxy`; scripts/proxies.sh runs the same on the host): devpi-server, whose root/pypi
# index is a caching mirror of the public index devpi ships with. Built locally, from
# Debian's python3 and devpi-server from its package index:
#   docker build -f deploy/docker/package-proxy-pypi.Dockerfile -t gitfaas/pypi-proxy deploy/docker
# The index for pip: http://HOST:3141/root/pypi/+simple/. root gets a random password on
# the first start that nobody is told, so nothing can change the mirror through the API.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG DEVPI_VERSION=6.20.3
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3 python3-venv; \
    rm -rf /var/lib/apt/lists/*; \
    python3 -m venv /opt/devpi; \
    /opt/devpi/bin/pip install --no-cache-dir --disable-pip-version-check "devpi-server==${DEVPI_VERSION}"; \
    useradd --system --home-dir /var/lib/devpi devpi; \
    install -d -o devpi -g devpi -m 0700 /var/lib/devpi
USER devpi
VOLUME /var/lib/devpi
EXPOSE 3141
CMD ["sh", "-c", "[ -f /var/lib/devpi/.nodeinfo ] || /opt/devpi/bin/devpi-init --serverdir /var/lib/devpi --root-passwd \"$(head -c 24 /dev/urandom | base64)\" && exec /opt/devpi/bin/devpi-server --serverdir /var/lib/devpi --host 0.0.0.0 --port 3141"]
HEALTHCHECK --interval=5s --timeout=3s --retries=30 \
    CMD ["/opt/devpi/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3141/+api', timeout=2)"]
