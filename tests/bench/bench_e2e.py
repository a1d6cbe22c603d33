#!/usr/bin/env python3
"""
bench_e2e.py - end-to-end throughput and latency of inferq, next to the raw
throughput of the same Kafka, measured in the same run.

    python3 tests/bench/bench_e2e.py [--requests N] [--runs R] [--max-inflight M]
                                     [--partitions P] [--payload-bytes B] [--keep]

It needs a running stack (deploy/local/stack.sh up --kafka real; the env file
is read like the e2e suite does, INFERQ_E2E_ENV overrides its path) and the
binaries in $INFERQ_BUILD_DIR/bin (default build/bin). It starts its own
inferq-fake-model (zero latency), inferq-broker and inferq-worker on a unique
topic prefix, then per run:

  e2e   N chat requests produced at full speed to <prefix>.requests; a
        consumer thread reads <prefix>.replies. Throughput = N / (last result
        received - first request's CreateTime). Latency per request = result
        received - request CreateTime (one host, one clock).
  pipe  N messages of the same size produced to <prefix>.pipe and read back by
        another consumer in the same process, measured the same way: what Kafka
        alone gives this machine, so that ratio = e2e / pipe can be reported.

The e2e path crosses Kafka three times (requests -> model topic -> replies)
plus an HTTP call, the pipe once. Prints one JSON summary (medians over the
runs, and every run). See tests/bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

import ifq_e2e  # noqa: E402
from ifq_e2e import FakeModel, Gateway, Produce, deployment, ensure_topic, unique  # noqa: E402


class ReceiveThread(threading.Thread):
    """Reads topics from their current high watermarks and records, for
    every message, the local receive time (ms) under a key computed from the
    message. Stops when `expect` keys were seen or at stop()."""

    def __init__(self, bootstrap: str, topic: str, key_of, expect: int):
        super().__init__(daemon=True)
        self.key_of = key_of
        self.expect = expect
        self.seen: dict = {}
        self.dups = 0
        self._halt = threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("bench-"),
                           "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                           "queued.min.messages": 200000})
        md = self.c.list_topics(topic, timeout=10).topics[topic]
        tps = []
        for p in sorted(md.partitions):
            lo, hi = self.c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            tps.append(TopicPartition(topic, p, hi))
        self.c.assign(tps)
        self.done = threading.Event()

    def run(self):
        while not self._halt.is_set() and len(self.seen) < self.expect:
            msgs = self.c.consume(num_messages=10000, timeout=0.05)
            now = time.time() * 1000.0
            for m in msgs:
                if m.error():
                    continue
                k = self.key_of(m)
                if k is None:
                    continue
                if k in self.seen:
                    self.dups += 1
                else:
                    self.seen[k] = (now, m.timestamp()[1], m.value())
        self.done.set()

    def stop(self):
        self._halt.set()
        self.join(10)
        self.c.close()


def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def make_producer(bootstrap, warmup_topic):
    """A producer that is connected and has its idempotent producer id, so
    that set-up time is not measured."""
    p = Produce(bootstrap, **{"linger.ms": 5, "batch.num.messages": 10000,
                              "queue.buffering.max.messages": 1000000})
    p.send(warmup_topic, b"warm-up")
    p.flush(30)
    return p


def produce_all(p, topic, items):
    """items: list of (key, value bytes). Returns {key: CreateTime ms}."""
    created = {}
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            created[msg.key().decode()] = msg.timestamp()[1]

    for k, v in items:
        while True:
            try:
                p.p.produce(topic, value=v, key=k.encode(), on_delivery=cb)
                break
            except BufferError:
                p.p.poll(0.01)
        p.p.poll(0)
    p.p.flush(120)
    if errors:
        raise SystemExit(f"delivery failed: {errors[:3]}")
    return created


def measure(label, producer, bootstrap, in_topic, out_topic, items, key_of, timeout):
    n = len(items)
    rt = ReceiveThread(bootstrap, out_topic, key_of, n)
    rt.start()
    t0 = time.time()
    created = produce_all(producer, in_topic, items)
    produce_s = time.time() - t0
    finished = rt.done.wait(timeout)
    rt.stop()
    got = rt.seen
    if not finished or len(got) < n:
        raise SystemExit(f"{label}: only {len(got)}/{n} messages back within {timeout}s")
    first = min(created.values())
    last = max(v[0] for v in got.values())
    lat = sorted(got[k][0] - created[k] for k in created)
    span_s = (last - first) / 1000.0
    return {
        "messages": n,
        "produce_s": round(produce_s, 3),
        "span_s": round(span_s, 3),
        "rps": round(n / span_s, 1) if span_s > 0 else None,
        "p50_ms": round(percentile(lat, 0.50), 1),
        "p99_ms": round(percentile(lat, 0.99), 1),
        "max_ms": round(lat[-1], 1),
        "duplicates": rt.dups,
    }, got


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", "-n", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--max-inflight", type=int, default=512)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--payload-bytes", type=int, default=0,
                    help="pad each request's message to at least this many bytes")
    ap.add_argument("--warmup", type=int, default=1000,
                    help="requests sent through the gateway before the measured runs (not reported)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true", help="keep the bench's topics and logs")
    args = ap.parse_args()

    env = ifq_e2e.load_stack_env()
    if env is None:
        raise SystemExit(f"{ifq_e2e.env_file_path()} not found: "
                         "start the stack (deploy/local/stack.sh up --kafka real)")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / unique("inferq-bench-")
    fake = FakeModel(env, work, "fake")
    gw = Gateway(env, work / "gw",
                 deployments={"bench-chat": deployment(fake.base_url, "fake-chat",
                                                       max_inflight=args.max_inflight)},
                 aliases={"chat-default": ["bench-chat"]},
                 worker={"max_inflight": args.max_inflight}, partitions=args.partitions)
    runs = []
    try:
        gw.start_broker()
        gw.start_worker()
        pipe = gw.topic("pipe")
        ensure_topic(env.bootstrap, pipe, args.partitions)
        ensure_topic(env.bootstrap, gw.topic("warmup"), 1)
        producer = make_producer(env.bootstrap, gw.topic("warmup"))
        def result_key(m):
            try:
                return json.loads(m.value())["custom_id"]
            except (ValueError, KeyError, TypeError):
                return None

        if args.warmup > 0:  # connections, consumer fetch sessions, caches
            wtag = unique("w")
            witems = [(f"{wtag}-{i}", json.dumps(ifq_e2e.chat(f"{wtag}-{i}", "warm-up")).encode())
                      for i in range(args.warmup)]
            measure("warm-up", producer, env.bootstrap, gw.requests, gw.replies, witems,
                    result_key, args.timeout)
        for r in range(args.runs):
            tag = unique("b")
            items = []
            for i in range(args.requests):
                cid = f"{tag}-{i}"
                req = ifq_e2e.chat(cid, f"bench {i}")
                v = json.dumps(req, separators=(",", ":"))
                if args.payload_bytes and len(v) < args.payload_bytes:
                    req["body"]["messages"][0]["content"] += " " * (args.payload_bytes - len(v))
                    v = json.dumps(req, separators=(",", ":"))
                items.append((cid, v.encode()))

            e2e, got = measure("e2e", producer, env.bootstrap, gw.requests, gw.replies, items, result_key,
                               args.timeout)
            failed = sum(1 for v in got.values() if json.loads(v[2])["error"] is not None)
            e2e["failed"] = failed
            # Kafka alone: same sizes, one hop, same process
            pipe_items = [(f"p{tag}-{i}", v) for i, (_, v) in enumerate(items)]
            kp, _ = measure("pipe", producer, env.bootstrap, pipe, pipe, pipe_items,
                            lambda m: m.key().decode(), args.timeout)
            run = {"run": r + 1, "e2e": e2e, "kafka_pipe": kp,
                   "ratio": round(e2e["rps"] / kp["rps"], 3) if e2e["rps"] and kp["rps"] else None}
            runs.append(run)
            print(f"run {r + 1}: e2e {e2e['rps']} req/s p50 {e2e['p50_ms']} ms p99 {e2e['p99_ms']} ms"
                  f" | kafka pipe {kp['rps']} msg/s p50 {kp['p50_ms']} ms | ratio {run['ratio']}",
                  file=sys.stderr)
    finally:
        codes = gw.stop()
        fake.stop()
        if not args.keep:
            try:
                admin = AdminClient({"bootstrap.servers": env.bootstrap})
                topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(gw.prefix + ".")]
                if topics:
                    for f in admin.delete_topics(topics, operation_timeout=30).values():
                        f.result(60)
            except Exception as e:  # best effort
                print(f"bench: could not delete topics: {e}", file=sys.stderr)
        bad = {k: v for k, v in codes.items() if v != 0}
        if bad:
            print(f"bench: programs exited non-zero: {bad}", file=sys.stderr)

    def med(path):
        vals = [r for r in (eval_path(run, path) for run in runs) if r is not None]
        return statistics.median(vals) if vals else None

    def eval_path(d, path):
        for p in path.split("."):
            d = d.get(p) if isinstance(d, dict) else None
        return d

    summary = {
        "requests": args.requests,
        "runs": len(runs),
        "max_inflight": args.max_inflight,
        "partitions": args.partitions,
        "message_bytes": len(items[0][1]) if runs else None,
        "kafka": env.bootstrap,
        "kafka_mode": env.values.get("INFERQ_KAFKA_MODE"),
        "build_dir": str(env.build_dir),
        "median": {
            "e2e_rps": med("e2e.rps"),
            "e2e_p50_ms": med("e2e.p50_ms"),
            "e2e_p99_ms": med("e2e.p99_ms"),
            "kafka_pipe_rps": med("kafka_pipe.rps"),
            "kafka_pipe_p50_ms": med("kafka_pipe.p50_ms"),
            "kafka_pipe_p99_ms": med("kafka_pipe.p99_ms"),
            "ratio": med("ratio"),
        },
        "per_run": runs,
    }
    print(json.dumps(summary, indent=2))
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
