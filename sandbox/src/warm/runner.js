// gitfaas resident node runner (a warm sandbox): the protocol of the python one
// (see runner.py). Each invocation is a fresh `node -e <cold runner>` process, run
// as the function's user (GITFAAS_RUN_AS) while the runner and init stay root, fed
// the request on its stdin; what the runner frames comes from that process's own
// pipes. Node cannot make itself non-dumpable: the other user is what keeps the
// function out of its memory and descriptors. When the process ends, the sweep
// (argv[-2], run as the function's user) kills every process of that user and
// empties the scratch directories and System V IPC; before each invocation also
// /output.
const fs = require("fs");
const { spawn, spawnSync } = require("child_process");
// the cold runner's arguments (code dir, entry, working directory), the sweep, the cold runner;
// a ready sandbox is started with no arguments: its first request names them (see next)
let coldArgs = process.argv.slice(1, -2);
const [sweepScript, cold] = process.argv.slice(-2);
const SCRATCH = ["/tmp", "/dev/shm", "/dev/mqueue"];
// the function's user ("uid:gid"); the runner refuses to serve without one
const runAs = (process.env.GITFAAS_RUN_AS || "").split(":").map(Number);
delete process.env.GITFAAS_RUN_AS;
const asFunction = { uid: runAs[0], gid: runAs.length > 1 ? runAs[1] : runAs[0] };
if (process.getuid() !== 0 || !(asFunction.uid > 0) || !(asFunction.gid >= 0)) {
  process.stderr.write("gitfaas: the warm runner needs root and a function user other than root\n");
  process.exit(2);
}

const frame = (kind, payload = Buffer.alloc(0)) => {
  const head = Buffer.alloc(5);
  head.write(kind, 0, "latin1");
  head.writeUInt32BE(payload.length, 1);
  fs.writeSync(1, Buffer.concat([head, payload]));
};

// processes alive in the container but init and this runner
const others = () =>
  fs.readdirSync("/proc").filter((name) => {
    if (!/^\d+$/.test(name) || name === "1" || Number(name) === process.pid) return false;
    try {
      const stat = fs.readFileSync("/proc/" + name + "/stat", "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
      return false;
    }
  });

// whether anything of the function's may be left: a process but init and this
// runner, an entry in one of tops, or System V IPC (with no process of the
// function's alive none can be born, so a clean look needs no sweep)
const leftOver = (tops) => {
  if (others().length > 0) return true;
  for (const top of tops) {
    try {
      if (fs.readdirSync(top).length > 0) return true;
    } catch (error) {
      if (error.code !== "ENOENT") return true;
    }
  }
  for (const kind of ["shm", "msg", "sem"]) {
    try {
      if (fs.readFileSync("/proc/sysvipc/" + kind, "utf8").trim().split("\n").length > 1) return true;
    } catch (error) {
      if (error.code !== "ENOENT") return true;
    }
  }
  return false;
};

// kills every process of the function's user and empties tops, as that user;
// throws when something outlives it (nothing to do when nothing is left over:
// the common case costs no process)
const sweep = (tops) => {
  if (!leftOver(tops)) return;
  for (let round = 0; round < 50; round++) {
    const run = spawnSync("/bin/sh", ["-c", sweepScript, "sweep", ...tops], { ...asFunction, stdio: "ignore" });
    if (run.status !== 0) throw new Error("the sweep exited with " + (run.signal || run.status));
    if (others().length === 0) return;
    tops = []; // emptied; only the kill is repeated while the killed ones exit
  }
  throw new Error("processes of the function outlived the sweep");
};

const oomKills = () => {
  for (const file of ["/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"]) {
    try {
      const line = fs.readFileSync(file, "utf8").split("\n").find((l) => l.startsWith("oom_kill "));
      if (line) return Number(line.split(" ")[1]);
    } catch {}
  }
  return null;
};

const SIGNALS = require("os").constants.signals;

const invoke = (request, done) => {
  sweep([...SCRATCH, "/output"]);
  const before = oomKills();
  // its own pipes: the runner frames what comes from them, nothing else
  const child = spawn(process.execPath, ["-e", cold, ...coldArgs], {
    ...asFunction,
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  child.stdout.on("data", (chunk) => frame("O", chunk));
  child.stderr.on("data", (chunk) => frame("E", chunk));
  child.stdin.on("error", () => {});
  child.stdin.end(request, () => request.fill(0));
  child.on("exit", () => sweep(SCRATCH)); // a background process keeping the pipes open dies here
  child.on("close", (exitCode, signal) => {
    const after = oomKills();
    const number = signal ? SIGNALS[signal] : 0;
    const oom = before !== null && after !== null ? after > before : signal === "SIGKILL";
    const code = signal ? 128 + number : exitCode;
    frame("X", Buffer.from(JSON.stringify({ code, oom })));
    done();
  });
};

sweep([...SCRATCH, "/output"]);
frame("R");
let pending = Buffer.alloc(0);
let busy = false;
const next = () => {
  if (busy || pending.length < 4) return;
  const length = pending.readUInt32BE(0);
  if (pending.length < 4 + length) return;
  const request = Buffer.from(pending.subarray(4, 4 + length));
  pending.fill(0, 0, 4 + length);
  pending = pending.subarray(4 + length);
  if (coldArgs.length === 0) {
    // a ready sandbox, started before it had a function: the first request is the
    // cold runner's arguments as a JSON list of strings, and it serves only that one
    const named = JSON.parse(request.toString("utf8"));
    if (!Array.isArray(named) || named.length === 0 || !named.every((a) => typeof a === "string")) {
      process.stderr.write("gitfaas: a ready runner's first request must name its arguments\n");
      process.exit(2);
    }
    coldArgs = named;
    return next();
  }
  busy = true;
  invoke(request, () => {
    busy = false;
    next();
  });
};
process.stdin.on("data", (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  next();
});
process.stdin.on("end", () => process.exit(0));
