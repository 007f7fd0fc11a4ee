// gitfaas node runner: reads {"data": ..., "credentials": ...} as JSON on stdin,
// calls main(data, credentials) exported by the repository's entry module (awaiting
// a promise), and writes the return value as JSON to stdout. console output goes to
// stderr, so stdout carries the result alone.
const fs = require("fs");
const path = require("path");
const [codeDir, entry, workdir = "."] = process.argv.slice(1);
process.chdir(path.join(codeDir, workdir));
const out = process.stdout.write.bind(process.stdout);
const fail = (code, message) => {
  process.stderr.write("gitfaas: " + message + "\n");
  process.exit(code);
};
for (const level of ["log", "info", "debug", "warn"]) console[level] = console.error;
process.stdout.write = process.stderr.write.bind(process.stderr);
let request;
try {
  request = JSON.parse(fs.readFileSync(0, "utf8"));
} catch (error) {
  fail(2, "job input is not valid json: " + error.message);
}
const file = path.join(codeDir, entry);
if (!fs.existsSync(file)) fail(2, "entry file " + JSON.stringify(entry) + " not found in the repository");
(async () => {
  let mod;
  try {
    mod = entry.endsWith(".mjs") ? await import(file) : require(file);
  } catch (error) {
    console.error(error && error.stack ? error.stack : String(error));
    fail(1, "importing " + JSON.stringify(entry) + " failed");
  }
  const main = mod && (typeof mod === "function" ? mod : mod.main);
  if (typeof main !== "function") fail(2, JSON.stringify(entry) + " exports no main function");
  let value;
  try {
    value = await main(request.data, request.credentials || {});
  } catch (error) {
    console.error(error && error.stack ? error.stack : String(error));
    process.exit(1);
  }
  const text = JSON.stringify(value === undefined ? null : value);
  out(text, () => process.exit(0));
})();
