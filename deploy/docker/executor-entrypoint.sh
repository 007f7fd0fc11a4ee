#!/bin/sh
# Entrypoint of the executor image. The executor runs as the unprivileged user `gitfaas`;
# started as root (the image default) this script first does the two things only root can
# do portably, then drops to that user for good (setpriv, no capabilities, no_new_privs):
#   - joins the group owning the Docker socket (its gid differs from host to host), so the
#     executor can create job containers through the host's engine;
#   - makes the work directory (a bind mount with the same path on the host and here,
#     because job containers mount per-job checkouts from it) writable by `gitfaas`;
#   - with GITFAAS_DEPS_DIR (a bind mount with the same path on the host and here, as the
#     work directory: dependency builds and jobs mount layers and installers from it), puts
#     this image's installers in its tools/ and gives this container a layer cache of its own
#     in <host name>/ (executors sharing the directory never evict each other's layers).
# Started as any other user (`user:` in compose, with group_add), it only runs the command.
set -eu

if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi

uid=$(id -u gitfaas)
gid=$(id -g gitfaas)
groups=$gid

socket=/var/run/docker.sock
case "${DOCKER_HOST:-}" in
  unix://*) socket=${DOCKER_HOST#unix://} ;;
  ?*) socket= ;; # tcp:// etc.: nothing to join
esac
if [ -n "$socket" ] && [ -S "$socket" ]; then
  groups="$groups,$(stat -c %g "$socket")"
fi

work=${GITFAAS__EXECUTOR__WORK_DIR:-/var/lib/gitfaas/work}
mkdir -p "$work"
chown "$uid:$gid" "$work"

deps=${GITFAAS_DEPS_DIR:-}
if [ -n "$deps" ]; then
  tools=$deps/tools
  if [ ! -s "$tools/pip.whl" ] || [ ! -s "$tools/npm/bin/npm-cli.js" ]; then
    # a copy beside, then a rename: another executor may be doing the same
    staged=$(mktemp -d "$deps/.tools.XXXXXX")
    cp -R /opt/gitfaas/deps-tools/. "$staged/"
    chmod -R a+rX "$staged"
    rm -rf "$tools" 2>/dev/null || true
    mv -T "$staged" "$tools" 2>/dev/null || rm -rf "$staged"
  fi
  cache=$deps/$(hostname)
  mkdir -p "$cache"
  chown "$uid:$gid" "$cache"
  export GITFAAS__EXECUTOR__DEPENDENCIES__TOOLS_DIR="$tools"
  export GITFAAS__EXECUTOR__DEPENDENCIES__CACHE_DIR="$cache"
fi

# setpriv keeps the environment: HOME=/root would make libgit2 fail on /root/.gitconfig
export HOME=/var/lib/gitfaas USER=gitfaas LOGNAME=gitfaas
exec setpriv --reuid="$uid" --regid="$gid" --groups="$groups" --inh-caps=-all --no-new-privs -- "$@"
