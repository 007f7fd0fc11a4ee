# The python runtime jobs run in: Debian bookworm with python3 and nothing else
# (config/executor.yaml: executor.images.python = gitfaas/python:bookworm). Nothing is copied:
#   docker build -f deploy/docker/runtime-python.Dockerfile -t gitfaas/python:bookworm deploy/docker
# scripts/images.sh builds the same image without any registry, from
# `debootstrap --variant=minbase --include=python3 bookworm`.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3; \
    rm -rf /var/lib/apt/lists/*
# the executor runs every job as 65534:65534 anyway (executor.user)
USER 65534:65534
CMD ["python3"]
