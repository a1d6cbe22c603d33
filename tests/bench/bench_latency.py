#!/usr/bin/env python3
"""
bench_latency.py - produce-to-result latency of one request at a time through
broker + worker + fake model (zero latency), on the stack's real Kafka: the
gateway's own overhead, without the queueing a burst adds (bench_e2e.py
measures throughput under a burst).

    python3 tests/bench/bench_latency.py [--requests N] [--runs R]

Needs a running stack (deploy/local/stack.sh up --kafka real) and binaries in
$INFERQ_BUILD_DIR/bin. Latency = result received - request produced, one
host, one clock. Prints JSON: p50/p90/p99/max in ms, medians over runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

import ifq_e2e  # noqa: E402
from ifq_e2e import FakeModel, Gateway, Produce, ReplyCollector, deployment, unique  # noqa: E402,F401


def pct(vals, q):
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(q * len(vals)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", "-n", type=int, default=300)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    env = ifq_e2e.load_stack_env()
    if env is None:
        raise SystemExit("start the stack first (deploy/local/stack.sh up --kafka real)")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / unique("inferq-lat-")
    fake = FakeModel(env, work, "fake")
    gw = Gateway(env, work / "gw", deployments={"m": deployment(fake.base_url)},
                 aliases={"chat-default": ["m"]})
    runs = []
    try:
        gw.start_broker()
        gw.start_worker()
        # A plain consumer at the reply topic's end: poll() returns on the
        # first message (ReplyCollector batches reads for up to 100 ms).
        replies = ReplyCollector(env.bootstrap, gw.replies)
        c = replies.c
        p = Produce(env.bootstrap)
        for r in range(args.runs + 1):  # the first run warms up and is not reported
            lat = []
            for i in range(args.requests):
                cid = unique(f"lat{r}-{i}-")
                t0 = time.monotonic()
                p.send(gw.requests, ifq_e2e.chat(cid, "ping"), key=cid)
                p.p.flush(10)
                deadline = time.monotonic() + 30
                while True:
                    m = c.poll(0.05)
                    if m is not None and not m.error() and cid.encode() in m.value():
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"no result for {cid}")
                lat.append((time.monotonic() - t0) * 1000)
            if r:
                runs.append({"p50_ms": round(pct(lat, .5), 2), "p90_ms": round(pct(lat, .9), 2),
                             "p99_ms": round(pct(lat, .99), 2), "max_ms": round(max(lat), 2)})
                print(f"run {r}: {runs[-1]}", file=sys.stderr)
        replies.close()
    finally:
        gw.stop()
        fake.stop()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(json.dumps({"requests": args.requests, "runs": args.runs, "median": med,
                      "per_run": runs}))


if __name__ == "__main__":
    main()
