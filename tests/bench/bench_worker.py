#!/usr/bin/env python3
"""
bench_worker.py - one inferq-worker against a fake model with a fixed
latency: throughput as a fraction of the ideal (in-flight / latency), peak
RSS per in-flight request, CPU time per request.

    python3 tests/bench/bench_worker.py [--requests N] [--runs R] [--inflight M]
                                        [--latency-ms L] [--partitions P] [--keep]

Needs a running stack (deploy/local/stack.sh up --kafka real; the env file is
read as the e2e suite does) and the binaries in $INFERQ_BUILD_DIR/bin
(default build/bin; use a release build, not ASan). It starts its own
inferq-fake-model --latency-ms L, an inferq-broker, and per run two workers,
one after the other, on a unique topic prefix:

  1. idle: a worker starts on the empty per-model topic, becomes ready, sits
     for --idle-s seconds; its VmRSS is the idle RSS. It is stopped.
  2. pre-load: N chat requests are produced to <prefix>.requests and the
     broker routes them to <prefix>.model.bench (the bench waits until the
     broker's committed offsets reach the end of the request topic), so the
     backlog is in Kafka before any worker runs.
  3. load: a fresh worker (worker and deployment max_inflight M) starts on
     the backlog. A consumer thread records when each result arrives on
     <prefix>.replies.

Figures per run:
  rps           results per second between the 10th and the 90th percentile
                of arrival times (the steady state, without ramp-up and tail)
  fraction      rps / ideal, ideal = M * 1000 / L (2000 / 200 ms = 10,000/s)
  rps_overall   N / (last result - worker start)
  peak_rss_kb   VmHWM of the load worker at the end (/proc/<pid>/status)
  rss_per_inflight_kb = (peak_rss_kb - idle_rss_kb) / M
  cpu_us_per_req = utime + stime of the load worker over its whole life
                (start-up included; /proc/<pid>/stat) in microseconds / N
  fake_max_in_flight  most concurrent calls the fake saw (must be <= M)
  host_cpu_busy  share of all the machine's cores busy during the load
                (/proc/stat; the fake, Kafka, Redis, this script and anything
                else running count too), fake_cpu_us_per_req the fake's part,
                bench_cpu_us_per_req this script's (it reads result keys only)

--runs R reports the medians. Prints one JSON object on stdout (progress on
stderr). See tests/bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

import ifq_e2e  # noqa: E402
from ifq_e2e import FakeModel, Gateway, deployment, unique, wait_until  # noqa: E402
from bench_e2e import ReceiveThread, make_producer, produce_all  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def proc_cpu_us(pid: int) -> int:
    """utime + stime of the process, in microseconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after "pid (comm)": state is field 3, utime 14, stime 15 (1-based)
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) * 1_000_000 // CLK_TCK


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


