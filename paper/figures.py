#!/usr/bin/env python3
"""Figures of the gitfaas paper, generated from the JSON the benchmark and tests write.

    figures.py OUT_DIR

Inputs (paths relative to the repository root):
  bench/results.json         scripts/bench.sh (gitfaas-bench all): floors, cold jobs, submit rate,
                             and (scripts/bench.sh burst) the burst sweep, its broker floor and
                             the CPU per job; a section the file lacks gives a figure that says
                             so and macros that read "n/a", not a failed build
  bench/git.json             cargo run -p gitfaas-executor --release --bin bench-git
  paper/data/scaling-step.json  the observer's reports of one run of tests/tests/scaling.rs
                             (transcribed from paper/observer.md; the test writes no JSON)
Every number drawn comes from one of these files; nothing is typed in here. The architecture
diagram is drawn here too (no data; the topic names come from config/base.yaml).
Also writes OUT_DIR/numbers.tex: the figures' numbers as LaTeX macros, so the text can
quote them from the same files (and the CPU-per-job table, as the macro \CpuTable).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "paper", "build")
os.makedirs(OUT, exist_ok=True)

plt.rcParams.update({"font.size": 9, "figure.dpi": 150, "savefig.bbox": "tight", "axes.grid": True,
                     "grid.alpha": 0.3})


def load(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return json.load(f)


bench = load("bench/results.json")
git = load("bench/git.json")
step = load("paper/data/scaling-step.json")


def save(fig, name):
    fig.savefig(os.path.join(OUT, name))
    plt.close(fig)
    print(f"figure {name}", file=sys.stderr)


NA = "n/a"  # what a macro reads when its data are missing


def dig(obj, *path):
    """obj[path[0]][path[1]]…, or None where a part of the path is missing."""
    for key in path:
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def drawn(name, what, draw):
    """Draws a figure from bench/results.json; where its data are missing, a figure saying so."""
    try:
        draw()
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as error:
        plt.close("all")
        fig, ax = plt.subplots(figsize=(6.4, 1.0))
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"no data: {what} not in bench/results.json ({error!r})", ha="center", va="center",
                fontsize=8)
        save(fig, name)
        print(f"warning: {name} drawn empty: {what} missing ({error!r})", file=sys.stderr)


floors, cold, ratios = bench.get("floors", {}), bench.get("cold_job", {}), bench.get("ratios", {})


# 1. Latency of a cold job and its parts against the floors of the same run (log scale).
def latency_figure():
    rows = [
        ("broker\nround trip\n(floor)", floors["broker_round_trip_ms"], "floor"),
        ("queue\n(submitted\n→started)", cold["queue_ms"], "job"),
        ("result visible\n(finished\n→client)", cold["result_visible_ms"], "job"),
        ("docker exec\n(floor)", floors["docker_exec_ms"], "floor"),
        ("run\n(started\n→finished)", cold["run_ms"], "job"),
        ("cold job\nend to end\n(client)", cold["e2e_ms"], "job"),
        ("docker\nrun --rm\n(floor)", floors["docker_run_ms"], "floor"),
    ]
    fig, ax = plt.subplots(figsize=(7.2, 3.2))
    xs = range(len(rows))
    colors = ["#999999" if kind == "floor" else "#1f77b4" for _, _, kind in rows]
    p50 = [max(s["p50"], 0.05) for _, s, _ in rows]
    p95 = [max(s["p95"], 0.05) for _, s, _ in rows]
    ax.bar(xs, p50, color=colors, width=0.6, label="p50")
    ax.scatter(xs, p95, color="black", marker="_", s=300, zorder=3, label="p95")
    for x, (_, s, _) in zip(xs, rows):
        ax.annotate(f"{s['p50']:.3g}", (x, max(s["p50"], 0.05)), textcoords="offset points", xytext=(0, -10),
                    ha="center", fontsize=7, color="white" if s["p50"] > 2 else "black")
    ax.set_yscale("log")
    ax.set_ylim(0.15, 600)
    ax.set_ylabel("ms (log scale)")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r[0] for r in rows], fontsize=6.5)
    ax.set_title(f"Cold job of examples/hello-python vs floors (n = {cold['e2e_ms']['n']}; "
                 f"grey = floor; {bench['cores']} cores, {bench['profile']})", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    save(fig, "latency.pdf")


drawn("latency.pdf", "cold_job or floors", latency_figure)


# 2. Ratios to floors, with the targets issue 20 set (where it set one).
def ratios_figure():
    targets = {  # (label, target, direction) — the targets are issue 20's, not measurements
        "cold_e2e_p50_to_docker_run_p50": ("cold job e2e / docker run", 1.1, "≤"),
        "queue_p50_to_broker_round_trip_p50": ("queue / broker round trip", None, None),
        "result_visible_p50_to_broker_round_trip_p50": ("result visible / broker round trip", None, None),
        "submit_rate_to_produce_rate": ("submit rate / acked produce rate", 0.8, "≥"),
    }
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    keys = [k for k in targets if k in ratios]
    ys = range(len(keys))
    vals = [ratios[k] for k in keys]
    ax.barh(list(ys), vals, color="#1f77b4", height=0.5)
    for y, k in zip(ys, keys):
        _, target, direction = targets[k]
        ax.annotate(f"{ratios[k]:.2f}×", (max(ratios[k], target or 0), y), textcoords="offset points", xytext=(4, -3),
                    fontsize=7)
        if target is not None:
            ax.plot([target, target], [y - 0.35, y + 0.35], color="red", lw=1.5)
            ax.annotate(f"target {direction} {target}", (target, y - 0.35), textcoords="offset points", xytext=(3, -1),
                        fontsize=6, color="red")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([targets[k][0] for k in keys], fontsize=7)
    ax.set_xlabel("ratio to the floor measured in the same run (p50; rates for the last row)")
    ax.invert_yaxis()
    save(fig, "ratios.pdf")


drawn("ratios.pdf", "ratios", ratios_figure)


# 3. Git: fresh clone vs re-fetch into the cached mirror, each with a checkout.
fig, ax = plt.subplots(figsize=(4.2, 2.4))
series = [("fresh clone", git["fresh_clone_ms"]), ("cached re-fetch", git["cached_refetch_ms"])]
for i, (label, s) in enumerate(series):
    ax.scatter([i] * len(s["all"]), [v / 1000 for v in s["all"]], color="#1f77b4", s=14, zorder=3)
    ax.plot([i - 0.2, i + 0.2], [s["median"] / 1000] * 2, color="black", lw=2)
    ax.annotate(f"median {s['median'] / 1000:.2f} s", (i + 0.22, s["median"] / 1000), fontsize=7, va="center")
ax.set_xticks([0, 1])
ax.set_xticklabels([s[0] for s in series])
ax.set_xlim(-0.5, 1.9)
ax.set_ylabel("s (fetch + checkout)")
r = git["repository"]
ax.set_title(f"{r['commits']} commits, {r['files']} files, {git['runs']} runs each", fontsize=8)
save(fig, "git.pdf")

# 4. The observer's step response: workers, desired workers, measured λ and backlog.
rep = step["reports"]
t = [x["t"] for x in rep]
fig, (a1, a2) = plt.subplots(2, 1, figsize=(6.4, 3.8), sharex=True)
a1.step(t, [x["workers"] for x in rep], where="post", label="live workers c", color="#1f77b4")
a1.step(t, [x["desired"] for x in rep], where="post", label="desired", color="#ff7f0e", ls="--")
for x in rep:
    if x["action"] in ("add", "remove"):
        a1.annotate(x["action"], (x["t"], x["desired"]), textcoords="offset points", xytext=(0, 5), fontsize=6,
                    ha="center", color="#d62728")
a1.axhline(step["parameters"]["partitions"], color="grey", lw=0.8, ls=":")
a1.annotate("partitions (cap)", (t[0], step["parameters"]["partitions"]), textcoords="offset points",
            xytext=(0, 2), fontsize=6, color="grey")
a1.set_ylabel("workers")
a1.set_ylim(0, step["parameters"]["partitions"] + 1)
a1.legend(fontsize=7, loc="lower center", ncol=2)
a2.plot(t, [x["backlog"] for x in rep], marker="o", ms=3, label="backlog (jobs)", color="#2ca02c")
a2b = a2.twinx()
a2b.plot(t, [x["lambda"] for x in rep], marker="s", ms=3, label="λ measured (jobs/s)", color="#9467bd")
a2b.set_ylabel("λ (jobs/s)")
a2b.grid(False)
a2.set_ylabel("backlog")
a2.set_xlabel("t (s) from the start of the step")
a2.axvline(0, color="black", lw=0.8)
h1, l1 = a2.get_legend_handles_labels()
h2, l2 = a2b.get_legend_handles_labels()
a2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
save(fig, "step.pdf")


# 5. The architecture (a diagram, no data): services, topics, stores; topic names from config/base.yaml.
def base_topics():
    topics, inside = {}, False
    with open(os.path.join(ROOT, "config", "base.yaml")) as f:
        for line in f:
            if line.strip() == "topics:":
                inside = True
            elif inside and line.startswith("    ") and ":" in line:
                k, v = line.strip().split(":", 1)
                topics[k] = v.strip()
            elif inside:
                break
    return topics


topics = base_topics()
fig, ax = plt.subplots(figsize=(7.2, 3.6))
ax.set_xlim(-2, 101)
ax.set_ylim(0, 52)
ax.set_axis_off()


def box(x, y, w, h, text, color, style="round,pad=0.4"):
    ax.add_patch(matplotlib.patches.FancyBboxPatch((x, y), w, h, boxstyle=style, fc=color, ec="black", lw=0.8))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=7)


def arrow(x1, y1, x2, y2, text="", dy=1.2):
    ax.annotate("", (x2, y2), (x1, y1), arrowprops=dict(arrowstyle="->", lw=0.8))
    if text:
        ax.text((x1 + x2) / 2, (y1 + y2) / 2 + dy, text, ha="center", fontsize=6)


svc, top, store = "#cfe2f3", "#fff2cc", "#e6e6e6"
box(0, 36, 12, 8, "client\n(REST, web app)", store)
box(24, 36, 13, 8, "frontend\n(actix-web)", svc)
box(24, 22, 13, 7, "Redis\n(view of jobs)", store)
box(0, 20, 12, 7, "Keycloak\n(OIDC issuer)", store)
box(44, 40, 16, 6, topics.get("jobs", "jobs"), top, "square,pad=0.3")
box(44, 28, 16, 6, topics.get("results", "results"), top, "square,pad=0.3")
box(44, 16, 16, 6, topics.get("observer", "observer"), top, "square,pad=0.3")
box(44, 4, 16, 6, topics.get("dead_letter", "dead-letter"), top, "square,pad=0.3")
box(70, 34, 13, 10, "executor × N\n(slots, git2\nmirror cache)", svc)
box(88, 34, 11, 10, "job\ncontainer\n(no network)", store)
box(70, 14, 13, 8, "observer\n(M/M/c)", svc)
box(86, 2, 13, 8, "scaler", svc)
arrow(12.5, 40.5, 23.5, 40.5, "POST /v1/jobs")
arrow(23.5, 38.5, 12.5, 38.5, "status, result", dy=-2.8)
arrow(30.5, 35.5, 30.5, 29.5, "")
arrow(12.5, 26, 23.5, 35.5, "")
ax.text(15, 31, "JWKS", fontsize=6)
arrow(37.5, 42, 43.5, 43, "publish")
arrow(43.5, 31, 37.5, 38, "")
ax.text(37, 33, "consume", fontsize=6)
arrow(60.5, 43, 69.5, 41, "consume")
arrow(69.5, 37, 60.5, 31, "")
ax.text(61.5, 35.2, "started,\nfinished", fontsize=6)
arrow(83.5, 39, 87.5, 39, "")
arrow(69.5, 35, 60.5, 19, "")
ax.text(63, 23.5, "heartbeats", fontsize=6, rotation=-58)
arrow(69.5, 34.5, 60.5, 7, "after retries", dy=-6)
arrow(60.5, 18, 69.5, 17, "")
arrow(69.5, 19, 60.5, 20, "reports", dy=0.5)
arrow(83.5, 14, 90, 10.5, "add/remove", dy=1.5)
ax.annotate("", (76, 33.5), (92, 10.5), arrowprops=dict(arrowstyle="->", lw=0.8, ls="--"))
ax.text(88, 22, "starts /\nSIGTERMs", fontsize=6)
ax.text(52, 49, "Kafka topics", ha="center", fontsize=7, style="italic")
save(fig, "architecture.pdf")


# 6. The queue under load: the burst sweep (closed-loop clients) against each executor configuration.
sweep = bench.get("burst_sweep") or {}
SWEEP_CONFIGS = [  # (key in burst_sweep, label, colour, line style); the 2-executor runs are optional
    ("shipped", "shipped", "#1f77b4", "-"),
    ("tuned", "tuned", "#ff7f0e", "-"),
    ("shipped_2_executors", "shipped, 2 executors", "#1f77b4", "--"),
    ("tuned_2_executors", "tuned, 2 executors", "#ff7f0e", "--"),
]
THROUGHPUT_TARGET = 150  # jobs/s at 16 clients: a target, not a measurement
QUEUE_SLACK_MS = 10  # target (b): queue p50 at 16 clients ≤ 16 / slots × run p50 + this


def points(key):
    """The sweep's points of one configuration that have a rate, by client count."""
    found = [p for p in dig(sweep, key, "points") or [] if p.get("jobs_per_s") is not None and "clients" in p]
    return sorted(found, key=lambda p: p["clients"])


