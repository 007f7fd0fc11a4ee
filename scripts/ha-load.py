#!/usr/bin/env python3
"""The client side of scripts/ha-smoke.sh: a burst of jobs from two users through the load
balancer while the script kills containers, then every job's result. Standard library only.

  ha-load.py --api URL --token-url URL --events FILE --out FILE [--jobs N] [--burst S]

Each user (alice, bob) submits --jobs jobs (the `shout-command` example, each with its own
input) spread over --burst seconds, as a careful client would: an answer >= 500 or a broken
connection is retried every 0.2 s with the same body and Idempotency-Key (never once the
frontend answered 202).
A prober reads one of alice's jobs every 0.2 s through the balancer. Every request is logged
(start, end, status). Once the script has written `done` to --events (the chaos is over), each
accepted job's result is awaited through the balancer (`result?wait=`), read twice more (the
balancer alternates frontends: both must serve the same result) and checked; bob must not
see alice's job; a sync submission (Prefer: wait) must answer with its result and the events
websocket, both through the balancer, must show it succeed. A 5xx window is the time from the first request answered >= 500 (or not at
all) to the next request answered below 500; each is charged to the last event before it.
Writes the figures as JSON to --out; exits 1 on any failed check.
"""

import argparse
import base64
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

USERS = ("alice", "bob")
PASSWORD = "gitfaas"
REPO = "git://examples:9418/shout-command"


class Client:
    def __init__(self, api, token_url):
        self.api = api
        self.token_url = token_url
        self.tokens = {}
        self.log = []  # (start, end, status) of every request; status 0 = no answer
        self.lock = threading.Lock()

    def token(self, user, fresh=False):
        if fresh or user not in self.tokens:
            body = urllib.parse.urlencode({"grant_type": "password", "client_id": "gitfaas-cli",
                                           "username": user, "password": PASSWORD}).encode()
            with urllib.request.urlopen(self.token_url, body, timeout=10) as r:
                self.tokens[user] = json.load(r)["access_token"]
        return self.tokens[user]

    def request(self, user, method, path, body=None, timeout=75, headers=None):
        """One request; returns (status, parsed body or None). Logged for the 5xx windows."""
        for attempt in range(2):
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(self.api + path, data=data, method=method, headers={
                "authorization": "Bearer " + self.token(user, fresh=attempt > 0),
                "content-type": "application/json", **(headers or {})})
            start = time.time()
            status, payload = 0, None
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    status, payload = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, payload = e.code, e.read()
            except (urllib.error.URLError, OSError):
                pass
            with self.lock:
                self.log.append((start, time.time(), status))
            if status != 401:
                break
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return status, parsed


def submit_all(client, user, n, burst, jobs, failures):
    gap = burst / n
    begin = time.time()
    for i in range(n):
        time.sleep(max(0.0, begin + i * gap - time.time()))
        text = f"{user} job {i}"
        sent = time.time()
        key = f"ha-smoke-{begin:.0f}-{user}-{i}"
        while True:
            # the same Idempotency-Key on every retry: a submission the frontend took before
            # failing returns the same job instead of making a second one
            status, body = client.request(user, "POST", "/v1/jobs", {"repo": REPO, "input": text},
                                          headers={"idempotency-key": key})
            if status == 202 and body and body.get("id"):
                jobs.append({"user": user, "id": body["id"], "input": text, "sent": sent,
                             "submit_seconds": round(time.time() - sent, 3)})
                break
            # 409 idempotency-key-in-flight: the key's job is still being published by the
            # request that claimed it (or by a frontend that died doing so): ask again
            in_flight = status == 409 and (body or {}).get("type", "").endswith("idempotency-key-in-flight")
            if 0 < status < 500 and status != 429 and not in_flight:
                failures.append(f"{user}: submission {i} refused with {status}: {body}")
                break
            if time.time() - sent > 120:
                failures.append(f"{user}: submission {i} not accepted in 120 s (last {status})")
                break
            time.sleep(0.2)


def probe(client, jobs, stop):
    while not stop.is_set():
        mine = [j for j in list(jobs) if j["user"] == "alice"]
        if mine:
            client.request("alice", "GET", f"/v1/jobs/{mine[0]['id']}", timeout=10)
        time.sleep(0.2)


