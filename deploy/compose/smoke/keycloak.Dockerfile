# Smoke test only (quay.io cannot be reached here): a Keycloak image laid out like the
# official one (/opt/keycloak, kc.sh as entrypoint, data/import and data/h2), from what this
# machine has: the Quarkus distribution scripts/keycloak.sh fetched from Maven Central and
# the host's Temurin 25 JDK, on the debian:bookworm-slim that scripts/images.sh builds.
# Context: a directory holding `java/` (the JDK) and `keycloak/` (the unpacked distribution).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY java/ /opt/java/
# start-dev re-augments the distribution and writes its H2 database: the server user owns it
COPY --chown=1000:0 keycloak/ /opt/keycloak/
RUN mkdir -p /opt/keycloak/data/import /opt/keycloak/data/h2 && chown -R 1000:0 /opt/keycloak/data
ENV JAVA_HOME=/opt/java PATH=/opt/java/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 1000
WORKDIR /opt/keycloak
EXPOSE 8180
ENTRYPOINT ["/opt/keycloak/bin/kc.sh"]
