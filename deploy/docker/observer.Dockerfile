# The gitfaas observer image. Build context: the repository root.
#   docker build -f deploy/docker/observer.Dockerfile -t gitfaas/observer:0.1.0 .
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
USER gitfaas
# metrics and health (/metrics, /health/live, /health/ready) on every interface of the container
ENV GITFAAS__OBSERVER__METRICS_LISTEN=0.0.0.0:9102
EXPOSE 9102
# readiness: the broker answers
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["gitfaas-healthcheck", "http", "/health/ready", "GITFAAS__OBSERVER__METRICS_LISTEN"]
CMD ["gitfaas-observer"]

FROM runtime AS prebuilt
# in the repository this directory holds only a .gitignore; build-local.sh fills a copy of it
COPY deploy/docker/prebuilt/ /usr/local/bin/

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
COPY --from=build /out/gitfaas-observer /usr/local/bin/gitfaas-observer