def point(key, clients):
    return next((p for p in points(key) if p["clients"] == clients), None)


def slots_of(key):
    """All of a configuration's slots (every executor's), as the points count them."""
    pts = points(key)
    return dig(pts[-1], "slots") if pts else None


def queue_bound(key, clients=16):
    """Target (b)'s bound: clients / slots × run p50 + 10 ms."""
    return clients / slots_of(key) * dig(point(key, clients), "run_ms", "p50") + QUEUE_SLACK_MS


def broker_floor(clients):
    found = [p for p in dig(sweep, "broker_floor", "points") or [] if p.get("clients") == clients]
    return found[0] if found else None


def queue_figure():
    present = [c for c in SWEEP_CONFIGS if points(c[0])]
    if not present:
        raise KeyError("burst_sweep.shipped.points")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7.2, 3.0))
    clients = sorted({p["clients"] for key, *_ in present for p in points(key)})
    top = max(max(p["jobs_per_s"] for key, *_ in present for p in points(key)), THROUGHPUT_TARGET) * 1.45
    for key, label, color, ls in present:
        pts, slots = points(key), slots_of(key)
        xs = [p["clients"] for p in pts]
        a1.plot(xs, [p["jobs_per_s"] for p in pts], color=color, ls=ls, marker="o", ms=3.5,
                label=f"{label} ({slots:g} slots)")
        a1.axvline(slots, color=color, ls=":", lw=1)
        a1.text(slots, 0.03, f" {slots:g} slots", transform=a1.get_xaxis_transform(), color=color, fontsize=6.5,
                rotation=90, va="bottom", ha="right")
        for name, marker, lw, alpha in (("p50", "o", 1.5, 1.0), ("p95", "v", 0.8, 0.6)):
            a2.plot(xs, [max(dig(p, "queue_ms", name) or 0, 0.5) for p in pts], color=color, ls=ls, marker=marker,
                    ms=3, lw=lw, alpha=alpha)
        try:
            a2.scatter([16], [queue_bound(key)], marker="_", s=260, color="red", zorder=3, lw=1.5)
        except (TypeError, ZeroDivisionError):
            pass  # no 16-client point, or no slots
    a1.axhline(THROUGHPUT_TARGET, color="red", lw=1)
    a1.text(clients[-1], THROUGHPUT_TARGET, f"target: ≥ {THROUGHPUT_TARGET} jobs/s at 16 clients", color="red",
            fontsize=6.5, va="bottom", ha="right")
    floor16, shipped16 = broker_floor(16), point("shipped", 16)
    if floor16 and shipped16:
        a1.text(0.98, 0.03, f"broker floor,\n16 clients:\n{floor16['jobs_per_s']:.0f} jobs/s\n"
                f"({floor16['jobs_per_s'] / shipped16['jobs_per_s']:.0f}× shipped,\noff this scale)",
                transform=a1.transAxes, ha="right", va="bottom", fontsize=6.5, color="#555555")
    a1.set_ylim(0, top)
    a1.set_ylabel("jobs/s (succeeded)")
    a1.legend(fontsize=6.5, loc="upper left")
    a2.set_yscale("log")
    a2.set_ylabel("queue, submitted→started (ms, log)")
    lines = matplotlib.lines.Line2D
    a2.legend([lines([], [], color="black", marker="o", ms=3, lw=1.5),
               lines([], [], color="black", marker="v", ms=3, lw=0.8, alpha=0.6),
               lines([], [], color="red", marker="_", ms=10, lw=0, mew=1.5)],
              ["p50", "p95", "target (b): bound at 16 clients"], fontsize=6.5,
              loc="upper left")
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_xticks(clients)
        a.set_xticklabels([str(c) for c in clients])
        a.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        a.set_xlabel("concurrent clients (closed loop)")
    per_point = dig(sweep, "shipped", "jobs_per_point")
    fig.suptitle(f"Warm jobs of one function, {per_point} per point; {bench.get('cores')} cores", fontsize=8)
    fig.tight_layout()
    save(fig, "queue.pdf")


