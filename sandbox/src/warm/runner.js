// gitfaas resident node runner (a warm sandbox): the protocol of the python one
// (see runner.py). Each invocation is a fresh `node -e <cold runner>` process fed
// the request on its stdin; after it ends every other process of the container is
// killed, and the scratch directories (with /output before each invocation) and
// System V IPC are emptied.
const fs = require("fs");
const path = require("path");
const { spawn, spawnSync } = require("child_process");
// the cold runner's arguments (code dir, entry, working directory), then the cold runner
const coldArgs = process.argv.slice(1, -1);
const cold = process.argv[process.argv.length - 1];
const SCRATCH = ["/tmp", "/dev/shm", "/dev/mqueue"];

const frame = (kind, payload = Buffer.alloc(0)) => {
  const head = Buffer.alloc(5);
  head.write(kind, 0, "latin1");
  head.writeUInt32BE(payload.length, 1);
  fs.writeSync(1, Buffer.concat([head, payload]));
};

const empty = (top) => {
  let names;
  try {
    names = fs.readdirSync(top);
  } catch {
    return;
  }
  for (const name of names) {
    const p = path.join(top, name);
    try {
      if (fs.lstatSync(p).isDirectory()) {
        fs.chmodSync(p, 0o700);
        empty(p);
        fs.rmdirSync(p);
      } else {
        fs.unlinkSync(p);
      }
    } catch {}
  }
};

const ipcInUse = () =>
  ["shm", "msg", "sem"].some((kind) => {
    try {
      return fs.readFileSync("/proc/sysvipc/" + kind, "utf8").trim().split("\n").length > 1;
    } catch {
      return false;
    }
  });

const clean = (withOutput) => {
  for (const top of withOutput ? [...SCRATCH, "/output"] : SCRATCH) empty(top);
  if (ipcInUse()) spawnSync("ipcrm", ["--all"], { stdio: "ignore" });
};

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

const killOthers = () => {
  for (let round = 0; round < 100; round++) {
    const pids = others();
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {}
    }
  }
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
  clean(true);
  const before = oomKills();
  const child = spawn(process.execPath, ["-e", cold, ...coldArgs], {
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  child.stdout.on("data", (chunk) => frame("O", chunk));
  child.stderr.on("data", (chunk) => frame("E", chunk));
  child.stdin.on("error", () => {});
  child.stdin.end(request, () => request.fill(0));
  child.on("exit", () => killOthers()); // a background process keeping the pipes open dies here
  child.on("close", (exitCode, signal) => {
    killOthers();
    const after = oomKills();
    const number = signal ? SIGNALS[signal] : 0;
    const oom = before !== null && after !== null ? after > before : signal === "SIGKILL";
    clean(false);
    const code = signal ? 128 + number : exitCode;
    frame("X", Buffer.from(JSON.stringify({ code, oom })));
    done();
  });
};

clean(true);
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
