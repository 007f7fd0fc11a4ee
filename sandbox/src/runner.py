# gitfaas python runner: reads {"data": ..., "credentials": ...} as JSON on stdin,
# calls main(data, credentials) from the repository's entry file — or, for an
# entry `package.module:function`, that function of the module imported from the
# working directory — and writes the return value as JSON to stdout. Anything the function prints goes to stderr, so
# stdout carries the result alone. An exception raised by importing the entry or by the
# function ends the run with its traceback and then one last stderr line,
# `gitfaas: raised TYPE: MESSAGE`, which the executor lifts into the job's reason.
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


def run(function, stdin):
    """One invocation of `function`: the request from `stdin`, the return value as
    JSON on stdout. Ends with sys.exit on failure."""
    try:
        request = json.load(stdin)
    except ValueError as error:
        fail(2, "job input is not valid json: %s" % error)
    result_out = sys.stdout
    sys.stdout = sys.stderr
    args = [request.get("data"), request.get("credentials") or {}]
    try:
        params = inspect.signature(function).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in params):
            args = args[: len(positional)]
    except (TypeError, ValueError):
        pass
    try:
        value = function(*args)
    except BaseException as error:
        raised(error, "")
    try:
        text = json.dumps(value)
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