drawn("queue.pdf", "burst_sweep", queue_figure)


# 7. CPU per job by process during a burst from 16 clients: a LaTeX table (the macro \CpuTable).
def percent(v):
    return f"{round(100 * v):d}\\,\\%".replace("-", "−")


def tex(text):
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"), ("_", r"\_"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(a, b)
    return text


def cpu_table():
    cpu = sweep.get("cpu_per_job") or {}
    configs = [c for c in ("shipped", "tuned") if dig(cpu, c, "rows")]
    if not configs:
        return r"\emph{No CPU-per-job figures in \texttt{bench/results.json}.}"
    rows = {c: {r["process"]: r for r in cpu[c]["rows"]} for c in configs}
    order = [r["process"] for r in cpu[configs[0]]["rows"]]
    order += [n for c in configs[1:] for n in rows[c] if n not in order]

    def cells(config, name):
        r = rows[config].get(name)
        return [f"{r['ms_per_job']:.2f}".replace("-", "−"), percent(r["share"])] if r else ["", ""]

    head = " & ".join(rf"\multicolumn{{2}}{{c}}{{{c} ({dig(cpu, c, 'jobs')} jobs)}}" for c in configs)
    out = [r"\begin{tabular}{l" + "rr" * len(configs) + "}", r"\hline", f"process & {head} \\\\",
           " & " + " & ".join(["ms/job & share"] * len(configs)) + r" \\", r"\hline"]
    out += [" & ".join([tex(name)] + [x for c in configs for x in cells(c, name)]) + r" \\" for name in order]
    machine = []
    for c in configs:
        ms, cores = dig(cpu, c, "machine", "ms_per_job"), dig(cpu, c, "machine", "busy_cores")
        machine += [f"{ms:.2f}" if ms is not None else "", f"{cores:.2f} cores" if cores is not None else ""]
    out += [r"\hline", " & ".join([r"whole machine (\texttt{/proc/stat})"] + machine) + r" \\", r"\hline",
            r"\end{tabular}"]
    return "%\n".join(out)


