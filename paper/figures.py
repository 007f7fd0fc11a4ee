#!/usr/bin/env python3
"""Figures of the gitfaas paper, generated from the JSON the benchmark and tests write.

    figures.py OUT_DIR

Inputs (paths relative to the repository root):
  bench/results.json         scripts/bench.sh (gitfaas-bench all): floors, cold jobs, submit rate
  bench/git.json             cargo run -p gitfaas-executor --release --bin bench-git
  paper/data/scaling-step.json  the observer's reports of one run of tests/tests/scaling.rs
                             (transcribed from paper/observer.md; the test writes no JSON)
Every number drawn comes from one of these files; nothing is typed in here. The architecture
diagram is drawn here too (no data; the topic names come from config/base.yaml).
Also writes OUT_DIR/numbers.tex: the figures' numbers as LaTeX macros, so the text can
quote them from the same files.
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


# 1. Latency of a cold job and its parts against the floors of the same run (log scale).
floors, cold = bench["floors"], bench["cold_job"]
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

# 2. Ratios to floors, with the targets issue 20 set (where it set one).
ratios = bench["ratios"]
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


# Numbers quoted in the text, from the same files.
def fmt(v, digits=3):
    return f"{v:.{digits}g}"


macros = {
    "BenchDate": bench["at"][:10],
    "BenchCores": str(bench["cores"]),
    "ColdN": str(cold["e2e_ms"]["n"]),
    "ColdEtoEPfifty": fmt(cold["e2e_ms"]["p50"]),
    "ColdEtoEPninetyfive": fmt(cold["e2e_ms"]["p95"]),
    "RunPfifty": fmt(cold["run_ms"]["p50"]),
    "QueuePfifty": fmt(cold["queue_ms"]["p50"]),
    "VisiblePfifty": fmt(cold["result_visible_ms"]["p50"]),
    "BrokerRTTPfifty": fmt(floors["broker_round_trip_ms"]["p50"], 2),
    "DockerRunPfifty": fmt(floors["docker_run_ms"]["p50"]),
    "DockerExecPfifty": fmt(floors["docker_exec_ms"]["p50"]),
    "SubmitRate": f"{bench['submit']['submits_per_s']:.0f}",
    "ProduceRate": f"{bench['submit']['produce_per_s']:.0f}",
    "SubmitClients": str(bench["submit"]["clients"]),
    "SubmitBytes": str(bench["submit"]["message_bytes"]),
    "RatioColdRun": f"{ratios['cold_e2e_p50_to_docker_run_p50']:.2f}",
    "RatioSubmit": f"{ratios['submit_rate_to_produce_rate']:.2f}",
    "RatioQueue": f"{ratios['queue_p50_to_broker_round_trip_p50']:.2f}",
    "RatioVisible": f"{ratios['result_visible_p50_to_broker_round_trip_p50']:.2f}",
    "GitFresh": f"{git['fresh_clone_ms']['median'] / 1000:.2f}",
    "GitCached": f"{git['cached_refetch_ms']['median'] / 1000:.2f}",
    "GitSpeedup": f"{git['speedup']:.2f}",
}
with open(os.path.join(OUT, "numbers.tex"), "w") as f:
    f.write("\\graphicspath{{%s/}}\n" % os.path.abspath(OUT))
    for k, v in macros.items():
        f.write(f"\\newcommand{{\\{k}}}{{{v}}}\n")
print("numbers.tex", file=sys.stderr)
