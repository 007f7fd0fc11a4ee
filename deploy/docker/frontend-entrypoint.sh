#!/bin/sh
# Entrypoint of the frontend image.
#
# WORK-AROUND, to delete once frontend.auth.subject has a default in code: config/frontend.yaml
# sets `auth: {mode: none, subject: anonymous}`, and configuration layers can add keys but not
# remove them, so GITFAAS__FRONTEND__AUTH__MODE=oidc alone fails with "unknown field `subject`".
# In oidc mode this runs the frontend on a copy of the configuration without that one line.
set -eu

if [ "${GITFAAS__FRONTEND__AUTH__MODE:-}" = oidc ] && grep -q '^    subject:' "$GITFAAS_CONFIG_DIR/frontend.yaml"; then
  dir=$(mktemp -d /tmp/gitfaas-config.XXXXXX)
  cp -R "$GITFAAS_CONFIG_DIR/." "$dir/"
  sed -i '/^    subject:/d' "$dir/frontend.yaml"
  export GITFAAS_CONFIG_DIR="$dir"
fi
exec "$@"
