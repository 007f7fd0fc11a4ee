#!/usr/bin/env python3
"""Import circles between the modules of each crate: module a names crate::b (or
super::b) while b names a, directly or through others. Test modules and comments
are left aside. Prints each circle and exits 1 if there is any (.ci/run runs it)."""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRATES = ["common", "frontend", "executor", "sandbox", "observer", "scaler", "cli", "bench", "tests"]


def module_of(crate, path):
    parts = os.path.relpath(path, f"{crate}/src")[:-3].split("/")
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return "::".join(parts)


def code_of(path):
    source = re.split(r"#\[cfg\(test\)\]\s*mod tests", open(path).read())[0]
    return "\n".join(line.split("//")[0] for line in source.split("\n"))


def edges_of(crate):
    files = [os.path.join(d, f) for d, _, fs in os.walk(f"{crate}/src") for f in fs if f.endswith(".rs")]
    modules = {module_of(crate, f) for f in files}
    edges = defaultdict(set)
    for path in files:
        module = module_of(crate, path)
        parent = "::".join(module.split("::")[:-1])
        code = code_of(path)
        named = re.findall(r"crate::([a-z_][a-z0-9_:]*)", code)
        named += [f"{parent}::{n}".strip(":") for n in re.findall(r"(?<![a-z_:])super::([a-z_][a-z0-9_:]*)", code)]
        for name in named:
            parts = name.split("::")
            target = next(("::".join(parts[:k]) for k in range(len(parts), 0, -1) if "::".join(parts[:k]) in modules), None)
            if target and target != module and not module.startswith(target + "::") and not target.startswith(module + "::"):
                edges[module].add(target)
    return modules, edges


def circles(modules, edges):
    """Tarjan's strongly connected components of more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    return found


os.chdir(ROOT)
sys.setrecursionlimit(10000)
total = 0
for crate in CRATES:
    if os.path.isdir(f"{crate}/src"):
        for circle in circles(*edges_of(crate)):
            total += 1
            print(f"{crate}: {' <-> '.join(circle)}")
print("import circles:", total)
sys.exit(1 if total else 0)
