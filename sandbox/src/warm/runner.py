# gitfaas resident python runner (a warm sandbox). Serves one invocation at a time:
# a request is a 4-byte big-endian length and the cold runner's stdin (the job's
# data and credentials, as JSON) on the container's stdin. Each invocation runs in
# a fresh forked process that executes the cold runner (argv[-1]), so nothing a
# function does to its process carries over. Everything goes back framed on stdout:
# one kind byte, a 4-byte big-endian length, the payload — b"O" the function's
# stdout, b"E" its stderr, b"X" its end as JSON {"code": n, "oom": bool}, b"R" ready.
#
# The runner (and the container's init) run as root with no capability but
# SETUID/SETGID; the function runs as GITFAAS_RUN_AS ("uid:gid"), so it can
# neither signal, trace nor open the memory or descriptors of either. What the
# runner frames comes only from the pipes it made for that invocation's process.
# When that process ends, the sweep (argv[-2], a shell script run as the
# function's user) kills every process of that user and empties /tmp, /dev/shm,
# /dev/mqueue and System V IPC; before each invocation it does so with /output.
import ctypes
import importlib.util
import inspect
import io
import json
import os
import select
import signal
import struct
import sys
import traceback

# the cold runner's arguments (code dir, entry, working directory), the sweep, the cold runner;
# a ready sandbox is started with no arguments: its first request names them (see serve)
ARGS = sys.argv[1:-2]
SWEEP = sys.argv[-2]
# compiled once; what it imports (importlib.util, inspect, json, traceback) is loaded
# here, before any fork, so an invocation starts at the import of the function itself
COLD = compile(sys.argv[-1], "<string>", "exec")
SCRATCH = ["/tmp", "/dev/shm", "/dev/mqueue"]
# the function's user; the runner refuses to serve without one (see serve)
RUN_AS = os.environ.pop("GITFAAS_RUN_AS", "")
CHUNK = 65536
libc = ctypes.CDLL(None, use_errno=True)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def frame(kind, payload=b""):
    write_all(1, kind + struct.pack(">I", len(payload)) + payload)


def read_into(buf):
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = os.readv(0, [view[got:]])
        if n == 0:
            return False
        got += n
    return True


def wipe(buf):
    if buf:
        ctypes.memset((ctypes.c_char * len(buf)).from_buffer(buf), 0, len(buf))


def keep_only(stdin, stdout, stderr):
    """Makes these the process's only descriptors: the container's stdio (the
    runner's channel) and anything else the runner holds are not passed on."""
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.closerange(3, 1 << 16)


def become_function_user():
    uid, _, gid = RUN_AS.partition(":")
    os.setgroups([])
    os.setresgid(int(gid or uid), int(gid or uid), int(gid or uid))
    os.setresuid(int(uid), int(uid), int(uid))


def others():
    """Processes alive in the container but init and this runner."""
    mine = {1, os.getpid()}
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in mine:
            try:
                with open("/proc/%s/stat" % name) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(name))
            except (OSError, IndexError):
                pass
    return found


class Unswept(Exception):
    """A process of the function or a file it left could not be removed."""


def left_over(tops):
    """Whether anything of the function's may be left: a process but init and this
    runner, an entry in one of tops, or System V IPC. (With no process of the
    function's alive none can be born, so a clean look needs no sweep.)"""
    if others():
        return True
    for top in tops:
        try:
            if os.listdir(top):
                return True
        except FileNotFoundError:
            pass
        except OSError:
            return True
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                if f.readline() and f.readline():
                    return True
        except FileNotFoundError:
            pass
        except OSError:
            return True
    return False


def sweep(tops):
    """Kills every process of the function's user and empties tops, as that user
    (nothing to do when nothing is left over: the common case costs no process)."""
    if not left_over(tops):
        return
    for _ in range(50):
        pid = os.fork()
        if pid == 0:
            try:
                null = os.open("/dev/null", os.O_RDWR)
                keep_only(null, null, null)
                become_function_user()
                os.execv("/bin/sh", ["sh", "-c", SWEEP, "sweep"] + tops)
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            raise Unswept("the sweep exited with status %d" % status)
        if not others():
            return
        tops = []  # emptied; only the kill is repeated while the killed ones exit
    raise Unswept("processes of the function outlived the sweep")


def oom_kills():
    for path, key in (("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"), ("/sys/fs/cgroup/memory.events", "oom_kill")):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            pass
    return None


def child(request, out_w, err_w):
    code = 1
    try:
        os.setsid()
        keep_only(os.open("/dev/null", os.O_RDONLY), out_w, err_w)
        become_function_user()
        libc.prctl(4, 1, 0, 0, 0)  # the function's own process is as dumpable as a cold one
        data = bytes(request)
        wipe(request)
        sys.stdin = io.TextIOWrapper(io.BytesIO(data))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
        sys.argv = ["-c"] + ARGS
        try:
            exec(COLD, {"__name__": "__main__", "__builtins__": __builtins__})
            code = 0
        except SystemExit as end:
            if end.code is None:
                code = 0
            elif isinstance(end.code, int):
                code = end.code & 0xFF
            else:
                sys.stderr.write(str(end.code) + "\n")
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
    finally:
        os._exit(code)


def invoke(request):
    sweep(SCRATCH + ["/output"])
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    before = oom_kills()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(err_r)
        child(request, out_w, err_w)
    wipe(request)
    os.close(out_w)
    os.close(err_w)
    kinds = {out_r: b"O", err_r: b"E"}
    status = None
    while kinds:
        ready, _, _ = select.select(list(kinds), [], [], 0.02 if status is None else 1.0)
        for fd in ready:
            chunk = os.read(fd, CHUNK)
            if chunk:
                frame(kinds[fd], chunk)
            else:
                os.close(fd)
                del kinds[fd]
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
                sweep(SCRATCH)  # a background process keeping the pipes open dies here
    if status is None:
        status = os.waitpid(pid, 0)[1]
        sweep(SCRATCH)
    after = oom_kills()
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        code = 128 + number
        oom = (after > before) if after is not None and before is not None else number == signal.SIGKILL
    else:
        code = os.WEXITSTATUS(status)
        oom = after is not None and before is not None and after > before
    frame(b"X", json.dumps({"code": code, "oom": oom}).encode())


def serve():
    # a second wall next to the user: not even root's own may open or trace it
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if os.getuid() != 0 or not RUN_AS or RUN_AS.split(":")[0] in ("", "0"):
        sys.stderr.write("gitfaas: the warm runner needs root and a function user other than root\n")
        sys.exit(2)
    sweep(SCRATCH + ["/output"])
    frame(b"R")
    head = bytearray(4)
    if not ARGS:
        # a ready sandbox, started before it had a function: the first request is the
        # cold runner's arguments as a JSON list of strings, and it serves only that one
        if not read_into(head):
            return
        named = bytearray(struct.unpack(">I", head)[0])
        if not read_into(named):
            return
        named = json.loads(bytes(named))
        if not (isinstance(named, list) and named and all(isinstance(a, str) for a in named)):
            sys.stderr.write("gitfaas: a ready runner's first request must name its arguments\n")
            sys.exit(2)
        ARGS.extend(named)
    while read_into(head):
        request = bytearray(struct.unpack(">I", head)[0])
        if not read_into(request):
            return
        try:
            invoke(request)
        except BaseException:
            traceback.print_exc()
            return
        finally:
            wipe(request)


serve()
