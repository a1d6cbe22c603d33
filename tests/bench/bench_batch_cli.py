#!/usr/bin/env python3
"""
bench_batch_cli.py - `inferq batch run` on a large OpenAI batch file through
a real gateway (fake model at zero latency), next to kcat producing the same
file to the same request topic in the same run.

    INFERQ_BUILD_DIR=build-rel python3 tests/bench/bench_batch_cli.py \
        [--requests N] [--runs R] [--max-in-flight M] [--worker-inflight W] [--keep]

It needs a running stack (deploy/local/stack.sh up --kafka real; the env file
is read like the e2e suite does) and the binaries in $INFERQ_BUILD_DIR/bin.
It starts its own inferq-fake-model, inferq-broker and inferq-worker on a
unique topic prefix. Per run, with a fresh file of N chat lines (unique
custom_ids):

  cli   inferq batch run IN -o OUT --json: wall time from start to exit,
        requests/s = N / wall, the CLI's user+sys CPU seconds (wait4) and its
        peak RSS (VmHWM, reported by the CLI itself), every result checked.
  kcat  kcat -P -l IN to <prefix>.requests while a consumer (started first,
        at the replies topic's end) waits for the N results: requests/s =
        N / (last result - kcat start). This is the gateway's speed with a
        producer that does nothing but write, i.e. the ceiling for the CLI.

ratio = cli rps / kcat rps; cpu_share = CLI CPU time / CLI wall time (far
below 1: the CLI waits for the gateway, it is not the bottleneck). Prints one
JSON summary with medians. See tests/bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka.admin import AdminClient  # noqa: E402

import ifq_e2e  # noqa: E402
from bench_e2e import ReceiveThread  # noqa: E402
from ifq_e2e import FakeModel, Gateway, deployment, unique  # noqa: E402


def write_file(path: Path, tag: str, n: int):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps(ifq_e2e.chat(f"{tag}-{i}", f"bench {i}"),
                               separators=(",", ":")) + "\n")


def result_key(m):
    try:
        return json.loads(m.value())["custom_id"]
    except (ValueError, KeyError, TypeError):
        return None


def run_cli(gw, inp: Path, out: Path, n: int, max_in_flight: int, timeout: float):
    argv = [gw.env.bin("inferq"), "--config", str(gw.cli_config), "batch", "run", str(inp),
            "-o", str(out), "--json", "--quiet", "--max-in-flight", str(max_in_flight),
            "--timeout", "120"]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=gw.env.child_env())
    try:
        o, e = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        raise SystemExit(f"cli: not done within {timeout}s")
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"cli: exit {p.returncode}: {e.decode()[-2000:]}")
    s = json.loads(o)
    lines = out.read_text().splitlines()
    ids = {json.loads(l)["custom_id"] for l in lines}
    if s["succeeded"] != n or len(lines) != n or len(ids) != n:
        raise SystemExit(f"cli: {s} / {len(lines)} lines / {len(ids)} ids")
    return wall, s


def run_kcat(gw, inp: Path, n: int, timeout: float):
    rt = ReceiveThread(gw.env.bootstrap, gw.replies, result_key, n)
    rt.start()
    t0 = time.time()
    k = subprocess.run(["kcat", "-P", "-b", gw.env.bootstrap, "-t", gw.requests, "-l", str(inp)],
                       capture_output=True, timeout=timeout)
    produce_s = time.time() - t0
    if k.returncode != 0:
        rt.stop()
        raise SystemExit(f"kcat: exit {k.returncode}: {k.stderr.decode()[-1000:]}")
    done = rt.done.wait(timeout)
    rt.stop()
    if not done or len(rt.seen) < n:
        raise SystemExit(f"kcat: only {len(rt.seen)}/{n} results within {timeout}s")
    failed = sum(1 for v in rt.seen.values() if json.loads(v[2])["error"] is not None)
    last = max(v[0] for v in rt.seen.values()) / 1000.0
    return last - t0, produce_s, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", "-n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-in-flight", type=int, default=10000, help="the CLI's window")
    ap.add_argument("--worker-inflight", type=int, default=512)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not shutil.which("kcat"):
        raise SystemExit("kcat not found")
    env = ifq_e2e.load_stack_env()
    if env is None:
        raise SystemExit(f"{ifq_e2e.env_file_path()} not found: start the stack")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / unique("inferq-bench-cli-")
    fake = FakeModel(env, work, "fake")
    gw = Gateway(env, work / "gw",
                 deployments={"bench-chat": deployment(fake.base_url, "fake-chat",
                                                       max_inflight=args.worker_inflight)},
                 aliases={"chat-default": ["bench-chat"]},
                 worker={"max_inflight": args.worker_inflight}, partitions=args.partitions)
    runs = []
    try:
        gw.start_broker()
        gw.start_worker()
        # warm-up: topics, connections, fetch sessions (not reported)
        warm = work / "warm.jsonl"
        write_file(warm, unique("w"), 2000)
        run_cli(gw, warm, work / "warm.out.jsonl", 2000, args.max_in_flight, args.timeout)
        write_file(warm, unique("wk"), 2000)
        run_kcat(gw, warm, 2000, args.timeout)
        for r in range(args.runs):
            inp = work / f"in{r}.jsonl"
            # the CLI's file; kcat gets the same lines with other custom_ids
            write_file(inp, unique("c"), args.requests)
            size = inp.stat().st_size
            before = os.times()
            wall, s = run_cli(gw, inp, work / f"out{r}.jsonl", args.requests,
                              args.max_in_flight, args.timeout)
            after = os.times()
            cpu = (after.children_user - before.children_user) + \
                (after.children_system - before.children_system)
            kin = work / f"kin{r}.jsonl"
            write_file(kin, unique("k"), args.requests)
            kwall, kprod, kfailed = run_kcat(gw, kin, args.requests, args.timeout)
            run = {"run": r + 1, "file_bytes": size,
                   "cli": {"wall_s": round(wall, 3), "rps": round(args.requests / wall, 1),
                           # first request sent -> last result (without start-up,
                           # the duplicate check and shutdown)
                           "span_s": s["elapsed_s"],
                           "rps_span": round(args.requests / s["elapsed_s"], 1),
                           "cpu_s": round(cpu, 3), "cpu_share": round(cpu / wall, 3),
                           "peak_rss_kib": s["peak_rss_kib"], "failed": s["failed"]},
                   "kcat": {"wall_s": round(kwall, 3), "rps": round(args.requests / kwall, 1),
                            "produce_s": round(kprod, 3), "failed": kfailed}}
            run["ratio"] = round(run["cli"]["rps"] / run["kcat"]["rps"], 3)
            runs.append(run)
            print(f"run {r + 1}: cli {run['cli']['rps']} req/s ({run['cli']['rps_span']} sending"
                  f" to last result; cpu {cpu:.2f} s of "
                  f"{wall:.2f} s, peak RSS {s['peak_rss_kib']} KiB) | kcat {run['kcat']['rps']} "
                  f"req/s | ratio {run['ratio']}", file=sys.stderr)
            for f in (inp, kin, work / f"out{r}.jsonl"):
                f.unlink()
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
            shutil.rmtree(work, ignore_errors=True)
        bad = {k: v for k, v in codes.items() if v != 0}
        if bad:
            print(f"bench: programs exited non-zero: {bad}", file=sys.stderr)

    def med(*path):
        vals = []
        for run in runs:
            d = run
            for p in path:
                d = d[p]
            vals.append(d)
        return statistics.median(vals) if vals else None

    print(json.dumps({
        "requests": args.requests, "runs": len(runs), "max_in_flight": args.max_in_flight,
        "worker_inflight": args.worker_inflight, "build_dir": str(env.build_dir),
        "median": {"cli_rps": med("cli", "rps"), "cli_rps_span": med("cli", "rps_span"),
                   "cli_cpu_share": med("cli", "cpu_share"),
                   "cli_peak_rss_kib": med("cli", "peak_rss_kib"),
                   "kcat_rps": med("kcat", "rps"), "ratio": med("ratio")},
        "per_run": runs}, indent=2))


if __name__ == "__main__":
    main()