def websocket_events(api, token, ready, frames, stop):
    """The job-events websocket through the balancer (RFC 6455 by hand: the standard library
    has no client); every text frame's JSON goes to `frames`."""
    url = urllib.parse.urlsplit(api)
    sock = socket.create_connection((url.hostname, url.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /v1/jobs/events HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    frames.append({"handshake": head.split(b"\r\n", 1)[0].decode()})
    ready.set()
    buf = b""

    def take(n):
        nonlocal buf
        while len(buf) < n:
            if stop.is_set():
                raise TimeoutError
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out
    try:
        while not stop.is_set():
            b0, b1 = take(2)
            size = b1 & 0x7F
            if size == 126:
                size = struct.unpack(">H", take(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", take(8))[0]
            payload = take(size)
            if b0 & 0x0F == 1:
                frames.append(json.loads(payload))
            elif b0 & 0x0F == 8:
                break
    except (TimeoutError, ConnectionError, OSError, ValueError):
        pass
    finally:
        sock.close()


def through_the_balancer(client, failures):
    """After the losses: a sync submission (Prefer: wait) and the events websocket, both
    through the balancer, with whichever frontend it picks."""
    ready, frames, stop = threading.Event(), [], threading.Event()
    reader = threading.Thread(target=websocket_events,
                              args=(client.api, client.token("alice"), ready, frames, stop))
    reader.start()
    ready.wait(10)
    if not frames or " 101 " not in frames[0].get("handshake", "") + " ":
        failures.append(f"events websocket through the balancer: {frames[:1]}")
    status, body = client.request("alice", "POST", "/v1/jobs", {"repo": REPO, "input": "sync wait"},
                                  headers={"prefer": "wait=60"})
    if status != 200 or (body or {}).get("output") != {"shouted": "SYNC WAIT"}:
        failures.append(f"a sync submission (Prefer: wait) through the balancer answered {status}: {body}")
    job = (body or {}).get("id") or (body or {}).get("job_id")
    deadline = time.time() + 10
    while time.time() < deadline and not any(f.get("id") == job and f.get("status") == "succeeded" for f in frames[1:]):
        time.sleep(0.2)
    stop.set()
    reader.join()
    seen = [f.get("status") for f in frames[1:] if f.get("id") == job]
    if "succeeded" not in seen:
        failures.append(f"the events websocket through the balancer showed job {job} as {seen}, never succeeded")
    return {"sync_submit_status": status, "websocket_statuses": seen}


def wait_result(client, job, deadline):
    path = f"/v1/jobs/{job['id']}/result?wait=20"
    while time.time() < deadline:
        status, body = client.request(job["user"], "GET", path)
        if status == 200:
            return body
        time.sleep(0.2 if status in (0, 409) or status >= 500 else 1)
    return None


def cause_of(at, events):
    """The last event at or before `at`."""
    cause = "before any event"
    for name, when in events:
        if when <= at:
            cause = name
    return cause


def windows(log, events):
    """The 5xx windows: [start, end) from the first failed request to the next good one."""
    out, open_at, codes = [], None, set()
    for start, end, status in sorted(log, key=lambda r: r[1]):
        failed = status == 0 or status >= 500
        if failed:
            codes.add(status)
            if open_at is None:
                open_at = start
        elif open_at is not None and end > open_at:
            out.append({"after": cause_of(open_at, events), "from": round(open_at, 3),
                        "seconds": round(end - open_at, 3), "statuses": sorted(codes)})
            open_at, codes = None, set()
    if open_at is not None:
        out.append({"after": "unclosed", "from": round(open_at, 3), "seconds": None, "statuses": sorted(codes)})
    return out


def read_events(path):
    events, done = [], False
    try:
        with open(path) as f:
            for line in f:
                name, _, at = line.strip().rpartition(" ")
                if name == "done":
                    done = True
                elif name:
                    events.append((name, float(at)))
    except FileNotFoundError:
        pass
    return events, done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--token-url", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=30)
    ap.add_argument("--burst", type=float, default=90)
    ap.add_argument("--result-timeout", type=float, default=300)
    args = ap.parse_args()

    client = Client(args.api, args.token_url)
    for user in USERS:
        client.token(user)
    jobs, failures, stop = [], [], threading.Event()
    started = time.time()
    submitters = [threading.Thread(target=submit_all, args=(client, u, args.jobs, args.burst, jobs, failures))
                  for u in USERS]
    prober = threading.Thread(target=probe, args=(client, jobs, stop))
    for t in submitters + [prober]:
        t.start()
    for t in submitters:
        t.join()
    print(f"ha-load: {len(jobs)} jobs accepted in {time.time() - started:.0f}s", flush=True)

    while not read_events(args.events)[1]:
        time.sleep(0.5)
    deadline = time.time() + args.result_timeout
    statuses = {}
    for job in jobs:
        result = wait_result(client, job, deadline)
        if result is None:
            failures.append(f"{job['user']} {job['id']}: no terminal result through the balancer")
            continue
        statuses[result.get("status")] = statuses.get(result.get("status"), 0) + 1
        want = {"shouted": job["input"].upper()}
        if result.get("status") != "succeeded" or result.get("output") != want:
            failures.append(f"{job['id']}: {result.get('status')} {result.get('reason')} {result.get('output')}")
        for _ in range(2):  # both frontends, round robin: the same one result
            status, again = client.request(job["user"], "GET", f"/v1/jobs/{job['id']}/result")
            if status != 200 or {k: again.get(k) for k in ("status", "output", "attempt")} != \
                    {k: result.get(k) for k in ("status", "output", "attempt")}:
                failures.append(f"{job['id']}: a second read answered {status}: {again} (first: {result})")
        status, view = client.request(job["user"], "GET", f"/v1/jobs/{job['id']}")
        if status != 200 or view.get("status") != result.get("status"):
            failures.append(f"{job['id']}: its status reads {status} {view} beside result {result.get('status')}")
    stop.set()
    prober.join()
    alice = [j for j in jobs if j["user"] == "alice"]
    if alice:
        status, _ = client.request("bob", "GET", f"/v1/jobs/{alice[0]['id']}")
        if status != 404:
            failures.append(f"bob reads alice's job: {status}, not 404")

    balancer = through_the_balancer(client, failures)
    events, _ = read_events(args.events)
    found = windows(client.log, events)
    worst = {}
    for w in found:
        if w["seconds"] is not None:
            worst[w["after"]] = max(worst.get(w["after"], 0), w["seconds"])
    # from an event to the end of the last 5xx window charged to it: how long clients saw errors
    at_of = dict(events)
    disrupted = {}
    for w in found:
        if w["seconds"] is not None and w["after"] in at_of:
            end = w["from"] + w["seconds"] - at_of[w["after"]]
            disrupted[w["after"]] = round(max(disrupted.get(w["after"], 0), end), 3)
    slowest = {}
    for j in jobs:
        cause = cause_of(j["sent"], events)
        slowest[cause] = max(slowest.get(cause, 0), j["submit_seconds"])
    failed_requests = sum(1 for _, _, s in client.log if s == 0 or s >= 500)
    report = {
        "jobs_accepted": len(jobs), "jobs_per_user": args.jobs, "burst_seconds": args.burst,
        "results": statuses, "requests": len(client.log), "requests_5xx_or_unanswered": failed_requests,
        "events": [{"name": n, "at": round(a - started, 3)} for n, a in events],
        "windows_5xx": [dict(w, **{"from": round(w["from"] - started, 3)}) for w in found],
        "worst_5xx_window_seconds_after": worst,
        "last_5xx_seconds_after": disrupted,
        "max_submit_seconds": max((j["submit_seconds"] for j in jobs), default=None),
        # from sending a submission to its 202, retries included, by the last event before it
        "slowest_submit_seconds_after": slowest,
        "after_the_losses": balancer,
        "failures": failures,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    if any(w["seconds"] is None for w in found):
        failures.append("a 5xx window never closed")
    for line in failures[:20]:
        print("ha-load: FAIL " + line, file=sys.stderr)
    print("ha-load: " + json.dumps({k: report[k] for k in ("jobs_accepted", "results", "requests",
                                                          "requests_5xx_or_unanswered",
                                                          "worst_5xx_window_seconds_after",
                                                          "last_5xx_seconds_after",
                                                          "slowest_submit_seconds_after")}), flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
