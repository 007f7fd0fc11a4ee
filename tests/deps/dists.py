"""Writes the packages tests/tests/dependencies.rs serves from its package index.

  dists.py wheel OUT NAME VERSION MODULE_SOURCE
      a pure-python wheel NAME-VERSION-py3-none-any.whl whose module NAME holds
      MODULE_SOURCE, written by hand (a zip with METADATA, WHEEL and RECORD)
  dists.py large OUT NAME MB
      a wheel NAME-1.0 of package NAME holding MB MiB of random bytes (`blob.bin`),
      whose `size()` is the size of the blob
  dists.py probe OUT TARGETS
      an sdist probe-1.0.tar.gz with an in-tree build backend (no build
      requirements) that, while pip builds it, tries to reach each `host:port` of
      TARGETS (comma-separated; GATEWAY stands for the host's side of the build
      network, found from pip's --proxy) and the proxy for each, reads the build
      container's routes and interfaces, and bakes what it saw into the wheel it
      builds: `probe.SEEN`
"""
import base64
import hashlib
import io
import os
import sys
import tarfile
import zipfile


def write_wheel(out, name, version, files):
    dist = "%s-%s.dist-info" % (name, version)
    files = dict(files)
    files[dist + "/METADATA"] = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    files[dist + "/WHEEL"] = "Wheel-Version: 1.0\nGenerator: gitfaas-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    path = os.path.join(out, "%s-%s-py3-none-any.whl" % (name, version))
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            data = text if isinstance(text, bytes) else text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (member, digest, len(data)))
            wheel.writestr(member, data)
        record.append(dist + "/RECORD,,")
        wheel.writestr(dist + "/RECORD", "\n".join(record) + "\n")
    return os.path.basename(path)


BACKEND = r'''
import json, os, socket, sys

TARGETS = %r


def proxy_of_ancestors():
    """The --proxy pip was given (pip is an ancestor of this hook's process)."""
    pid = os.getppid()
    for _ in range(4):
        try:
            args = open("/proc/%%d/cmdline" %% pid, "rb").read().split(b"\0")
            for i, arg in enumerate(args):
                if arg == b"--proxy":
                    return args[i + 1].decode().split("//")[-1]
            pid = int(open("/proc/%%d/stat" %% pid).read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return None


def attempt(host, port, send=None):
    try:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            if send is None:
                return "connected"
            s.sendall(send)
            return s.recv(64).decode(errors="replace").split("\r\n")[0]
    except OSError as error:
        return "refused: %%s" %% type(error).__name__


def look():
    seen = {"targets": {}}
    proxy = proxy_of_ancestors()
    seen["proxy"] = proxy
    gateway = proxy.rsplit(":", 1)[0] if proxy else "GATEWAY"
    for target in TARGETS:
        host, port = target.replace("GATEWAY", gateway).rsplit(":", 1)
        seen["targets"][target] = attempt(host, port)
    if proxy:
        host, port = proxy.rsplit(":", 1)
        for target in TARGETS:
            ask = ("CONNECT %%s HTTP/1.1\r\nHost: %%s\r\n\r\n" %% (target, target)).encode()
            seen["targets"]["via proxy " + target] = attempt(host, port, ask)
    seen["routes"] = open("/proc/net/route").read().splitlines()[1:]
    seen["interfaces"] = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:])
    return seen


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import dists
    source = "SEEN = %%s\n" %% json.dumps(look())
    return dists.write_wheel(wheel_directory, "probe", "1.0", {"probe.py": source})
'''


def write_probe(out, targets):
    files = {
        "probe-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: probe\nVersion: 1.0\n",
        "probe-1.0/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "probe"\nversion = "1.0"\n',
        "probe-1.0/backend.py": BACKEND % (targets,),
        "probe-1.0/dists.py": open(__file__).read(),
    }
    with tarfile.open(os.path.join(out, "probe-1.0.tar.gz"), "w:gz") as sdist:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    if sys.argv[1] == "wheel":
        out, name, version, source = sys.argv[2:6]
        write_wheel(out, name, version, {name + ".py": source})
    elif sys.argv[1] == "large":
        out, name, mb = sys.argv[2:5]
        source = "import os\n\ndef size():\n    return os.path.getsize(os.path.join(os.path.dirname(__file__), 'blob.bin'))\n"
        write_wheel(out, name, "1.0", {name + "/__init__.py": source, name + "/blob.bin": os.urandom(int(mb) << 20)})
    elif sys.argv[1] == "probe":
        write_probe(sys.argv[2], [t for t in sys.argv[3].split(",") if t])
    else:
        sys.exit("usage: dists.py wheel|large|probe ...")