# Numbers quoted in the text, from the same files.
def fmt(v, digits=3):
    return f"{v:.{digits}g}"


def quote(get, form=str):
    """A macro's text: form(get()), or "n/a" where the data are missing."""
    try:
        value = get()
        return NA if value is None else form(value)
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
        return NA


def verdict(ok):
    return NA if ok is None else ("met" if ok else "not met")


def whole(v):
    return f"{v:.0f}"


def two(v):
    return f"{v:.2f}"


def one(v):
    return f"{v:.1f}"


def at(key, clients, *path):
    return dig(point(key, clients), *path)


def listed(values):
    values = [str(v) for v in values]
    return ", ".join(values[:-1]) + " and " + values[-1] if len(values) > 1 else "".join(values)


def settings_of(env):
    """The tuned configuration's settings, as config keys: GITFAAS__EXECUTOR__SLOTS=8 → executor.slots = 8."""
    items = [f"\\texttt{{{tex(k.lower().replace('gitfaas__', '').replace('__', '.'))}}} = {tex(str(v))}"
             for k, v in sorted(env.items())]
    return listed(items) if items else "the shipped settings"


def cpu_rows(config):
    """CPU rows of one configuration, largest first, without the unattributed remainder."""
    rows = dig(sweep, "cpu_per_job", config, "rows") or []
    return sorted((r for r in rows if not r["process"].startswith("unattributed")), key=lambda r: -r["ms_per_job"])


