#!/usr/bin/env python3
"""
bench_broker.py - inferq-broker throughput and CPU per request next to a raw
librdkafka consume -> produce pipe (ifq-raw-pipe), on the same input, on the
same Kafka, in the same run.

    python3 tests/bench/bench_broker.py [--requests N] [--runs R] [--partitions P]
                                        [--message-bytes B] [--batch-size S]
                                        [--warmup W] [--raw-pipe PATH]
                                        [--modes txn,plain] [--keep]

It needs a running stack (deploy/local/stack.sh up --kafka real; the env file
is read like the e2e suite does, INFERQ_E2E_ENV overrides its path), the
binaries in $INFERQ_BUILD_DIR/bin (default build/bin) and ifq-raw-pipe
(tests/bench/CMakeLists.txt; --raw-pipe PATH or $INFERQ_BUILD_DIR/bin).

Once, before any measurement: N OpenAI chat batch lines of about
--message-bytes (default 1024) with real prompt text (the benign prompts of
shared/data/guardrails/jailbreak_train.csv, else built-in text), model
"chat-default" = an alias of one deployment, are produced to
<prefix>.requests. Then, per run and per mode (transactions on, off), each
program is started with a fresh consumer group, so it reads the same N
messages from the beginning:

  broker  inferq-broker with the default guardrails (no guardrails section:
          the built-in policy), routing (alias -> one deployment), state in
          Redis, broker.transactions true/false. It routes every request to
          <prefix>.model.bench-chat. No worker is needed.
  raw     ifq-raw-pipe --from <prefix>.requests --to <prefix>.raw-out
          [--transactions]: the broker's loop and client settings without the
          work.

Throughput = N / (last - first output record timestamp), read back from the
output topic after the group's lag reached 0 (committed offsets = end of the
input); the output topics are created with message.timestamp.type
LogAppendTime, so a timestamp is when Kafka appended the record. CPU per
request = (utime + stime of the program's /proc/<pid>/stat, sampled every
10 ms and interpolated at the first and last output timestamps) / N:
start-up, group join and shutdown are outside both windows. The stack's Kafka
and Redis (pid files in deploy/local/.run) are sampled the same way. ratio =
broker / raw per mode and run; --runs R reports medians. Before the runs,
each program and mode handles --warmup requests once on topics of their own.
Prints one JSON object on stdout; progress on stderr. See
tests/bench/README.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from confluent_kafka import Consumer, KafkaError, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import ifq_e2e  # noqa: E402
from ifq_e2e import Gateway, Proc, Produce, deployment, ensure_topic, unique  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
DEPLOYMENT = "bench-chat"
ALIAS = "chat-default"

# Used when the shared guardrail data is not there: ordinary requests.
FALLBACK_TEXT = [
    "I run a small bakery and want to send a friendly email to customers about our new "
    "opening hours over the holidays. We will be closed on the 25th and 26th, open from "
    "8 to 2 on the 24th and 31st, and back to normal hours after the new year. Keep it "
    "short, warm and mention that preorders for cakes close on the 20th.",
    "Summarize the following meeting notes into five bullet points with owners and due "
    "dates. Notes: the migration of the billing database slipped by two weeks because the "
    "vendor changed the schema; Priya will rerun the load tests on Thursday; Marco needs "
    "sign-off from legal on the data retention policy before the cut-over; the dashboard "
    "for failed payments is live but nobody has looked at it yet; next review is on the 14th.",
    "Explain the difference between a process and a thread to a first-year computer "
    "science student, with one example from a web browser and one from a database server. "
    "Avoid jargon where you can and end with a short quiz of three questions.",
    "Translate this product description into Spanish and French, keeping the tone casual: "
    "Our waterproof hiking backpack has a 28 litre main compartment, a padded sleeve for a "
    "laptop up to 15 inches, two side pockets for bottles and a hidden pocket for your "
    "passport. It weighs 900 grams and comes in three colours.",
    "Write a Python function that reads a CSV file of orders (order id, customer id, "
    "amount, date), groups them by month and customer, and returns the top five customers "
    "by total amount for each month. Include type hints and a short docstring.",
    "My landlord says I have to pay for repainting the flat after a three-year tenancy. The "
    "walls only have normal wear, a few nail holes where pictures hung. What questions "
    "should I ask, and how could I phrase a polite reply that asks for the inspection "
    "report and photos before I agree to anything?",
]


# --------------------------------------------------------------------------
# input


def load_texts(data_dir: Path | None) -> tuple[list[str], str]:
    if data_dir is not None:
        f = data_dir / "jailbreak_train.csv"
        if f.is_file():
            with open(f, encoding="utf-8", newline="") as fh:
                rows = [r["prompt"] for r in csv.DictReader(fh) if r.get("type") == "benign"]
            if rows:
                return rows, str(f)
    return FALLBACK_TEXT, "built-in"


def make_requests(n: int, size: int, texts: list[str], tag: str) -> list[tuple[str, bytes]]:
    """N chat batch lines of about `size` bytes each: a system message and a
    user message cut from the prompt texts at word boundaries, in turn."""
    words = " ".join(texts).split(" ")
    pos = 0
    out = []
    for i in range(n):
        cid = f"{tag}-{i}"
        req = {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
               "body": {"model": ALIAS, "temperature": 0.7, "max_tokens": 256,
                        "messages": [{"role": "system",
                                      "content": "You are a helpful assistant. Answer concisely."},
                                     {"role": "user", "content": ""}]}}
        base = len(json.dumps(req, ensure_ascii=False, separators=(",", ":")).encode())
        budget = max(16, size - base)
        taken, used = [], 0
        while True:
            w = words[pos % len(words)]
            cost = len(json.dumps(w, ensure_ascii=False).encode()) - 2 + (1 if taken else 0)
            if used + cost > budget and taken:
                break
            taken.append(w)
            used += cost
            pos += 1
        req["body"]["messages"][1]["content"] = " ".join(taken)
        v = json.dumps(req, ensure_ascii=False, separators=(",", ":")).encode()
        out.append((cid, v))
    return out


def preload(bootstrap: str, topic: str, items) -> None:
    p = Produce(bootstrap, **{"linger.ms": 20, "batch.num.messages": 10000,
                              "queue.buffering.max.messages": 2000000,
                              "queue.buffering.max.kbytes": 2097151})
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for k, v in items:
        while True:
            try:
                p.p.produce(topic, value=v, key=k.encode(), on_delivery=cb)
                break
            except BufferError:
                p.p.poll(0.05)
        p.p.poll(0)
    left = p.p.flush(300)
    if left or errors:
        raise SystemExit(f"preload: {left} undelivered, errors {errors[:3]}")


# --------------------------------------------------------------------------
# Kafka helpers


def watermarks(c: Consumer, topic: str) -> dict:
    md = c.list_topics(topic, timeout=10).topics[topic]
    out = {}
    for p in sorted(md.partitions):
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        out[p] = hi
    return out


def wait_lag_zero(bootstrap, group, topic, end: dict, proc: Proc, timeout: float) -> float:
    """Polls the group's committed offsets until they reach `end`; returns
    time.time() when seen."""
    want = sum(end.values())
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not proc.alive():
                raise SystemExit(f"{proc.name} exited with {proc.returncode}:\n{proc.tail(30)}")
            try:
                tps = c.committed([TopicPartition(topic, p) for p in end], timeout=10)
                got = sum(max(tp.offset, 0) for tp in tps)
            except Exception:  # coordinator not ready yet, unstable offsets
                got = -1
            if got >= want:
                return time.time()
            if time.monotonic() > deadline:
                raise SystemExit(f"{proc.name}: lag not 0 after {timeout}s "
                                 f"(committed {got} of {want}):\n{proc.tail(30)}")
            time.sleep(0.1)
    finally:
        c.close()


def read_range(bootstrap: str, topic: str, start: dict, timeout: float = 120) -> list[int]:
    """Timestamps of the committed records of topic from `start` to the
    current end, in the order read."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("bench-read-"),
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True, "fetch.wait.max.ms": 10})
    try:
        end = watermarks(c, topic)
        todo = {p for p in end if end[p] > start.get(p, 0)}
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in todo])
        ts = []
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        todo.discard(m.partition())
                    continue
                ts.append(m.timestamp()[1])
                if m.offset() + 1 >= end[m.partition()]:
                    todo.discard(m.partition())
        return ts
    finally:
        c.close()


