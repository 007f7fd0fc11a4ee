# The node runtime jobs run in: Debian bookworm with Debian's nodejs and nothing else
# (config/executor.yaml: executor.images.node = gitfaas/node:bookworm). Nothing is copied:
#   docker build -f deploy/docker/runtime-node.Dockerfile -t gitfaas/node:bookworm deploy/docker
# scripts/images.sh builds the same image without any registry, from
# `debootstrap --variant=minbase --include=nodejs bookworm`.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends nodejs; \
    rm -rf /var/lib/apt/lists/*
# the executor runs every job as 65534:65534 anyway (executor.user)
USER 65534:65534
CMD ["node"]