def cpu_row(config, process):
    return next((r for r in cpu_rows(config) if r["process"] == process), None)


def cpu_machine(config, *path):
    return dig(sweep, "cpu_per_job", config, "machine", *path)


def ratio_16_to_2(key):
    return at(key, 16, "jobs_per_s") / at(key, 2, "jobs_per_s")


def queue_ratio(key):
    return at(key, 16, "queue_ms", "p50") / queue_bound(key)


def holds(check):
    try:
        return check()
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
        return None


def warm_verdict():
    """Target (d): a sequential warm job ≤ 12 ms p50 end to end, in the warm part and at the tuned 1-client point."""
    found = [v for v in (dig(bench, "warm_job", "e2e_ms", "p50"), at("tuned", 1, "e2e_ms", "p50")) if v is not None]
    if not found:
        return NA
    met = [v <= WARM_TARGET_MS for v in found]
    return "met" if all(met) else ("not met" if not any(met) else "met by one of the two measurements")


WARM_TARGET_MS = 12  # target (d), not a measurement
present_two = [key for key, *_ in SWEEP_CONFIGS if key.endswith("_2_executors") and points(key)]
submit = bench.get("submit", {})
macros = {
    "BenchDate": quote(lambda: bench["at"][:10]),
    "BenchCores": quote(lambda: bench["cores"]),
    "ColdN": quote(lambda: cold["e2e_ms"]["n"]),
    "ColdEtoEPfifty": quote(lambda: cold["e2e_ms"]["p50"], fmt),
    "ColdEtoEPninetyfive": quote(lambda: cold["e2e_ms"]["p95"], fmt),
    "RunPfifty": quote(lambda: cold["run_ms"]["p50"], fmt),
    "QueuePfifty": quote(lambda: cold["queue_ms"]["p50"], fmt),
    "VisiblePfifty": quote(lambda: cold["result_visible_ms"]["p50"], fmt),
    "BrokerRTTPfifty": quote(lambda: floors["broker_round_trip_ms"]["p50"], lambda v: fmt(v, 2)),
    "DockerRunPfifty": quote(lambda: floors["docker_run_ms"]["p50"], fmt),
    "DockerExecPfifty": quote(lambda: floors["docker_exec_ms"]["p50"], fmt),
    "SubmitRate": quote(lambda: submit["submits_per_s"], whole),
    "ProduceRate": quote(lambda: submit["produce_per_s"], whole),
    "SubmitClients": quote(lambda: submit["clients"]),
    "SubmitBytes": quote(lambda: submit["message_bytes"]),
    "RatioColdRun": quote(lambda: ratios["cold_e2e_p50_to_docker_run_p50"], two),
    "RatioSubmit": quote(lambda: ratios["submit_rate_to_produce_rate"], two),
    "RatioQueue": quote(lambda: ratios["queue_p50_to_broker_round_trip_p50"], two),
    "RatioVisible": quote(lambda: ratios["result_visible_p50_to_broker_round_trip_p50"], two),
    "GitFresh": quote(lambda: git["fresh_clone_ms"]["median"] / 1000, two),
    "GitCached": quote(lambda: git["cached_refetch_ms"]["median"] / 1000, two),
    "GitSpeedup": quote(lambda: git["speedup"], two),
    # sequential warm jobs (gitfaas-bench warm)
    "WarmN": quote(lambda: bench["warm_job"]["e2e_ms"]["n"]),
    "WarmEtoEPfifty": quote(lambda: bench["warm_job"]["e2e_ms"]["p50"], fmt),
    # first jobs of new commits (gitfaas-bench first)
    "FirstEtoEPfifty": quote(lambda: bench["first_jobs"]["first_commit"]["e2e_ms"]["p50"], fmt),
    "FirstCachedEtoEPfifty": quote(lambda: bench["first_jobs"]["first_commit_cached_layer"]["e2e_ms"]["p50"], fmt),
    "FirstImportPfifty": quote(
        lambda: bench["first_jobs"]["first_commit_cached_layer"]["function_import_ms"]["p50"], one
    ),
    "WarmDepsEtoEPfifty": quote(lambda: bench["first_jobs"]["warm_with_deps"]["e2e_ms"]["p50"], fmt),
    "WarmVendoredEtoEPfifty": quote(lambda: bench["first_jobs"]["warm_vendored"]["e2e_ms"]["p50"], fmt),
    "RatioFirstRun": quote(lambda: ratios["first_commit_e2e_p50_to_docker_run_p50"], two),
    "RatioFirstCachedRun": quote(
        lambda: ratios["first_commit_cached_layer_e2e_p50_minus_import_to_docker_run_p50"], two
    ),
    "RatioWarmDeps": quote(lambda: ratios["warm_with_deps_e2e_p50_to_warm_vendored_e2e_p50"], two),
    "FirstReadyRate": quote(lambda: bench["first_jobs"]["first_commit"]["ready_rate"], percent),
    # the wasm runtime (gitfaas-bench wasm)
    "WasmFirstEtoEPfifty": quote(
        lambda: bench["wasm"]["first_jobs"]["after_idle"]["e2e_ms"]["p50"], fmt
    ),
    "WasmEtoEPfifty": quote(lambda: bench["wasm"]["job_e2e_ms"]["p50"], fmt),
    "WasmPythonEtoEPfifty": quote(lambda: bench["wasm"]["warm_python_job_e2e_ms"]["p50"], fmt),
    "WasmRunPfifty": quote(lambda: bench["wasm"]["instantiate_run_in_executor_ms"]["p50"], lambda v: fmt(v, 3)),
    "RatioWasmPython": quote(lambda: ratios["wasm_e2e_p50_to_warm_python_e2e_p50"], two),
    "RatioWasmFirstRun": quote(lambda: ratios["wasm_first_job_e2e_p50_to_docker_run_p50"], two),
    "WasmFirstDockerRunPfifty": quote(lambda: bench["wasm"]["first_jobs"]["after_idle"]["docker_run_interleaved_ms"]["p50"], fmt),
    "WasmFirstGitFloorPfifty": quote(lambda: bench["wasm"]["first_jobs"]["after_idle"]["git_server_fetch_ms"]["p50"], fmt),
    "WasmFirstBusyEtoEPfifty": quote(lambda: bench["wasm"]["first_jobs"]["back_to_back"]["e2e_ms"]["p50"], fmt),
    "WasmFirstBusyDockerRunPfifty": quote(
        lambda: bench["wasm"]["first_jobs"]["back_to_back"]["docker_run_interleaved_ms"]["p50"], fmt
    ),
    "WasmFirstBusyGitFloorPfifty": quote(
        lambda: bench["wasm"]["first_jobs"]["back_to_back"]["git_server_fetch_ms"]["p50"], fmt
    ),
    "RatioWasmFirstBusyRun": quote(lambda: ratios["wasm_first_job_back_to_back_e2e_p50_to_docker_run_p50"], two),
    "RatioWasmFirstBeyondGit": quote(
        lambda: ratios["wasm_first_job_beyond_git_server_p50_to_docker_run_p50"], two
    ),
    # the burst sweep (scripts/bench.sh burst)
    "BurstDate": quote(lambda: sweep["shipped"]["at"][:10]),
    "BurstJobsPerPoint": quote(lambda: sweep["shipped"]["jobs_per_point"]),
    "BurstClientList": quote(lambda: [p["clients"] for p in points("shipped")] or None, listed),
    "ShippedSlots": quote(lambda: sweep["shipped"]["slots_per_executor"]),
    "TunedSlots": quote(lambda: sweep["tuned"]["slots_per_executor"]),
    "TunedSettings": quote(lambda: sweep["tuned"]["executor_env"], settings_of),
    "ShippedJobsOne": quote(lambda: at("shipped", 1, "jobs_per_s"), whole),
    "ShippedJobsTwo": quote(lambda: at("shipped", 2, "jobs_per_s"), whole),
    "ShippedJobsFour": quote(lambda: at("shipped", 4, "jobs_per_s"), whole),
    "ShippedJobsSixteen": quote(lambda: at("shipped", 16, "jobs_per_s"), whole),
    "ShippedRatioSixteenTwo": quote(lambda: ratio_16_to_2("shipped"), two),
    "ShippedQueueFour": quote(lambda: at("shipped", 4, "queue_ms", "p50"), whole),
    "ShippedQueueFourNinetyfive": quote(lambda: at("shipped", 4, "queue_ms", "p95"), whole),
    "ShippedRunFour": quote(lambda: at("shipped", 4, "run_ms", "p50"), whole),
    "ShippedQueueSixteen": quote(lambda: at("shipped", 16, "queue_ms", "p50"), whole),
    "ShippedQueueSixteenNinetyfive": quote(lambda: at("shipped", 16, "queue_ms", "p95"), whole),
    "ShippedRunSixteen": quote(lambda: at("shipped", 16, "run_ms", "p50"), whole),
    "ShippedQueueBound": quote(lambda: queue_bound("shipped"), whole),
    "ShippedRatioQueueBound": quote(lambda: queue_ratio("shipped"), two),
    "ShippedUtilSixteen": quote(lambda: at("shipped", 16, "slot_utilisation"), percent),
    "ShippedPrefetchedSixteen": quote(lambda: at("shipped", 16, "prefetched_mean"), one),
    "ShippedEtoEOne": quote(lambda: at("shipped", 1, "e2e_ms", "p50"), fmt),
    "ShippedRatioTarget": quote(lambda: at("shipped", 16, "jobs_per_s") / THROUGHPUT_TARGET, two),
    "TunedJobsOne": quote(lambda: at("tuned", 1, "jobs_per_s"), whole),
    "TunedJobsTwo": quote(lambda: at("tuned", 2, "jobs_per_s"), whole),
    "TunedJobsSixteen": quote(lambda: at("tuned", 16, "jobs_per_s"), whole),
    "TunedRatioSixteenTwo": quote(lambda: ratio_16_to_2("tuned"), two),
    "TunedQueueSixteen": quote(lambda: at("tuned", 16, "queue_ms", "p50"), whole),
    "TunedRunSixteen": quote(lambda: at("tuned", 16, "run_ms", "p50"), whole),
    "TunedQueueBound": quote(lambda: queue_bound("tuned"), whole),
    "TunedRatioQueueBound": quote(lambda: queue_ratio("tuned"), two),
    "TunedUtilSixteen": quote(lambda: at("tuned", 16, "slot_utilisation"), percent),
    "TunedEtoEOne": quote(lambda: at("tuned", 1, "e2e_ms", "p50"), fmt),
    "TunedRatioTarget": quote(lambda: at("tuned", 16, "jobs_per_s") / THROUGHPUT_TARGET, two),
    "TunedToShipped": quote(lambda: at("tuned", 16, "jobs_per_s") / at("shipped", 16, "jobs_per_s"), two),
    "BrokerFloorSixteen": quote(lambda: broker_floor(16)["jobs_per_s"], whole),
    "BrokerFloorLatencySixteen": quote(lambda: broker_floor(16)["latency_ms"]["p50"], one),
    "BrokerFloorTimesShipped": quote(lambda: broker_floor(16)["jobs_per_s"] / at("shipped", 16, "jobs_per_s"), whole),
    "TwoExecutorNote": "Dashed: the same configurations on two executors." if present_two else "",
    # CPU per job over a burst from 16 clients (shipped; tuned for comparison)
    "CpuJobs": quote(lambda: sweep["cpu_per_job"]["shipped"]["jobs"]),
    "CpuClients": quote(lambda: sweep["cpu_per_job"]["shipped"]["clients"]),
    "CpuTickPerJob": quote(lambda: 10 / sweep["cpu_per_job"]["shipped"]["jobs"], two),
    "CpuMachineMs": quote(lambda: cpu_machine("shipped", "ms_per_job"), one),
    "CpuBusyCores": quote(lambda: cpu_machine("shipped", "busy_cores"), one),
    "CpuCoresAtTarget": quote(lambda: cpu_machine("shipped", "ms_per_job") * THROUGHPUT_TARGET / 1000, one),
    "CpuCeiling": quote(lambda: bench["cores"] * 1000 / cpu_machine("shipped", "ms_per_job"), whole),
    "TunedCpuMachineMs": quote(lambda: cpu_machine("tuned", "ms_per_job"), one),
    "TunedCpuBusyCores": quote(lambda: cpu_machine("tuned", "busy_cores"), one),
    "TunedCpuCoresAtTarget": quote(lambda: cpu_machine("tuned", "ms_per_job") * THROUGHPUT_TARGET / 1000, one),
    "TunedCpuCeiling": quote(lambda: bench["cores"] * 1000 / cpu_machine("tuned", "ms_per_job"), whole),
    "CpuFrontendMs": quote(lambda: cpu_row("shipped", "frontend")["ms_per_job"], one),
    "CpuFrontendShare": quote(lambda: cpu_row("shipped", "frontend")["share"], percent),
    "CpuExecutorMs": quote(lambda: cpu_row("shipped", "executor-1")["ms_per_job"], one),
    "CpuTable": quote(cpu_table),
    # the targets: met or not, from the same figures
    "VerdictColdRun": verdict(holds(lambda: ratios["cold_e2e_p50_to_docker_run_p50"] <= 1.1)),
    "VerdictNoCliff": verdict(holds(lambda: ratio_16_to_2("shipped") >= 0.9)),
    "VerdictQueueShipped": verdict(holds(lambda: queue_ratio("shipped") <= 1)),
    "VerdictQueueTuned": verdict(holds(lambda: queue_ratio("tuned") <= 1)),
    "VerdictThroughput": verdict(holds(lambda: max(at("shipped", 16, "jobs_per_s"), at("tuned", 16, "jobs_per_s"))
                                       >= THROUGHPUT_TARGET)),
    "VerdictWarm": warm_verdict(),
    "VerdictSubmit": verdict(holds(lambda: ratios["submit_rate_to_produce_rate"] >= 0.8)),
}
for rank, name in enumerate(("First", "Second", "Third"), start=0):
    # the row's name without its parenthesis, to read in a sentence: "kafka broker (java)" → "kafka broker"
    macros[f"Cpu{name}Name"] = quote(lambda: cpu_rows("shipped")[rank]["process"].split(" (")[0], tex)
    macros[f"Cpu{name}Ms"] = quote(lambda: cpu_rows("shipped")[rank]["ms_per_job"], one)
    macros[f"Cpu{name}Share"] = quote(lambda: cpu_rows("shipped")[rank]["share"], percent)
assert all(k.isalpha() for k in macros), "LaTeX macro names are letters only"
with open(os.path.join(OUT, "numbers.tex"), "w", encoding="utf-8") as f:
    f.write("\\graphicspath{{%s/}}\n" % os.path.abspath(OUT))
    for k, v in macros.items():
        f.write(f"\\newcommand{{\\{k}}}{{{v}}}\n")
print("numbers.tex", file=sys.stderr)