# --------------------------------------------------------------------------
# CPU of a process


class CpuSampler(threading.Thread):
    """Samples utime + stime of /proc/<pid>/stat (all threads) every
    `interval` seconds as (time.time(), cpu seconds)."""

    def __init__(self, pid: int, interval: float = 0.01):
        super().__init__(daemon=True)
        self.path = f"/proc/{pid}/stat"
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def read(self):
        try:
            with open(self.path) as f:
                s = f.read()
        except OSError:
            return None
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def run(self):
        while not self._halt.is_set():
            v = self.read()
            if v is None:
                break
            self.samples.append((time.time(), v))
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)

    def at(self, t: float) -> float:
        """CPU seconds at wall time t, linearly interpolated."""
        s = self.samples
        if not s:
            return 0.0
        if t <= s[0][0]:
            return s[0][1]
        for (t0, v0), (t1, v1) in zip(s, s[1:]):
            if t0 <= t <= t1:
                return v0 + (v1 - v0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0)
        return s[-1][1]


# --------------------------------------------------------------------------
# one measurement


def measure(label: str, start_proc, env, in_topic: str, in_end: dict, out_topic: str,
            n: int, group: str, timeout: float, services: dict, quiet=False) -> dict:
    probe = Consumer({"bootstrap.servers": env.bootstrap, "group.id": unique("bench-probe-")})
    out_start = watermarks(probe, out_topic)
    probe.close()
    load0 = os.getloadavg()[0]
    t_start = time.time()
    proc = start_proc(group)
    cpu = CpuSampler(proc.pid)
    cpu.start()
    # the stack's Kafka and Redis, when their pid files are there: the CPU
    # each side costs the services, in the same window
    svc = {name: CpuSampler(pid, 0.05) for name, pid in services.items()}
    for smp in svc.values():
        smp.start()
    try:
        t_done = wait_lag_zero(env.bootstrap, group, in_topic, in_end, proc, timeout)
    finally:
        cpu.stop()
        for smp in svc.values():
            smp.stop()
    total_cpu = cpu.samples[-1][1] if cpu.samples else None
    rc = proc.stop(60)
    if rc != 0:
        raise SystemExit(f"{label}: {proc.name} exited {rc}:\n{proc.tail(30)}")
    ts = read_range(env.bootstrap, out_topic, out_start)
    if len(ts) != n:
        raise SystemExit(f"{label}: {len(ts)} output records for {n} inputs")
    first, last = min(ts) / 1000.0, max(ts) / 1000.0
    span = last - first
    cpu_s = cpu.at(last) - cpu.at(first)
    res = {
        "messages": n,
        "span_s": round(span, 3),
        "rps": round(n / span, 1) if span > 0 else None,
        "cpu_us_per_req": round(cpu_s * 1e6 / n, 1),
        "cpu_cores": round(cpu_s / span, 2) if span > 0 else None,
        "start_to_lag0_s": round(t_done - t_start, 2),
        "process_cpu_s_total": round(total_cpu, 2) if total_cpu is not None else None,
        "loadavg_1m": round((load0 + os.getloadavg()[0]) / 2, 2),
    }
    for name, smp in svc.items():
        if smp.samples:
            res[f"{name}_cpu_us_per_req"] = round((smp.at(last) - smp.at(first)) * 1e6 / n, 1)
    print(f"  {'(warm-up) ' if quiet else ''}{label}: {res['rps']} msg/s, "
          f"{res['cpu_us_per_req']} CPU us/req ({res['cpu_cores']} cores), "
          f"span {res['span_s']} s", file=sys.stderr)
    return res


