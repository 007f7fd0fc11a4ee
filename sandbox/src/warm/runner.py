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
#
# Import once: the function is imported by a zygote, a process of the function's
# user made while /input is empty (before any invocation's data exists), which
# then only forks: each invocation is a fresh process of it, handed its own stdin,
# stdout and stderr pipes by the runner (the zygote never sees a request), whose
# parent exits at once so that the runner (a subreaper) waits for it. The
# zygote is non-dumpable and blocks every signal; one found stopped, dead or with
# company is swept away with everything else of the user, and a new one is made
# for the next invocation. A function whose import fails or starts threads is
# imported per invocation instead, as is any invocation while /input holds data,
# and every invocation where orphans do not come to the runner (gVisor).
import ctypes
import gc
import importlib.util
import inspect
import io
import json
import os
import select
import signal
import socket
import struct
import sys
import time
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
    """Processes alive in the container but init, this runner and its zygote."""
    mine = {1, os.getpid()} | ({ZYGOTE.pid} if ZYGOTE else set())
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


def sweep(tops, force=False):
    """Kills every process of the function's user and empties tops, as that user
    (nothing to do when nothing is left over: the common case costs no process).
    The zygote, a process of that user, goes with it."""
    if not force and not left_over(tops) and zygote_fit():
        return
    drop_zygote()
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
            reap()
            return
        tops = []  # emptied; only the kill is repeated while the killed ones exit
    raise Unswept("processes of the function outlived the sweep")



class Zygote:
    """The function imported once, in a process of the function's user that forks
    one child per invocation (see the top of this file)."""

    def __init__(self, pid, sock, err):
        self.pid, self.sock, self.err, self.ready = pid, sock, err, False


ZYGOTE = None
# the function cannot be imported once (its import failed or started threads)
NO_ZYGOTE = False


