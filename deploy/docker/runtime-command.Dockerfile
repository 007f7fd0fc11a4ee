# The command runtime jobs run in: a static busybox, /bin/sh and its applets, nothing else
# (config/executor.yaml: executor.images.command = gitfaas/command:busybox). Nothing is copied:
#   docker build -f deploy/docker/runtime-command.Dockerfile -t gitfaas/command:busybox deploy/docker
# scripts/images.sh builds the same image without any registry, from the host's busybox-static.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS busybox
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends busybox-static; \
    mkdir -p /rootfs/bin /rootfs/etc /rootfs/tmp; \
    cp /bin/busybox /rootfs/bin/busybox; \
    for applet in $(/rootfs/bin/busybox --list); do \
        [ "$applet" = busybox ] || ln -s busybox "/rootfs/bin/$applet"; \
    done; \
    echo 'nobody:x:65534:65534:nobody:/tmp:/bin/sh' >/rootfs/etc/passwd; \
    chmod 1777 /rootfs/tmp

FROM scratch
COPY --from=busybox /rootfs/ /
ENV PATH=/bin
# the executor runs every job as 65534:65534 anyway (executor.user)
USER 65534:65534
CMD ["sh"]