def routed_all(bootstrap: str, group: str, topic: str) -> bool:
    """True when the broker's committed offsets reached the end of topic."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        tps = [TopicPartition(topic, p) for p in sorted(md.partitions)]
        committed = c.committed(tps, timeout=10)
        for tp in committed:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            if tp.offset < hi:
                return False
        return True
    finally:
        c.close()


def stack_pids() -> dict:
    """{"kafka": pid, "redis": pid} of the local stack, for those running."""
    out = {}
    for name in ("kafka", "redis"):
        f = ifq_e2e.ROOT / "deploy" / "local" / ".run" / f"{name}.pid"
        try:
            pid = int(f.read_text().split()[0])
            os.kill(pid, 0)
            out[name] = pid
        except (OSError, ValueError):
            pass
    return out


def percentile(sorted_vals, q):
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def one_run(args, env, gw, fake, producer, run_no):
    # 1. idle RSS of a fresh worker on an empty topic
    w_idle = gw.start_worker()
    time.sleep(args.idle_s)
    idle_rss = proc_status_kb(w_idle.pid, "VmRSS")
    idle_hwm = proc_status_kb(w_idle.pid, "VmHWM")
    assert w_idle.stop(60) == 0, w_idle.tail()

    # 2. pre-load the backlog through the broker
    tag = unique("b")
    items = [(f"{tag}-{i}", json.dumps(ifq_e2e.chat(f"{tag}-{i}", f"bench {i}"),
                                       separators=(",", ":")).encode())
             for i in range(args.requests)]
    t0 = time.time()
    produce_all(producer, gw.requests, items)
    wait_until(lambda: routed_all(env.bootstrap, gw.broker_cfg["group_id"], gw.requests),
               args.timeout, "the broker to route the backlog", 0.5)
    preload_s = time.time() - t0

    # 3. load
    def result_key(m):
        # Results are keyed by custom_id (docs/wire-contract.md): reading the
        # key instead of parsing every result keeps this reader's CPU, which
        # shares the machine with what is measured, small. The values are
        # checked after the run ("failed", and custom_id == key below).
        k = m.key()
        return k.decode() if k else None

    fake.reset()
    rt = ReceiveThread(env.bootstrap, gw.replies, result_key, args.requests)
    rt.start()
    started = time.time()
    host0, fake0 = host_cpu(), proc_cpu_us(fake.proc.pid)
    self0 = proc_cpu_us(os.getpid())
    svc = stack_pids()
    svc0 = {k: proc_cpu_us(pid) for k, pid in svc.items()}
    w = gw.start_worker()
    ready = time.time()
    prof = None
    if args.perf_record:
        # sampled profile of the load worker (see tests/bench/README.md)
        prof = subprocess.Popen(["perf", "record", "-q", "-F", "499", *args.perf_args.split(),
                                 "-o", f"{args.perf_record}.{run_no}", "-p", str(w.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = rt.done.wait(args.timeout)
    if prof:
        prof.send_signal(signal.SIGINT)
        prof.wait(60)
    cpu = proc_cpu_us(w.pid)  # its whole life, start-up included
    host1, fake1 = host_cpu(), proc_cpu_us(fake.proc.pid)
    self1 = proc_cpu_us(os.getpid())
    svc1 = {k: proc_cpu_us(pid) for k, pid in svc.items()}
    peak = proc_status_kb(w.pid, "VmHWM")
    rss_end = proc_status_kb(w.pid, "VmRSS")
    rt.stop()
    fs = fake.stats()
    assert w.stop(60) == 0, w.tail()
    got = rt.seen
    if not finished or len(got) < args.requests:
        raise SystemExit(f"run {run_no}: only {len(got)}/{args.requests} results within "
                         f"{args.timeout}s")
    arrivals = sorted(v[0] / 1000.0 for v in got.values())
    t10, t90 = percentile(arrivals, 0.10), percentile(arrivals, 0.90)
    rps = 0.8 * len(arrivals) / (t90 - t10) if t90 > t10 else None
    ideal = args.inflight * 1000.0 / args.latency_ms
    values = {k: json.loads(v[2]) for k, v in got.items()}
    failed = sum(1 for v in values.values() if v["error"] is not None)
    mismatched = sum(1 for k, v in values.items() if v.get("custom_id") != k)
    return {
        "run": run_no,
        "preload_s": round(preload_s, 1),
        "worker_ready_s": round(ready - started, 2),
        "first_result_s": round(arrivals[0] - ready, 2),
        "last_result_s": round(arrivals[-1] - ready, 2),
        "rps": round(rps, 1) if rps else None,
        "fraction": round(rps / ideal, 3) if rps else None,
        "rps_overall": round(len(arrivals) / (arrivals[-1] - started), 1),
        "idle_rss_kb": idle_rss,
        "idle_hwm_kb": idle_hwm,
        "peak_rss_kb": peak,
        "rss_end_kb": rss_end,
        "rss_per_inflight_kb": round((peak - idle_rss) / args.inflight, 2),
        "cpu_s": round(cpu / 1e6, 2),
        "cpu_us_per_req": round(cpu / args.requests, 1),
        "fake_cpu_us_per_req": round((fake1 - fake0) / args.requests, 1),
        **{f"{k}_cpu_us_per_req": round((svc1[k] - svc0[k]) / args.requests, 1) for k in svc},
        "bench_cpu_us_per_req": round((self1 - self0) / args.requests, 1),
        "host_cpu_busy": round((host1[0] - host0[0]) / max(1, host1[1] - host0[1]), 3),
        "fake_requests": fs["requests"],
        # what the host's cores could do if the worker, the fake, Kafka and
        # Redis were all that ran: cores / their CPU per request
        "cpu_ceiling_rps": round(os.cpu_count() * 1e6 / max(1.0, (
            cpu + (fake1 - fake0) + sum(svc1[k] - svc0[k] for k in svc)) / args.requests)),
        "fake_max_in_flight": fs["max_in_flight"],
        "failed": failed,
        "key_mismatches": mismatched,
        "duplicates": rt.dups,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", "-n", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--inflight", type=int, default=2000,
                    help="worker.max_inflight and the deployment's max_inflight")
    ap.add_argument("--latency-ms", type=int, default=200, help="the fake model's latency")
    ap.add_argument("--no-trace", dest="trace", action="store_false",
                    help="trace.enabled: false (spans are on by default, as in the product)")
    ap.add_argument("--threads", type=int, default=1,
                    help="worker.threads: event loops in the worker process (default 1)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--idle-s", type=float, default=2.0,
                    help="how long the idle worker sits before its RSS is read")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--kafka-prop", action="append", default=[], metavar="KEY=VALUE",
                    help="extra librdkafka property for the programs (kafka.properties), "
                         "e.g. queued.max.messages.kbytes=8192; repeatable")
    ap.add_argument("--perf-record", metavar="FILE",
                    help="run `perf record` on the load worker; writes FILE.<run>")
    ap.add_argument("--perf-args", default="-g",
                    help="extra perf record arguments (default -g)")
    ap.add_argument("--keep", action="store_true", help="keep the bench's topics and logs")
    args = ap.parse_args()
    kafka_props = dict(kv.split("=", 1) for kv in args.kafka_prop)

    env = ifq_e2e.load_stack_env()
    if env is None:
        raise SystemExit(f"{ifq_e2e.env_file_path()} not found: "
                         "start the stack (deploy/local/stack.sh up --kafka real)")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / unique("inferq-bench-worker-")
    fake = FakeModel(env, work, "fake", ["--latency-ms", str(args.latency_ms),
                                         "--max-connections", str(args.inflight * 2 + 100)])
    gw = Gateway(env, work / "gw",
                 deployments={"bench": deployment(fake.base_url, "fake-chat",
                                                  max_inflight=args.inflight)},
                 aliases={"chat-default": ["bench"]},
                 worker={"max_inflight": args.inflight, "threads": args.threads},
                 partitions=args.partitions,
                 kafka_properties=kafka_props,
                 extra={} if args.trace else {"trace": {"enabled": False}})
    runs = []
    try:
        gw.start_broker()
        ifq_e2e.ensure_topic(env.bootstrap, gw.topic("warmup"), 1)
        producer = make_producer(env.bootstrap, gw.topic("warmup"))
        for r in range(args.runs):
            run = one_run(args, env, gw, fake, producer, r + 1)
            runs.append(run)
            print(f"run {r + 1}: {run['rps']} req/s ({run['fraction']:.1%} of ideal), "
                  f"peak RSS {run['peak_rss_kb']} KB (idle {run['idle_rss_kb']} KB) = "
                  f"{run['rss_per_inflight_kb']} KB/in-flight, {run['cpu_us_per_req']} us "
                  f"CPU/request, fake max in flight {run['fake_max_in_flight']}, "
                  f"host CPU busy {run['host_cpu_busy']:.0%}",
                  file=sys.stderr)
    finally:
        codes = gw.stop()
        fake.stop()
        if not args.keep:
            try:
                admin = AdminClient({"bootstrap.servers": env.bootstrap})
                topics = [t for t in admin.list_topics(timeout=10).topics
                          if t.startswith(gw.prefix + ".")]
                if topics:
                    for f in admin.delete_topics(topics, operation_timeout=30).values():
                        f.result(60)
            except Exception as e:  # best effort
                print(f"bench: could not delete topics: {e}", file=sys.stderr)
        bad = {k: v for k, v in codes.items() if v != 0}
        if bad:
            print(f"bench: programs exited non-zero: {bad}", file=sys.stderr)

    def med(key):
        vals = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    summary = {
        "requests": args.requests,
        "runs": len(runs),
        "inflight": args.inflight,
        "latency_ms": args.latency_ms,
        "threads": args.threads,
        "trace": args.trace,
        "ideal_rps": args.inflight * 1000.0 / args.latency_ms,
        "partitions": args.partitions,
        "kafka_properties": kafka_props,
        "build_dir": str(env.build_dir),
        "kafka_mode": env.values.get("INFERQ_KAFKA_MODE"),
        "median": {k: med(k) for k in ("rps", "fraction", "rps_overall", "idle_rss_kb",
                                       "peak_rss_kb", "rss_per_inflight_kb", "cpu_us_per_req",
                                       "fake_cpu_us_per_req", "kafka_cpu_us_per_req",
                                       "redis_cpu_us_per_req", "bench_cpu_us_per_req",
                                       "cpu_ceiling_rps",
                                       "fake_max_in_flight", "host_cpu_busy")
                   if all(k in r for r in runs)},
        "per_run": runs,
    }
    print(json.dumps(summary, indent=2))
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
