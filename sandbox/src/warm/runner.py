# gitfaas resident python runner (a warm sandbox). Serves one invocation at a time:
# a request is a 4-byte big-endian length and the cold runner's stdin (the job's
# data and credentials, as JSON) on the container's stdin. Each invocation runs in
# a fresh forked process that executes the cold runner (argv[3]), so nothing a
# function does to its process carries over. Everything goes back framed on stdout:
# one kind byte, a 4-byte big-endian length, the payload — b"O" the function's
# stdout, b"E" its stderr, b"X" its end as JSON {"code": n, "oom": bool}, b"R" ready.
# After the function's process ends every other process of the container is
# killed; /tmp, /dev/shm, /dev/mqueue and System V IPC are emptied after each
# invocation and, with /output, before each one.
import ctypes
import importlib.util
import inspect
import io
import json
import os
import select
import signal
import stat
import struct
import subprocess
import sys
import traceback

# the cold runner's arguments (code dir, entry, working directory), then the cold runner
ARGS = sys.argv[1:-1]
# compiled once; what it imports (importlib.util, inspect, json, traceback) is loaded
# here, before any fork, so an invocation starts at the import of the function itself
COLD = compile(sys.argv[-1], "<string>", "exec")
SCRATCH = ["/tmp", "/dev/shm", "/dev/mqueue"]
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


def empty(top):
    """Removes everything below top, whatever modes the function left."""
    try:
        names = os.listdir(top)
    except OSError:
        return
    for name in names:
        path = os.path.join(top, name)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                os.chmod(path, 0o700)
                empty(path)
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass


def ipc_in_use():
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/" + kind) as table:
                if len(table.readlines()) > 1:
                    return True
        except OSError:
            pass
    return False


def clean(with_output):
    for top in SCRATCH + (["/output"] if with_output else []):
        empty(top)
    if ipc_in_use():
        subprocess.run(["ipcrm", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def others():
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


def kill_others():
    for _ in range(100):
        pids = others()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


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
        libc.prctl(4, 1, 0, 0, 0)  # the function's own process is as dumpable as a cold one
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (null, out_w, err_w):
            os.close(fd)
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
    clean(True)
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
                kill_others()  # a background process keeping the pipes open dies here
    if status is None:
        status = os.waitpid(pid, 0)[1]
    kill_others()
    after = oom_kills()
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        code = 128 + number
        oom = (after > before) if after is not None and before is not None else number == signal.SIGKILL
    else:
        code = os.WEXITSTATUS(status)
        oom = after is not None and before is not None and after > before
    clean(False)
    frame(b"X", json.dumps({"code": code, "oom": oom}).encode())


def serve():
    # others of the same user may not open this process's descriptors nor trace it
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    clean(True)
    frame(b"R")
    head = bytearray(4)
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
