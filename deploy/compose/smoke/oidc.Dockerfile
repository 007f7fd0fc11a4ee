# Smoke test only (Keycloak cannot be pulled here): the test OpenID provider, tests/oidc/provider.mjs
# (npm oidc-provider; clients alice, bob, admin with secrets <id>-secret, client credentials grant,
# resource urn:gitfaas, roles in `roles`), on this machine's node binary.
# Context: a directory holding `node` and `oidc/` (provider.mjs, package.json, node_modules).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY node /usr/local/bin/node
COPY oidc/ /opt/gitfaas-oidc/
USER 65534:65534
EXPOSE 8180
ENTRYPOINT ["node", "/opt/gitfaas-oidc/provider.mjs"]
CMD ["--host=0.0.0.0", "--port=8180"]
HEALTHCHECK --interval=2s --timeout=3s --retries=15 CMD ["node", "-e", "fetch('http://127.0.0.1:8180/.well-known/openid-configuration').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
