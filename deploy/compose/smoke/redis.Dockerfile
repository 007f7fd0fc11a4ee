# Smoke test only (redis cannot be pulled here): Debian's redis-server, run like the official
# image runs it — as user redis in /data, protected mode off when given no config file (the
# network is the container network; nothing is published).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends redis-server; \
    rm -rf /var/lib/apt/lists/*; \
    install -d -o redis -g redis /data; \
    printf '#!/bin/sh\nif [ "$1" = redis-server ]; then shift; exec redis-server --protected-mode no "$@"; fi\nexec "$@"\n' \
        >/usr/local/bin/redis-entrypoint; \
    chmod +x /usr/local/bin/redis-entrypoint
USER redis
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["redis-entrypoint"]
CMD ["redis-server"]
