# gitfaas python runner: reads {"data": ..., "credentials": ...} as JSON on stdin,
# calls main(data, credentials) from the repository's entry file — or, for an
# entry `package.module:function`, that function of the module imported from the
# working directory — and writes the return value as JSON to stdout. Anything the function prints goes to stderr, so
# stdout carries the result alone. An exception raised by importing the entry or by the
# function ends the run with its traceback and then one last stderr line,
# `gitfaas: raised TYPE: MESSAGE`, which the executor lifts into the job's reason.
#
# A function taking a third parameter gets a context (see Context): its
# function's state and publish, buffered here and committed by the executor with
# the result. When the request carries "context" (the executor's jobs), stdout
# is {"value": ..., "effects": {"ops": [...], "publish": [...]}}; without it
# (`gitfaas local run`) the state starts empty, is dropped at the end, and
# stdout is the value alone.
import copy
import importlib.util
import inspect
import io
import json
import os
import sys
import traceback


def fail(code, message):
    sys.stderr.write("gitfaas: " + message + "\n")
    sys.stderr.flush()
    sys.exit(code)


def raised(error, where):
    """Ends the run for `error`: its traceback, then the line the job's reason is read from."""
    traceback.print_exc()
    kind = type(error).__qualname__
    message = " ".join(str(error).split())[:500]
    sys.stderr.write("gitfaas: raised %s%s%s\n" % (kind, ": " + message if message else "", where))
    sys.stderr.flush()
    sys.exit(1)


