# Smoke test only: a `git daemon` serving the function repositories to the executor container
# (the host's loopback, where scripts/stack.sh serves them, is not reachable from containers).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends git; \
    rm -rf /var/lib/apt/lists/*
USER 65534:65534
EXPOSE 9418
# repositories owned by another user than the daemon's: safe.directory=*
CMD ["git", "-c", "safe.directory=*", "daemon", "--reuseaddr", "--export-all", "--base-path=/srv/git", \
     "--listen=0.0.0.0", "--port=9418", "/srv/git"]
# listening on 9418 (hex 24CA, state 0A): probing with a connection would log "hung up" errors
HEALTHCHECK --interval=2s --timeout=3s --retries=15 CMD ["grep", "-q", ":24CA 00000000:0000 0A", "/proc/net/tcp"]
