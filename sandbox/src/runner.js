// gitfaas node runner: reads {"data": ..., "credentials": ...} as JSON on stdin,
// calls main(data, credentials) exported by the repository's entry module — or, for
// an entry `file.js:handler`, that export — (awaiting a promise), and writes the
// return value as JSON to stdout. An entry that exports no such function ends the
// run with `gitfaas: rejected: …` as its last stderr line: the job is rejected. console output goes to
// stderr, so stdout carries the result alone. An exception thrown by loading the entry or
// by main ends the run with its stack and then one last stderr line, `gitfaas: raised
// NAME: MESSAGE`, which the executor lifts into the job's reason.
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
  try {
    value = await main(request.data, request.credentials || {});
  } catch (error) {
    raised(error, "");
  }
  const text = JSON.stringify(value === undefined ? null : value);
  out(text, () => process.exit(0));
})();
