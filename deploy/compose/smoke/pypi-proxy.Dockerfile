# Smoke test only (this machine's docker builds reach no package index): the pypi-proxy service
# of docker-compose.yml (deploy/docker/package-proxy-pypi.Dockerfile), with devpi-server installed
# from the wheelhouse scripts/proxies.sh installed the host's copy from — the same version, the
# same user, volume, command and health check.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY wheels /tmp/wheels
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3 python3-venv; \
    rm -rf /var/lib/apt/lists/*; \
    python3 -m venv /opt/devpi; \
    /opt/devpi/bin/pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /tmp/wheels devpi-server; \
    rm -rf /tmp/wheels; \
    useradd --system --home-dir /var/lib/devpi devpi; \
    install -d -o devpi -g devpi -m 0700 /var/lib/devpi
USER devpi
VOLUME /var/lib/devpi
EXPOSE 3141
CMD ["sh", "-c", "[ -f /var/lib/devpi/.nodeinfo ] || /opt/devpi/bin/devpi-init --serverdir /var/lib/devpi --root-passwd \"$(head -c 24 /dev/urandom | base64)\" && exec /opt/devpi/bin/devpi-server --serverdir /var/lib/devpi --host 0.0.0.0 --port 3141"]
HEALTHCHECK --interval=5s --timeout=3s --retries=30 \
    CMD ["/opt/devpi/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3141/+api', timeout=2)"]
