# The repository's examples/ served by a git daemon, to try gitfaas with: each directory becomes
# a repository with one commit on `main`, at git://<host>:9418/<directory> (in compose: the
# `examples` service, profile `examples`, git://examples:9418/hello-python). Context: examples/.
#   docker build -f deploy/docker/examples.Dockerfile -t gitfaas/examples:0.1.0 examples
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends git; \
    rm -rf /var/lib/apt/lists/*
COPY . /tmp/examples/
RUN set -eux; \
    mkdir -p /srv/git; \
    for dir in /tmp/examples/*/; do \
        name=$(basename "$dir"); \
        cp -R "$dir" "/srv/git/$name"; \
        git -C "/srv/git/$name" init -q -b main; \
        git -C "/srv/git/$name" add -A; \
        git -C "/srv/git/$name" -c user.name=gitfaas -c user.email=gitfaas@localhost commit -qm "example $name"; \
    done; \
    rm -rf /tmp/examples; \
    chown -R 65534:65534 /srv/git
USER 65534:65534
EXPOSE 9418
CMD ["git", "daemon", "--reuseaddr", "--export-all", "--base-path=/srv/git", "--listen=0.0.0.0", "--port=9418", \
     "/srv/git"]
# listening on 9418 (hex 24CA, state 0A); a probe connection would make the daemon log errors
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD ["grep", "-q", ":24CA 00000000:0000 0A", "/proc/net/tcp"]
