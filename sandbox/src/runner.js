// gitfaas node runner: reads {"data": ..., "credentials": ...} as JSON on stdin,
// calls main(data, credentials) exported by the repository's entry module — or, for
// an entry `file.js:handler`, that export — (awaiting a promise), and writes the
// return value as JSON to stdout. An entry that exports no such function ends the
// run with `gitfaas: rejected: …` as its last stderr line: the job is rejected. console output goes to
// stderr, so stdout carries the result alone. An exception thrown by loading the entry or
// by main ends the run with its stack and then one last stderr line, `gitfaas: raised
// NAME: MESSAGE`, which the executor lifts into the job's reason.
//
// main's third argument is a context (see context below), as the python
// runner's: ctx.state (get, put, incr, delete, keys), ctx.publish, ctx.job;
// with "context" in the request stdout is {"value": ..., "effects": ...}.
const fs = require("fs");
const path = require("path");
const [codeDir, entry, workdir = "."] = process.argv.slice(1);
process.chdir(path.join(codeDir, workdir));
const out = process.stdout.write.bind(process.stdout);
const fail = (code, message) => {
  process.stderr.write("gitfaas: " + message + "\n");
  process.exit(code);
};
const raised = (error, where) => {
  console.error(error && error.stack ? error.stack : String(error));
  const described =
    error instanceof Error
      ? error.name + (error.message ? ": " + error.message.split("\n")[0] : "")
      : "exception: " + String(error);
  process.stderr.write("gitfaas: raised " + described.split(/\s+/).join(" ").slice(0, 500) + where + "\n");
  process.exit(1);
};
for (const level of ["log", "info", "debug", "warn"]) console[level] = console.error;
process.stdout.write = process.stderr.write.bind(process.stderr);
let request;
try {
  request = JSON.parse(fs.readFileSync(0, "utf8"));
} catch (error) {
  fail(2, "job input is not valid json: " + error.message);
}
const LIMITS = { max_key_bytes: 256, max_value_bytes: 16384, max_keys: 1024, max_ops: 1000,
  max_publishes: 100, max_publish_bytes: 65536 };
class StateError extends Error {
  constructor(message) { super(message); this.name = "StateError"; }
}
const bytes = (text) => Buffer.byteLength(text, "utf8");
const context = (given) => {
  const c = given || {};
  const limits = Object.assign({}, LIMITS, c.limits || {});
  const values = new Map(Object.entries(c.state || {}));
  const ops = [], last = new Map(), published = [];
  const topics = given ? new Set(c.topics || []) : null;
  const checked = (key) => {
    if (c.refusal) throw new StateError(c.refusal);
    if (typeof key !== "string" || key === "") throw new StateError("a state key is a non-empty string");
    if (bytes(key) > limits.max_key_bytes)
      throw new StateError(`state key of ${bytes(key)} bytes; the limit is ${limits.max_key_bytes}`);
    return key;
  };
  const record = (key, op) => {
    if (!values.has(key) && values.size >= limits.max_keys)
      throw new StateError(`state holds ${values.size} keys; the limit is ${limits.max_keys}`);
    const at = last.get(key);
    if (at !== undefined && op.op === "incr" && ops[at].op === "incr") {
      ops[at].by += op.by;
      return;
    }
    if (ops.length >= limits.max_ops) throw new StateError(`${ops.length} state changes; the limit is ${limits.max_ops} per job`);
    last.set(key, ops.length);
    ops.push(op);
  };
  const state = {
    get(key, fallback = undefined) {
      key = checked(key);
      return values.has(key) ? JSON.parse(JSON.stringify(values.get(key))) : fallback;
    },
    put(key, value) {
      key = checked(key);
      const text = JSON.stringify(value === undefined ? null : value);
      if (bytes(text) > limits.max_value_bytes)
        throw new StateError(`state value of ${bytes(text)} bytes; the limit is ${limits.max_value_bytes}`);
      record(key, { op: "put", key, value: JSON.parse(text) });
      values.set(key, JSON.parse(text));
    },
    incr(key, by = 1) {
      key = checked(key);
      if (!Number.isSafeInteger(by)) throw new StateError("incr takes a safe integer");
      const now = Number.isInteger(values.get(key)) ? values.get(key) : 0;
      record(key, { op: "incr", key, by });
      values.set(key, now + by);
      return now + by;
    },
    delete(key) {
      key = checked(key);
      record(key, { op: "delete", key });
      values.delete(key);
    },
    keys(prefix = "") {
      if (c.refusal) throw new StateError(c.refusal);
      return [...values.keys()].filter((k) => k.startsWith(prefix)).sort();
    },
  };
  const publish = (topic, value, key = null) => {
    if (topics && !topics.has(topic)) throw new StateError(`topic ${JSON.stringify(topic)} is not one this function may publish to`);
    const text = JSON.stringify(value === undefined ? null : value);
    if (bytes(text) > limits.max_publish_bytes)
      throw new StateError(`a record of ${bytes(text)} bytes; the limit is ${limits.max_publish_bytes}`);
    if (published.length >= limits.max_publishes)
      throw new StateError(`${published.length} records published; the limit is ${limits.max_publishes} per job`);
    published.push({ topic, key: key === null ? null : String(key), value: JSON.parse(text) });
  };
  return { job: c.job || {}, state, publish, effects: () => ({ ops, publish: published }) };
};
const named = /^(.+):([A-Za-z_$][A-Za-z0-9_$]*)$/.exec(entry);
const [entryFile, exportName] = named ? [named[1], named[2]] : [entry, "main"];
const file = path.join(codeDir, entryFile);
if (!fs.existsSync(file)) fail(2, "entry file " + JSON.stringify(entryFile) + " not found in the repository");
(async () => {
  let mod;
  try {
    mod = entryFile.endsWith(".mjs") ? await import(file) : require(file);
  } catch (error) {
    raised(error, " (while importing " + JSON.stringify(entry) + ")");
  }
  // a module that is itself a function stands for its main (module.exports = fn)
  const main = mod && (typeof mod === "function" && !named ? mod : mod[exportName]);
  if (typeof main !== "function") {
    fail(2, "rejected: " + JSON.stringify(entryFile) + " exports no function `" + exportName + "`");
  }
  let value;
  const ctx = context(request.context);
  try {
    value = await main(request.data, request.credentials || {}, ctx);
  } catch (error) {
    raised(error, "");
  }
  let text = JSON.stringify(value === undefined ? null : value);
  if (request.context) text = `{"value": ${text}, "effects": ${JSON.stringify(ctx.effects())}}`;
  out(text, () => process.exit(0));
})();