def load(code_dir, workdir, entry):
    """The function to call: main of the entry file, or module:function."""
    module_name, _, function_name = entry.partition(":")
    is_module = function_name and all(part.isidentifier() and part.isascii() for part in module_name.split(".") + [function_name])
    path = os.path.join(code_dir, entry)
    search = [workdir] if is_module else [os.path.dirname(path), workdir]
    for directory in reversed(search + [code_dir]):
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path.insert(0, directory)
    # a dependency layer (python3 -I ignores PYTHONPATH): after the code, like site-packages
    deps = os.environ.get("GITFAAS_PYTHON_DEPS")
    if deps and deps not in sys.path:
        sys.path.append(deps)
    if not is_module and not os.path.isfile(path):
        fail(2, "entry file %r not found in the repository" % entry)
    try:
        if is_module:
            module = importlib.import_module(module_name)
        else:
            spec = importlib.util.spec_from_file_location("gitfaas_main", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    except BaseException as error:
        raised(error, " (while importing %r)" % entry)
    function = getattr(module, function_name if is_module else "main", None)
    if not callable(function):
        fail(2, "rejected: %r defines no callable %s" % (entry, function_name if is_module else "main"))
    return function


def prepare(code_dir, entry, workdir="."):
    """Enters the working directory and imports the function (what a resident
    runner may do once per sandbox, before any invocation's input exists)."""
    workdir = os.path.normpath(os.path.join(code_dir, workdir))
    os.chdir(workdir)
    return load(code_dir, workdir, entry)


I64 = (-(1 << 63), (1 << 63) - 1)
LIMITS = {"max_key_bytes": 256, "max_value_bytes": 16384, "max_keys": 1024, "max_ops": 1000,
          "max_publishes": 100, "max_publish_bytes": 65536}


class StateError(Exception):
    """A state or publish call the function may not make: a bound, a topic."""


class State:
    """The function's state: the committed values as the job started, with the
    job's own writes; the writes are committed only if the job succeeds."""

    def __init__(self, committed, limits, refusal):
        self._values, self._limits, self._refusal = dict(committed), limits, refusal
        self._ops, self._last = [], {}

    def _key(self, key):
        if self._refusal:
            raise StateError(self._refusal)
        if not isinstance(key, str) or not key:
            raise StateError("a state key is a non-empty string, not %r" % (key,))
        if len(key.encode()) > self._limits["max_key_bytes"]:
            raise StateError("state key of %d bytes; the limit is %d" % (len(key.encode()), self._limits["max_key_bytes"]))
        return key

    def _record(self, key, op):
        if key not in self._values and len(self._values) >= self._limits["max_keys"]:
            raise StateError("state holds %d keys; the limit is %d" % (len(self._values), self._limits["max_keys"]))
        last = self._last.get(key)
        if last is not None and op["op"] == "incr" and self._ops[last]["op"] == "incr":
            self._ops[last]["by"] = op["by"] + self._ops[last]["by"]  # one change per key and run
            return
        if len(self._ops) >= self._limits["max_ops"]:
            raise StateError("%d state changes; the limit is %d per job" % (len(self._ops), self._limits["max_ops"]))
        self._last[key] = len(self._ops)
        self._ops.append(op)

    def get(self, key, default=None):
        key = self._key(key)
        return copy.deepcopy(self._values[key]) if key in self._values else default

    def put(self, key, value):
        key = self._key(key)
        text = json.dumps(value)
        if len(text.encode()) > self._limits["max_value_bytes"]:
            raise StateError("state value of %d bytes for %r; the limit is %d" % (len(text.encode()), key, self._limits["max_value_bytes"]))
        self._record(key, {"op": "put", "key": key, "value": json.loads(text)})
        self._values[key] = json.loads(text)

    def incr(self, key, by=1):
        key = self._key(key)
        if not isinstance(by, int) or isinstance(by, bool) or not I64[0] <= by <= I64[1]:
            raise StateError("incr takes a 64-bit integer, not %r" % (by,))
        now = self._values.get(key)
        now = now if isinstance(now, int) and not isinstance(now, bool) else 0
        self._record(key, {"op": "incr", "key": key, "by": by})
        self._values[key] = min(max(now + by, I64[0]), I64[1])
        return self._values[key]

    def delete(self, key):
        key = self._key(key)
        self._record(key, {"op": "delete", "key": key})
        self._values.pop(key, None)

    def keys(self, prefix=""):
        if self._refusal:
            raise StateError(self._refusal)
        return sorted(k for k in self._values if k.startswith(prefix))


class Context:
    """What a function's third parameter is: ctx.state, ctx.publish, ctx.job."""

    def __init__(self, context):
        local = context is None
        context = context or {}
        self.job = context.get("job") or {}
        self._limits = dict(LIMITS, **(context.get("limits") or {}))
        refusal = context.get("refusal")
        self.state = State(context.get("state") or {}, self._limits, refusal)
        self._topics = None if local else set(context.get("topics") or [])
        self._published = []

    def publish(self, topic, value, key=None):
        if self._topics is not None and topic not in self._topics:
            raise StateError("topic %r is not one this function may publish to" % (topic,))
        if key is not None and not isinstance(key, str):
            raise StateError("a record's key is a string or None, not %r" % (key,))
        text = json.dumps(value)
        if len(text.encode()) > self._limits["max_publish_bytes"]:
            raise StateError("a record of %d bytes; the limit is %d" % (len(text.encode()), self._limits["max_publish_bytes"]))
        if len(self._published) >= self._limits["max_publishes"]:
            raise StateError("%d records published; the limit is %d per job" % (len(self._published), self._limits["max_publishes"]))
        self._published.append({"topic": topic, "key": key, "value": json.loads(text)})

    def effects(self):
        return {"ops": self.state._ops, "publish": self._published}


def run(function, stdin):
    """One invocation of `function`: the request from `stdin`, the return value as
    JSON on stdout. Ends with sys.exit on failure."""
    try:
        request = json.load(stdin)
    except ValueError as error:
        fail(2, "job input is not valid json: %s" % error)
    result_out = sys.stdout
    sys.stdout = sys.stderr
    ctx = Context(request.get("context"))
    args = [request.get("data"), request.get("credentials") or {}, ctx]
    try:
        params = inspect.signature(function).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) < 3:
            # main(*args) keeps (data, credentials): the context goes to a third parameter only
            varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
            args = args[:2] if varargs else args[: len(positional)]
    except (TypeError, ValueError):
        args = args[:2]
    try:
        value = function(*args)
    except BaseException as error:
        raised(error, "")
    try:
        text = json.dumps(value)
        if "context" in request:
            text = '{"value": %s, "effects": %s}' % (text, json.dumps(ctx.effects()))
    except (TypeError, ValueError) as error:
        fail(3, "main returned a value that is not json-serialisable: %s" % error)
    result_out.write(text)
    result_out.flush()


def main():
    code_dir, entry = sys.argv[1], sys.argv[2]
    workdir = sys.argv[3] if len(sys.argv) > 3 else "."
    # the input is read (and checked) before the function is imported
    data = sys.stdin.read()
    function = prepare(code_dir, entry, workdir)
    run(function, io.StringIO(data))


if __name__ == "__main__":
    main()