def find_raw_pipe(arg: str | None, env) -> str:
    cands = [arg] if arg else [env.bin("ifq-raw-pipe")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    raise SystemExit(f"ifq-raw-pipe not found ({cands[0]}): build it (tests/bench/CMakeLists.txt"
                     ", target ifq-raw-pipe) or pass --raw-pipe PATH")


def service_pids() -> dict:
    """{"kafka": pid, "redis": pid} of the local stack, for those running."""
    out = {}
    for name in ("kafka", "redis"):
        f = ifq_e2e.ROOT / "deploy" / "local" / ".run" / f"{name}.pid"
        try:
            pid = int(f.read_text().split()[0])
            os.kill(pid, 0)
            out[name] = pid
        except (OSError, ValueError, IndexError):
            pass
    return out


class Setup:
    """One topic prefix: the input topic preloaded with n requests, the two
    output topics, and how to start each program on them."""

    def __init__(self, env, work: Path, args, raw_pipe: str, n: int, texts: list[str],
                 name: str):
        self.env, self.args, self.raw_pipe, self.n = env, args, raw_pipe, n
        self.gw = Gateway(env, work / name,
                          deployments={DEPLOYMENT: deployment(env.fake_url, "fake-chat")},
                          aliases={ALIAS: [DEPLOYMENT]}, partitions=args.partitions,
                          broker={"batch_size": args.batch_size})
        self.in_topic = self.gw.requests
        self.raw_out = self.gw.topic("raw-out")
        self.model_topic = self.gw.topic(f"model.{DEPLOYMENT}")
        ensure_topic(env.bootstrap, self.in_topic, args.partitions)
        # Output records carry the time Kafka appended them, not the time the
        # program called produce (a first batch that waits on anything would
        # otherwise stretch the window it is measured in).
        admin = AdminClient({"bootstrap.servers": env.bootstrap})
        fs = admin.create_topics([NewTopic(t, num_partitions=args.partitions, replication_factor=1,
                                           config={"message.timestamp.type": "LogAppendTime"})
                                  for t in (self.raw_out, self.model_topic)], operation_timeout=30)
        for f in fs.values():
            f.result(60)
        items = make_requests(n, args.message_bytes, texts, unique("b"))
        sizes = sorted(len(v) for _, v in items)
        self.message_bytes = sizes[len(sizes) // 2]
        t0 = time.time()
        preload(env.bootstrap, self.in_topic, items)
        print(f"{name}: preloaded {n} requests ({self.message_bytes} bytes median) to "
              f"{self.in_topic} in {time.time() - t0:.1f}s", file=sys.stderr)
        probe = Consumer({"bootstrap.servers": env.bootstrap, "group.id": unique("bench-probe-")})
        self.in_end = watermarks(probe, self.in_topic)
        probe.close()
        self.seq = 0

    def start_raw(self, txn: bool, group: str) -> Proc:
        self.seq += 1
        argv = [self.raw_pipe, "--bootstrap", self.env.bootstrap, "--group", group, "--from",
                self.in_topic, "--to", self.raw_out, "--batch", str(self.args.batch_size)]
        if txn:
            argv += ["--transactions", "--transactional-id", f"{group}-txn"]
        for k, v in self.gw.kafka_properties.items():  # the broker's kafka.properties
            argv += ["-X", f"{k}={v}"]
        name = f"raw{self.seq}"
        return Proc(name, argv, self.gw.workdir / f"{name}.log", self.env.child_env())

    def start_broker(self, txn: bool, group: str) -> Proc:
        # Not Gateway.start_broker: that returns once /readyz answers, when
        # the preloaded input may already be flowing; the CPU sampler must
        # run before the first output.
        self.seq += 1
        self.gw.broker_cfg["group_id"] = group
        self.gw.broker_cfg["transactions"] = txn
        name = f"broker{self.seq}"
        cfg = self.gw.write_config(name, broker_port=0)
        return Proc(name, [self.env.bin("inferq-broker"), "--config", str(cfg)],
                    self.gw.workdir / f"{name}.log", self.env.child_env())

    def measure(self, kind: str, mode: str, services: dict, quiet=False) -> dict:
        txn = mode == "txn"
        start = (lambda g: self.start_raw(txn, g)) if kind == "raw" else \
            (lambda g: self.start_broker(txn, g))
        out = self.raw_out if kind == "raw" else self.model_topic
        return measure(f"{kind} {mode}", start, self.env, self.in_topic, self.in_end, out,
                       self.n, unique(f"{self.gw.prefix}-{kind}-{mode}-"), self.args.timeout,
                       services, quiet)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", "-n", type=int, default=50000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--message-bytes", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=500,
                    help="broker.batch_size and the raw pipe's --batch (the broker's default)")
    ap.add_argument("--modes", default="txn,plain",
                    help="comma-separated: txn (transactions on), plain (off)")
    ap.add_argument("--warmup", type=int, default=2000,
                    help="requests each program and mode handles once, on topics of their own, "
                         "before the measured runs (not reported; 0: none)")
    ap.add_argument("--raw-pipe", help="path of ifq-raw-pipe (default $INFERQ_BUILD_DIR/bin)")
    ap.add_argument("--data", type=Path,
                    default=ifq_e2e.ROOT.parent / "shared" / "data" / "guardrails",
                    help="folder with jailbreak_train.csv (prompt text)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true", help="keep the bench's topics and logs")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("txn", "plain") for m in modes):
        raise SystemExit("--modes: txn and/or plain")

    env = ifq_e2e.load_stack_env()
    if env is None:
        raise SystemExit(f"{ifq_e2e.env_file_path()} not found: "
                         "start the stack (deploy/local/stack.sh up --kafka real)")
    raw_pipe = find_raw_pipe(args.raw_pipe, env)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / unique("inferq-bench-broker-")
    services = service_pids()
    texts, text_src = load_texts(args.data)
    runs = []
    setups: list[Setup] = []
    try:
        if args.warmup > 0:
            # Kafka's code paths (transactions, group joins), the page cache,
            # the guardrail tables: warm before anything is measured.
            w = Setup(env, work, args, raw_pipe, args.warmup, texts, "warmup")
            setups.append(w)
            for mode in modes:
                for kind in ("raw", "broker"):
                    w.measure(kind, mode, {}, quiet=True)
        main_setup = Setup(env, work, args, raw_pipe, args.requests, texts, "bench")
        setups.append(main_setup)
        for r in range(args.runs):
            run = {"run": r + 1}
            print(f"run {r + 1}/{args.runs}", file=sys.stderr)
            for mode in modes:
                # raw first, then the broker, per mode: drift (load from
                # others, Kafka's log segments) reaches both sides alike
                m = {kind: main_setup.measure(kind, mode, services) for kind in ("raw", "broker")}
                m["ratio"] = round(m["broker"]["rps"] / m["raw"]["rps"], 3)
                m["cpu_ratio"] = round(m["broker"]["cpu_us_per_req"] /
                                       m["raw"]["cpu_us_per_req"], 2)
                print(f"  {mode}: ratio {m['ratio']}", file=sys.stderr)
                run[mode] = m
            runs.append(run)
    finally:
        for p in ifq_e2e.ALL_PROCS:
            if p.exit_code is None and p.alive():
                p.stop(60)
        if not args.keep and setups:
            try:
                admin = AdminClient({"bootstrap.servers": env.bootstrap})
                prefixes = tuple(s.gw.prefix + "." for s in setups)
                topics = [t for t in admin.list_topics(timeout=10).topics
                          if t.startswith(prefixes)]
                if topics:
                    for f in admin.delete_topics(topics, operation_timeout=30).values():
                        f.result(60)
            except Exception as e:  # best effort
                print(f"bench: could not delete topics: {e}", file=sys.stderr)

    def med(mode, *path):
        vals = []
        for run in runs:
            d = run.get(mode)
            for p in path:
                d = d.get(p) if isinstance(d, dict) else None
            if d is not None:
                vals.append(d)
        return statistics.median(vals) if vals else None

    median = {}
    for mode in modes:
        median[mode] = {
            "broker_rps": med(mode, "broker", "rps"),
            "raw_rps": med(mode, "raw", "rps"),
            "ratio": med(mode, "ratio"),
            "broker_cpu_us_per_req": med(mode, "broker", "cpu_us_per_req"),
            "raw_cpu_us_per_req": med(mode, "raw", "cpu_us_per_req"),
            "broker_kafka_cpu_us_per_req": med(mode, "broker", "kafka_cpu_us_per_req"),
            "raw_kafka_cpu_us_per_req": med(mode, "raw", "kafka_cpu_us_per_req"),
            "broker_redis_cpu_us_per_req": med(mode, "broker", "redis_cpu_us_per_req"),
        }
    summary = {
        "requests": args.requests,
        "runs": len(runs),
        "message_bytes_median": main_setup.message_bytes,
        "partitions": args.partitions,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "text": text_src,
        "kafka": env.bootstrap,
        "kafka_mode": env.values.get("INFERQ_KAFKA_MODE"),
        "build_dir": str(env.build_dir),
        "raw_pipe": raw_pipe,
        "cpus": os.cpu_count(),
        "target_ratio": 0.6,
        "median": median,
        "per_run": runs,
    }
    print(json.dumps(summary, indent=2))
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