def zygote_fit():
    """Whether the zygote (if any) is waiting, alone, as it was made."""
    if ZYGOTE is None:
        return True
    try:
        with open("/proc/%d/stat" % ZYGOTE.pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open("/proc/%d/status" % ZYGOTE.pid) as f:
            threads = [line for line in f if line.startswith("Threads:")]
    except (OSError, IndexError):
        return False
    return state in ("S", "R") and threads == ["Threads:\t1\n"]


def drop_zygote():
    """Forgets the zygote (a sweep kills it, a dead one is reaped)."""
    global ZYGOTE
    if ZYGOTE is not None:
        ZYGOTE.sock.close()
        os.close(ZYGOTE.err)
        ZYGOTE = None


def reap():
    """Collects the runner's exited children but the zygote (whose end
    zygote_ready reads): killed ones, and orphans it was made the parent of."""
    me, keep = os.getpid(), ZYGOTE.pid if ZYGOTE else None
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == keep:
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == me:
            try:
                os.waitpid(int(name), os.WNOHANG)
            except ChildProcessError:
                pass


def zygote_main(sock, err_w):
    """In the zygote: the function's user, the function imported, then a fork per
    invocation. Exit 3: the import failed; 4: the import started threads."""
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    # its only descriptors: what the import prints goes to err_w; the channel is 3
    channel = os.dup(sock.fileno())
    os.dup2(null, 0)
    os.dup2(err_w, 1)
    os.dup2(err_w, 2)
    os.dup2(channel, 3)
    os.closerange(4, 1 << 16)
    channel = socket.socket(fileno=3)
    become_function_user()
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE: no invocation opens its memory
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    sys.stdout = sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
    sys.argv = ["-c"] + ARGS
    cold = {"__name__": "gitfaas_runner", "__builtins__": __builtins__}
    try:
        exec(COLD, cold)
        function = cold["prepare"](*ARGS)
    except BaseException:
        os._exit(3)
    if len(os.listdir("/proc/self/task")) != 1:
        os._exit(4)
    gc.collect()
    gc.freeze()
    channel.sendall(b"Y")
    while True:
        try:
            _, ancillary, _, _ = channel.recvmsg(1, socket.CMSG_SPACE(3 * 4))
        except OSError:
            os._exit(0)
        fds = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += struct.unpack("%di" % (len(data) // 4), data[: len(data) - len(data) % 4])
        if len(fds) != 3:
            os._exit(0)
        # the invocation is a grandchild: its parent exits at once, so it is the
        # runner's (a subreaper) to wait for, whatever becomes of the zygote
        told, tell = os.pipe()
        parent = os.fork()
        if parent == 0:
            os.close(told)
            pid = os.fork()
            if pid == 0:
                os.close(tell)
                invocation(cold, function, fds)
            try:
                os.write(tell, struct.pack(">i", pid))
            finally:
                os._exit(0)
        os.close(tell)
        for fd in fds:
            os.close(fd)
        os.waitpid(parent, 0)  # from here on the invocation is the runner's child
        pid = os.read(told, 4)
        os.close(told)
        channel.sendall(pid if len(pid) == 4 else struct.pack(">i", -1))


def invocation(cold, function, fds):
    """In a child of the zygote: one invocation, with the runner's pipes as stdio."""
    code = 1
    try:
        os.setsid()
        keep_only(*fds)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        libc.prctl(4, 1, 0, 0, 0)  # the function's own process is as dumpable as a cold one
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
        try:
            cold["run"](function, sys.stdin)
            code = 0
        except SystemExit as end:
            if end.code is None or isinstance(end.code, int):
                code = end.code or 0
            else:
                sys.stderr.write(str(end.code) + "\n")
                code = 1
        except BaseException:
            traceback.print_exc()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
    finally:
        os._exit(code & 0xFF)


def start_zygote():
    """Makes a zygote, if the function may have one now (/input empty)."""
    global ZYGOTE
    if NO_ZYGOTE or ZYGOTE is not None or os.listdir("/input"):
        return
    ours, theirs = socket.socketpair()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            os.close(err_r)
            zygote_main(theirs, err_w)
        finally:
            os._exit(1)
    theirs.close()
    os.close(err_w)
    os.set_blocking(err_r, False)
    ZYGOTE = Zygote(pid, ours, err_r)


def zygote_ready():
    """Waits for the zygote's import; False (and no zygote from now on, when the
    import itself is to blame) if it did not become ready."""
    global NO_ZYGOTE
    if ZYGOTE.ready:
        return True
    try:
        ZYGOTE.ready = ZYGOTE.sock.recv(1) == b"Y"
    except OSError:
        ZYGOTE.ready = False
    if not ZYGOTE.ready:
        try:
            _, status = os.waitpid(ZYGOTE.pid, 0)
            NO_ZYGOTE = os.WIFEXITED(status) and os.WEXITSTATUS(status) in (3, 4)
        except ChildProcessError:
            pass
        drop_zygote()
    return ZYGOTE is not None


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


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def wait_for(pid, options):
    """waitpid, for a child of the runner's or an invocation of the zygote's: one
    that is not the runner's yet (its parent's exit is being seen to) is not done.
    One that never becomes the runner's within 5 s is taken for killed, and the
    function is imported per invocation from then on."""
    global NO_ZYGOTE, ORPHAN_SINCE
    try:
        found = os.waitpid(pid, options)
        ORPHAN_SINCE = None
        return found
    except ChildProcessError:
        ORPHAN_SINCE = ORPHAN_SINCE or time.monotonic()
        if time.monotonic() - ORPHAN_SINCE < 5.0:
            return 0, 0
        ORPHAN_SINCE, NO_ZYGOTE = None, True
        sweep([], force=True)
        return pid, signal.SIGKILL


ORPHAN_SINCE = None


def to_zygote():
    """Hands an invocation to the zygote, whose child gets the pipes' ends.
    Returns (its pid, stdin writer, stdout reader, stderr reader), or None when
    the zygote did not answer (it is swept away)."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = None
    try:
        ZYGOTE.sock.sendmsg([b"I"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("3i", in_r, out_w, err_w))])
        if select.select([ZYGOTE.sock], [], [], 5.0)[0]:
            raw = read_exactly(ZYGOTE.sock, 4)
            pid = struct.unpack(">i", raw)[0] if raw else None
            pid = pid if pid and pid > 0 else None
    except OSError:
        pass
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    if pid is None:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        sweep([], force=True)
        return None
    os.set_blocking(in_w, False)
    return pid, in_w, out_r, err_r


def invoke(request):
    global NO_ZYGOTE
    if os.listdir("/input"):
        # data links: the import must see this invocation's data, and no later one
        # may inherit what it did with it: imported per invocation from now on
        NO_ZYGOTE = True
        sweep(SCRATCH + ["/output"], force=ZYGOTE is not None)
    else:
        sweep(SCRATCH + ["/output"])
        start_zygote()
    pipes = to_zygote() if ZYGOTE is not None and zygote_ready() else None
    before = oom_kills()
    status, writing = None, None
    if pipes is not None:
        pid, in_w, out_r, err_r = pipes
        writing = [in_w, memoryview(request), 0]
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(out_r)
            os.close(err_r)
            child(request, out_w, err_w)
        wipe(request)
        os.close(out_w)
        os.close(err_w)
    kinds = {out_r: b"O", err_r: b"E"}
    # what the zygote's import printed goes with its first invocation
    extra = {ZYGOTE.err: b"E"} if pipes is not None else {}
    while kinds:
        if ZYGOTE is None:
            extra.clear()  # swept away: its descriptors are closed
        watched = list(kinds) + list(extra)
        ready, can_write, _ = select.select(watched, [writing[0]] if writing else [], [], 0.02 if status is None else 1.0)
        if can_write:
            fd, view, done = writing
            try:
                done += os.write(fd, view[done : done + CHUNK])
            except BlockingIOError:
                pass
            except OSError:
                done = len(view)  # the function stopped reading its input
            writing[2] = done
            if done >= len(view):
                os.close(fd)
                view.release()
                wipe(request)
                writing = None
        for fd in ready:
            if fd not in kinds and fd not in extra:
                continue  # the zygote's, closed by a sweep in this round
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                continue
            if chunk:
                frame(kinds.get(fd) or extra[fd], chunk)
            elif fd in kinds:
                os.close(fd)
                del kinds[fd]
            else:
                del extra[fd]
        if status is None:
            done, raw = wait_for(pid, os.WNOHANG)
            if done:
                status = raw
                sweep(SCRATCH)  # a background process keeping the pipes open dies here
    if writing:
        os.close(writing[0])
        writing[1].release()
        wipe(request)
    while status is None:
        done, raw = wait_for(pid, 0)
        if done:
            status = raw
            sweep(SCRATCH)
        else:
            time.sleep(0.005)
    reap()
    after = oom_kills()
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        code = 128 + number
        oom = (after > before) if after is not None and before is not None else number == signal.SIGKILL
    else:
        code = os.WEXITSTATUS(status)
        oom = after is not None and before is not None and after > before
    frame(b"X", json.dumps({"code": code, "oom": oom}).encode())
    if ZYGOTE is None and code < 128:
        start_zygote()  # the next invocation's import, off its path


def orphans_come_here():
    """Whether an invocation of a zygote (a grandchild of it whose parent exits)
    becomes the runner's child — not under every kernel: gVisor's gives it to
    init. The zygote needs it: the runner waits for each invocation itself."""
    hold_r, hold_w = os.pipe()
    zygote = os.fork()
    if zygote == 0:
        os.close(hold_w)
        parent = os.fork()
        if parent == 0:
            if os.fork() == 0:
                time.sleep(0.02)
                os._exit(42)
            os._exit(0)
        os.waitpid(parent, 0)
        os.read(hold_r, 1)  # alive until the runner has looked
        os._exit(0)
    os.close(hold_r)
    found, deadline = False, time.monotonic() + 0.5
    while not found and time.monotonic() < deadline:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
            found = pid not in (0, zygote) and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 42
        except ChildProcessError:
            pass
        time.sleep(0.005)
    os.close(hold_w)
    os.waitpid(zygote, 0)
    return found


def serve():
    # a second wall next to the user: not even root's own may open or trace it
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    # orphans are the runner's to wait for: the zygote's invocations among them
    global NO_ZYGOTE
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    NO_ZYGOTE = not orphans_come_here()
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
