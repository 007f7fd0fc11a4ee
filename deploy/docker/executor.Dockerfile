# The gitfaas executor image. Build context: the repository root.
#   docker build -f deploy/docker/executor.Dockerfile -t gitfaas/executor:0.1.0 .
# Stages: runtime (the image minus the binary) → prebuilt (binaries built on the host, staged
# by deploy/docker/build-local.sh; `--target prebuilt`) or build (cargo build --release in
# rust:1-bookworm) → release (the default, last stage). BuildKit skips the stages a target does
# not need; the classic builder runs them in file order, which is why prebuilt comes first.
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUNTIME_IMAGE} AS runtime
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 gitfaas; \
    useradd --system --uid 10001 --gid gitfaas --home-dir /var/lib/gitfaas --no-create-home \
        --shell /usr/sbin/nologin gitfaas; \
    install -d -o gitfaas -g gitfaas -m 0755 /var/lib/gitfaas
COPY config/ /etc/gitfaas/
COPY deploy/docker/healthcheck.sh /usr/local/bin/gitfaas-healthcheck
ENV GITFAAS_CONFIG_DIR=/etc/gitfaas
WORKDIR /var/lib/gitfaas
RUN install -d -o gitfaas -g gitfaas -m 0755 /var/lib/gitfaas/work /var/lib/gitfaas/git-cache
COPY deploy/docker/executor-entrypoint.sh /usr/local/bin/gitfaas-entrypoint
# No USER: the entrypoint starts as root only to join the Docker socket's group and to own the
# work directory, then runs the executor as `gitfaas` (see executor-entrypoint.sh).
# Mount the engine's socket and the work directory at the same path as on the host:
#   -v /var/run/docker.sock:/var/run/docker.sock -v /tmp/gitfaas-work:/tmp/gitfaas-work
#   -e GITFAAS__EXECUTOR__WORK_DIR=/tmp/gitfaas-work
# Give it more than executor.shutdown_grace_secs (60) to stop: `docker stop -t 75`.
STOPSIGNAL SIGTERM
# no HTTP endpoint: alive and connected to the broker
# metrics and health (/metrics, /health/live, /health/ready) on every interface of the container
ENV GITFAAS__EXECUTOR__METRICS_LISTEN=0.0.0.0:9101
EXPOSE 9101
# readiness: the consumer has partitions, or the broker answers
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["gitfaas-healthcheck", "http", "/health/ready", "GITFAAS__EXECUTOR__METRICS_LISTEN"]
ENTRYPOINT ["gitfaas-entrypoint"]
CMD ["gitfaas-executor"]
# gitfaas-scaler is in this image too, next to the executor it starts as processes on its own
# machine (`gitfaas-scaler` as the command, GITFAAS__SCALER__EXECUTOR_BIN=/usr/local/bin/gitfaas-executor);
# compose does not run it (there: `docker compose up --scale executor=N`).

FROM runtime AS prebuilt
# in the repository this directory holds only a .gitignore; build-local.sh fills a copy of it
COPY deploy/docker/prebuilt/ /usr/local/bin/
# the dependency installers (pip's wheel, npm's package): build-local.sh stages the host's
# (scripts/setup.sh fetched them); the entrypoint puts them where dependency builds mount them
COPY deploy/docker/deps-tools/ /opt/gitfaas/deps-tools/

# The dependency installers of the public build, from the registries pip and npm ship with:
# pip's wheel as pip.whl, npm's package unpacked as npm/ (the layout of scripts/setup.sh).
FROM ${RUNTIME_IMAGE} AS tools
ARG PIP_VERSION=24.3.1
ARG NPM_VERSION=10.9.2
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates python3-pip npm; \
    mkdir -p /out /tmp/tools; cd /tmp/tools; \
    pip download -q --no-deps --only-binary=:all: -d pip "pip==${PIP_VERSION}"; \
    mv pip/pip-*.whl /out/pip.whl; \
    npm pack -q "npm@${NPM_VERSION}" >/dev/null; \
    mkdir npm; tar -C npm -xzf npm-*.tgz; mv npm/package /out/npm; \
    chmod -R a+rX /out

FROM ${RUST_IMAGE} AS build
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends cmake pkg-config libssl-dev libcurl4-openssl-dev \
        zlib1g-dev libsasl2-dev; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# the same command in every service Dockerfile: one cached build serves all three images
RUN cargo build --release --locked --bins \
    && install -D -t /out target/release/gitfaas-frontend target/release/gitfaas-executor \
        target/release/gitfaas-observer target/release/gitfaas-scaler

FROM runtime AS release
COPY --from=build /out/gitfaas-executor /out/gitfaas-scaler /usr/local/bin/
COPY --from=tools /out/ /opt/gitfaas/deps-tools/
