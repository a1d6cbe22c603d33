"""
`inferq batch run`, `inferq tail` and `inferq usage` against a private broker
and worker on the real stack (docs/cli.md):

- the example file of OpenAI's Batch API documentation runs as-is;
- good and failing lines, failures to the --errors file, exit 1;
- a duplicate custom_id (and a broken line) is refused with file:line before
  anything reaches the request topic;
- --max-in-flight bounds the requests the model sees at once;
- SIGINT mid-batch exits 130 and --resume completes it with every custom_id
  exactly once in OUT (a torn last line is cut off);
- peak RSS of the CLI does not grow with the input file (5k vs 30k lines);
- plain progress lines when stderr is not a TTY;
- tail (follow, --no-follow, --raw, --filter-status);
- usage numbers equal what the batch's results report;
- --help of every command and the documented exit codes.
"""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from ifq_e2e import (TopicReader, chat, deployment, describe, embed, ensure_topic, unique,
                     wait_until)

DATA = Path(__file__).resolve().parent / "data"
TEAM = "acme"


@pytest.fixture(scope="module")
def gw(make_gateway, fake):
    chat_dep = deployment(fake.base_url, "fake-chat", price_input_per_mtok=1.5,
                          price_output_per_mtok=4.0)
    g = make_gateway(
        deployments={"fake-chat": chat_dep,
                     "fake-embed": deployment(fake.base_url, "fake-embed")},
        # the model name of OpenAI's example file maps to the fake by an alias
        aliases={"chat-default": ["fake-chat"], "embed-default": ["fake-embed"],
                 "gpt-3.5-turbo-0125": ["fake-chat"]},
        worker={"max_inflight": 256},
        extra={"teams": {TEAM: {"models": ["chat-default", "embed-default",
                                            "gpt-3.5-turbo-0125"],
                                 "reply_topics": ["*"]}},
               "broker": {"default_team": TEAM}})
    g.start_worker()
    return g


def cli_argv(gw, *args):
    return [gw.env.bin("inferq"), "--config", str(gw.cli_config), *args]


def cli(gw, *args, timeout=180, env=None):
    p = subprocess.run(cli_argv(gw, *args), capture_output=True, timeout=timeout,
                       env=env or gw.env.child_env())
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def write_jsonl(path: Path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def read_jsonl(path: Path):
    """The complete lines of a JSONL file (one being written may end in a
    partial line)."""
    if not path.exists():
        return []
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def ids_of(rows):
    return [r["custom_id"] for r in rows]


def requests_topic_ends(gw):
    """{partition: high watermark} of the request topic."""
    c = Consumer({"bootstrap.servers": gw.env.bootstrap, "group.id": unique("e2e-wm-")})
    try:
        md = c.list_topics(gw.requests, timeout=10).topics[gw.requests]
        return {p: c.get_watermark_offsets(TopicPartition(gw.requests, p), timeout=10)[1]
                for p in md.partitions}
    finally:
        c.close()


def vm_hwm_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(argv, env, timeout=300):
    """Runs argv; returns (rc, stdout, stderr, peak RSS in KiB seen from
    outside (VmHWM polled while it runs: a lower bound))."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    os.set_blocking(p.stdout.fileno(), False)
    os.set_blocking(p.stderr.fileno(), False)
    out, err, hwm = b"", b"", 0
    deadline = time.monotonic() + timeout
    while p.poll() is None:
        hwm = max(hwm, vm_hwm_kib(p.pid))
        out += p.stdout.read() or b""
        err += p.stderr.read() or b""
        if time.monotonic() > deadline:
            p.kill()
            raise AssertionError(f"{argv[:4]} did not finish within {timeout}s")
        time.sleep(0.05)  # sampling period of the outside RSS probe
    out += p.stdout.read() or b""
    err += p.stderr.read() or b""
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), hwm


# --------------------------------------------------------------------------


def test_help_of_every_command_and_usage_errors(gw):
    rc, out, err = cli(gw, "--help")
    assert rc == 0 and "usage: inferq" in out, err
    for cmd in ("submit", "batch", "status", "models", "usage", "tail", "prompt", "guard", "trace"):
        assert re.search(rf"^  {cmd}\b", out, re.M), f"{cmd} missing from inferq --help"
        rc, o, e = cli(gw, cmd, "--help")
        assert rc == 0, f"inferq {cmd} --help: exit {rc}: {e}"
        assert f"inferq {cmd}" in o, f"inferq {cmd} --help printed: {o!r}"
    rc, o, e = cli(gw, "batch", "run", "--help")
    assert rc == 0 and "--max-in-flight" in o and "--resume" in o, o
    # help needs no reachable configuration
    rc, o, e = cli(gw, "usage", "--help", env=gw.env.child_env(
        {"INFERQ_REDIS_URL": "redis://127.0.0.1:1/0"}))
    assert rc == 0 and "--since" in o
    # usage errors: 2
    assert cli(gw, "no-such-command")[0] == 2
    assert cli(gw, "batch", "run", "--no-such-flag", "x", "-o", "y")[0] == 2
    assert cli(gw, "batch", "run", "missing.jsonl")[0] == 2  # no -o
    assert cli(gw, "usage", "--since", "yesterdayish")[0] == 2
    assert cli(gw, "tail", "--max", "zero")[0] == 2


def test_openai_documentation_example_runs_as_is(gw, tmp_path):
    src = DATA / "openai_batch_example.jsonl"
    out = tmp_path / "out.jsonl"
    rc, o, e = cli(gw, "batch", "run", str(src), "-o", str(out), "--json", "--timeout", "120")
    assert rc == 0, f"exit {rc}\n{e}"
    res = {r["custom_id"]: r for r in read_jsonl(out)}
    assert sorted(res) == ["request-1", "request-2"]
    for r in res.values():
        assert r["error"] is None and r["inferq"]["status"] == "succeeded", describe(r)
        assert r["inferq"]["model_requested"] == "gpt-3.5-turbo-0125"
        assert r["inferq"]["deployment"] == "fake-chat"
        assert r["response"]["body"]["choices"][0]["message"]["content"] == "echo: Hello world!"
    summary = json.loads(o)
    assert summary["sent"] == 2 and summary["succeeded"] == 2 and summary["exit"] == 0, summary


def test_good_and_failing_lines_go_to_out_and_errors(gw, tmp_path):
    tag = unique("mix")
    rows, good, rejected, failed = [], [], [], []
    for i in range(40):
        cid = f"{tag}-{i:03d}"
        if i % 8 == 3:
            rows.append(chat(cid, "hi", model="no-such-model"))
            rejected.append(cid)
        elif i % 8 == 5:
            rows.append(chat(cid, "[[fake:status=400]] bad"))
            failed.append(cid)
        else:
            rows.append(chat(cid, f"line {i}"))
            good.append(cid)
    inp, out, errf = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    write_jsonl(inp, rows)
    rc, o, e = cli(gw, "batch", "run", str(inp), "-o", str(out), "--errors", str(errf), "--json",
                   "--timeout", "120")
    assert rc == 1, f"exit {rc} (want 1: some failed)\n{e}"
    outs, errs = read_jsonl(out), read_jsonl(errf)
    assert sorted(ids_of(outs)) == sorted(good)
    assert all(r["error"] is None for r in outs), [describe(r) for r in outs if r["error"]]
    assert sorted(ids_of(errs)) == sorted(rejected + failed)
    codes = {r["custom_id"]: r["error"]["code"] for r in errs}
    # the team's model list is checked first: an unknown model is not allowed
    assert all(codes[c] == "model_not_allowed" for c in rejected), codes
    assert all(r["inferq"]["status"] == "failed" for r in errs if r["custom_id"] in failed)
    s = json.loads(o)
    assert (s["succeeded"], s["failed"], s["missing"]) == (len(good), len(rejected + failed), 0)

    # tail --no-follow --from-beginning with a status filter sees exactly the rejected ones
    rc, o, e = cli(gw, "tail", "--from-beginning", "--no-follow", "--filter-status", "rejected",
                   timeout=60)
    assert rc == 0, e
    lines = [l for l in o.splitlines() if l.startswith(tag)]
    assert sorted(l.split()[0] for l in lines) == sorted(rejected), o
    assert all("model_not_allowed" in l and " rejected " in l for l in lines), lines
    # --raw prints the records as JSONL; without it no answer text is shown
    rc, o, e = cli(gw, "tail", "--from-beginning", "--no-follow", "--raw", timeout=60)
    raw = [json.loads(l) for l in o.splitlines()]
    assert set(good) <= {r["custom_id"] for r in raw}
    rc, o, e = cli(gw, "tail", "--from-beginning", "--no-follow", timeout=60)
    assert "echo: line" not in o and f"{good[0]}" in o


def replies_total(gw):
    c = Consumer({"bootstrap.servers": gw.env.bootstrap, "group.id": unique("e2e-wm-")})
    try:
        md = c.list_topics(gw.replies, timeout=10).topics[gw.replies]
        return sum(c.get_watermark_offsets(TopicPartition(gw.replies, p), timeout=10)[1]
                   for p in md.partitions)
    finally:
        c.close()


def test_a_burst_of_queued_results_is_read_completely(gw, fake, tmp_path):
    """Thousands of results waiting at once (the CLI was stopped while the
    gateway answered): every one is matched and written."""
    tag = unique("burst")
    n = 3000
    # 300 ms a request, 256 at once in the worker: the gateway needs 3.5 s or
    # more, while the CLI sends all 3000 in well under a second
    rows = [chat(f"{tag}-{i}", f"[[fake:latency=300]] b {i}") for i in range(n)]
    inp, out = tmp_path / "burst.jsonl", tmp_path / "burst.out.jsonl"
    write_jsonl(inp, rows)
    base_req, base = sum(requests_topic_ends(gw).values()), replies_total(gw)
    p = subprocess.Popen(cli_argv(gw, "batch", "run", str(inp), "-o", str(out), "--max-in-flight",
                                  str(n), "--timeout", "60", "--quiet", "--json"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=gw.env.child_env())
    try:
        # once every request is in Kafka, stop the CLI, let the results pile
        # up on the reply topic, then let it go on
        wait_until(lambda: sum(requests_topic_ends(gw).values()) - base_req >= n or
                   p.poll() is not None, 60, "all requests on the request topic", 0.02)
        p.send_signal(signal.SIGSTOP)
        try:
            read_before = replies_total(gw) - base
            wait_until(lambda: replies_total(gw) - base >= n, 120,
                       "every result on the reply topic", 0.2)
        finally:
            p.send_signal(signal.SIGCONT)
        o, e = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert read_before < n - 1500, f"no burst: {read_before} results before the stop"
    assert p.returncode == 0, f"exit {p.returncode}\n{e.decode()[-1500:]}"
    assert sorted(ids_of(read_jsonl(out))) == sorted(r["custom_id"] for r in rows)


def test_duplicate_custom_id_or_bad_line_refused_before_anything_is_sent(gw, tmp_path):
    tag = unique("dup")
    rows = [chat(f"{tag}-{i}", "x") for i in range(2000)]
    rows[1499] = chat(f"{tag}-2", "again")  # line 1500 repeats line 3's id
    inp, out = tmp_path / "dup.jsonl", tmp_path / "out.jsonl"
    write_jsonl(inp, rows)
    before = requests_topic_ends(gw)
    rc, o, e = cli(gw, "batch", "run", str(inp), "-o", str(out))
    assert rc == 2, f"exit {rc}\n{e}"
    assert f"{inp}:1500: duplicate custom_id '{tag}-2' (first at line 3)" in e, e
    assert not out.exists(), "the output file was created for a refused batch"
    # a broken line is refused the same way
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(chat(f"{tag}-ok", "x")) + "\n" + '{"custom_id": "x", "url": \n')
    rc, o, e = cli(gw, "batch", "run", str(bad), "-o", str(out))
    assert rc == 2 and f"{bad}:2: not JSON" in e, e
    bad.write_text(json.dumps({"url": "/v1/chat/completions", "body": {}}) + "\n")
    rc, o, e = cli(gw, "batch", "run", str(bad), "-o", str(out))
    assert rc == 2 and f"{bad}:1: not a batch request line" in e, e
    # The CLI has exited: whatever it produced is in the log by now. The request
    # topic's ends did not move.
    assert requests_topic_ends(gw) == before


def test_max_in_flight_bounds_concurrency_and_progress_lines_without_tty(gw, fake, tmp_path):
    def run(n_in_flight, n_lines):
        tag = unique("mif")
        rows = [chat(f"{tag}-{i}", f"[[fake:latency=150]] slow {i}") for i in range(n_lines)]
        inp, out = tmp_path / f"{tag}.jsonl", tmp_path / f"{tag}.out.jsonl"
        write_jsonl(inp, rows)
        wait_until(lambda: fake.stats()["in_flight"] == 0, 30, "the fake model to be idle")
        fake.reset()
        rc, o, e = cli(gw, "batch", "run", str(inp), "-o", str(out), "--max-in-flight",
                       str(n_in_flight), "--progress-interval", "0.3", "--timeout", "120")
        assert rc == 0, f"exit {rc}\n{e}"
        assert sorted(ids_of(read_jsonl(out))) == sorted(r["custom_id"] for r in rows)
        return fake.stats()["max_in_flight"], e

    peak, err = run(4, 48)  # 48 x 150 ms / 4 = 1.8 s at least
    assert 1 <= peak <= 4, f"the model saw {peak} requests at once with --max-in-flight 4"
    progress = re.findall(r"^inferq batch: (\d+)/48 done \(\d+%\), \d+ failed, \d+ in flight, "
                          r"\d+/s, ETA [-\d:]+$", err, re.M)
    assert len(progress) >= 3, f"want periodic progress lines, got:\n{err}"
    assert "\r" not in err and "\033[" not in err, "TTY control codes on a non-TTY"
    assert [int(x) for x in progress] == sorted(int(x) for x in progress)
    assert int(progress[-1]) == 48
    # the same file with a larger window: the bound above is the CLI's doing
    peak, _ = run(32, 48)
    assert peak > 4, f"with --max-in-flight 32 the model saw only {peak} at once"


def test_progress_bar_on_a_tty(gw, tmp_path):
    import pty
    tag = unique("tty")
    rows = [chat(f"{tag}-{i}", f"[[fake:latency=100]] t {i}") for i in range(40)]
    inp, out = tmp_path / "tty.jsonl", tmp_path / "tty.out.jsonl"
    write_jsonl(inp, rows)
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(cli_argv(gw, "batch", "run", str(inp), "-o", str(out),
                                      "--max-in-flight", "8", "--timeout", "120"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                             env=gw.env.child_env())
        os.close(slave)
        slave = -1
        buf = b""
        while True:
            try:
                chunk = os.read(master, 65536)  # EIO once the child closed the pty
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        assert p.wait(60) == 0, buf.decode(errors="replace")[-2000:]
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = buf.decode(errors="replace")
    bars = re.findall(r"\r\[([#.]{30})\] +(\d+)% (\d+)/40 +\d+/s +ETA [-\d:]+ +in flight \d+ +"
                      r"failed 0\x1b\[K", text)
    assert len(bars) >= 2, f"no progress bar on a TTY:\n{text[-1500:]!r}"
    assert bars[-1][1:] == ("100", "40") and bars[-1][0] == "#" * 30, bars[-1]
    assert "inferq batch:" not in text, "plain progress lines on a TTY"


def test_sigint_then_resume_gives_every_custom_id_exactly_once(gw, tmp_path):
    tag = unique("res")
    n = 300
    rows = [chat(f"{tag}-{i:04d}", f"[[fake:latency=100]] r {i}") for i in range(n)]
    inp, out, errf = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    write_jsonl(inp, rows)
    argv = cli_argv(gw, "batch", "run", str(inp), "-o", str(out), "--errors", str(errf),
                    "--max-in-flight", "10", "--grace", "10", "--timeout", "120")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=gw.env.child_env())
    try:
        wait_until(lambda: len(read_jsonl(out)) >= 40 or p.poll() is not None, 90,
                   "40 results in the output file")
        assert p.poll() is None, f"the batch ended before the interrupt: {p.stderr.read()}"
        p.send_signal(signal.SIGINT)
        o, e = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    e = e.decode()
    assert p.returncode == 130, f"exit {p.returncode}\n{e}"
    assert "interrupted" in e and "--resume" in e, e
    first = ids_of(read_jsonl(out))
    assert 40 <= len(first) < n, len(first)
    assert len(set(first)) == len(first)
    # a crash may leave a torn last line: resume cuts it off
    with open(out, "a") as f:
        f.write('{"id": "ifq_torn", "custom_id": "' + f"{tag}-torn")
    rc, o, e = cli(gw, "batch", "run", str(inp), "-o", str(out), "--errors", str(errf),
                   "--resume", "--max-in-flight", "50", "--json", "--timeout", "120")
    assert rc == 0, f"exit {rc}\n{e}"
    assert "torn last line" in e, e
    s = json.loads(o)
    assert s["skipped"] == len(first) and s["sent"] == n - len(first), s
    results = read_jsonl(out) + read_jsonl(errf)
    ids = ids_of(results)
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup, f"duplicates in OUT after resume: {sorted(dup)[:10]}"
    assert sorted(ids) == sorted(r["custom_id"] for r in rows)
    assert all(r["error"] is None for r in results)
    # a resume with nothing left to do sends nothing and succeeds
    rc, o, e = cli(gw, "batch", "run", str(inp), "-o", str(out), "--resume", "--json")
    assert rc == 0 and json.loads(o)["sent"] == 0, e


def test_peak_rss_does_not_grow_with_the_input_file(gw, tmp_path):
    asan = b"__asan_init" in Path(gw.env.bin("inferq")).read_bytes()  # a sanitizer build
    pad = "lorem ipsum " * 120  # ~1.5 KB a line: 30k lines = ~45 MB of input
    rss = {}
    for n in (5_000, 30_000):
        tag = unique(f"mem{n}-")
        inp, out = tmp_path / f"in{n}.jsonl", tmp_path / f"out{n}.jsonl"
        with open(inp, "w") as f:
            for i in range(n):
                f.write(json.dumps(chat(f"{tag}-{i}", f"{i} {pad}")) + "\n")
        rc, o, e, seen_kib = run_measured(
            cli_argv(gw, "batch", "run", str(inp), "-o", str(out), "--quiet", "--json",
                     "--max-in-flight", "200", "--timeout", "120"),
            gw.env.child_env({"ASAN_OPTIONS": "quarantine_size_mb=1:detect_leaks=1"}
                             if asan else None))
        assert rc == 0, f"exit {rc}\n{e[-2000:]}"
        s = json.loads(o)
        assert s["succeeded"] == n, s
        # the CLI's own VmHWM (read just before it exits) and what we saw from
        # outside (sampled): the larger one
        assert seen_kib > 0 and s["peak_rss_kib"] > 0, (seen_kib, s)
        rss[n] = max(seen_kib, s["peak_rss_kib"])
        print(f"{n} lines ({inp.stat().st_size >> 20} MiB): peak RSS {rss[n]} KiB")
    # 16-32 bytes per line of hash set plus buffers that depend on the window
    # (--max-in-flight), not on the file: +25k lines is < 1 MiB of hash set,
    # while the input grew by ~37 MB. Under ASan (shadow memory, allocator
    # caches) the figures are larger; the growth bound still separates
    # "streams" from "loads the file".
    grow = rss[30_000] - rss[5_000]
    limit = 16 * 1024 if asan else 4 * 1024
    assert grow < limit, f"peak RSS grew by {grow} KiB from 5k to 30k lines: {rss}"
    if not asan:
        assert rss[30_000] < 96 * 1024, f"peak RSS {rss[30_000]} KiB"


def test_tail_follows_a_reply_topic(gw, tmp_path):
    topic = gw.topic("replies.tail")
    ensure_topic(gw.env.bootstrap, topic, 2)
    tail = subprocess.Popen(cli_argv(gw, "tail", topic, "--from-beginning"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=gw.env.child_env())
    try:
        tag = unique("tail")
        rows = [chat(f"{tag}-{i}", "hello") for i in range(5)] + \
               [embed(f"{tag}-e{i}", "vec") for i in range(2)]
        inp, out = tmp_path / "t.jsonl", tmp_path / "t.out.jsonl"
        write_jsonl(inp, rows)
        # the batch's requests name the private topic; the team may use it
        rc, o, e = cli(gw, "batch", "run", str(inp), "-o", str(out), "--reply-to", topic,
                       "--timeout", "120")
        if rc == 1:
            pytest.fail(f"results: {[describe(r) for r in read_jsonl(out)]}")
        assert rc == 0, e
        seen = {}
        os.set_blocking(tail.stdout.fileno(), False)
        buf = b""

        def all_seen():
            nonlocal buf
            chunk = tail.stdout.read()
            if chunk:
                buf += chunk
            for l in buf.decode(errors="replace").splitlines():
                if l.split() and l.split()[0].startswith(tag):
                    seen[l.split()[0]] = l
            return len(seen) == len(rows)

        wait_until(all_seen, 60, "tail to print every result")
        line = seen[f"{tag}-0"]
        assert re.match(rf"{tag}-0 +succeeded +chat-default -> fake-chat +\d+/\d+ +\d+ms +-$",
                        line), line
        assert "echo" not in buf.decode(), "tail printed answer text without --raw"
        tail.send_signal(signal.SIGINT)
        assert tail.wait(30) == 130
    finally:
        if tail.poll() is None:
            tail.kill()


def usage_rows(gw, *args):
    rc, o, e = cli(gw, "usage", "--json", "--since", "24h", *args, timeout=60)
    assert rc in (0, 1), e
    return json.loads(o)


def test_usage_matches_the_requests_sent(gw, tmp_path):
    def snapshot():
        u = usage_rows(gw, "--team", TEAM)
        d = usage_rows(gw, "--by", "deployment")
        rows = {r["model"]: r for r in u["rows"]}
        deps = {r["deployment"]: r for r in d["rows"]}
        return rows, deps

    zero = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    # Workers add to the per-deployment counters once a second: the baseline
    # is taken once earlier tests' counts have landed (unchanged for 1.5 s,
    # longer than the flush interval).
    last = {"snap": None, "since": 0.0}

    def settled():
        snap = snapshot()
        if snap != last["snap"]:
            last["snap"], last["since"] = snap, time.monotonic()
            return None
        return snap if time.monotonic() - last["since"] >= 1.5 else None

    before, before_dep = wait_until(settled, 30, "usage counters to settle", 0.25)
    tag = unique("use")
    rows = [chat(f"{tag}-c{i}", "count me " * (i + 1)) for i in range(30)] + \
           [embed(f"{tag}-e{i}", "vector") for i in range(10)]
    inp, out = tmp_path / "u.jsonl", tmp_path / "u.out.jsonl"
    write_jsonl(inp, rows)
    rc, o, e = cli(gw, "batch", "run", str(inp), "-o", str(out), "--timeout", "120")
    assert rc == 0, e
    results = read_jsonl(out)
    want = {}
    for r in results:
        m = r["inferq"]["model_requested"]
        w = want.setdefault(m, dict(zero))
        u = r["inferq"]["usage"]
        w["requests"] += 1
        w["input_tokens"] += u.get("prompt_tokens", 0)
        w["output_tokens"] += u.get("completion_tokens", 0)
        w["cost_usd"] += r["inferq"]["cost_usd"]
    assert want["chat-default"]["cost_usd"] > 0

    def delta():
        after, after_dep = snapshot()
        d = {}
        for m in want:
            a, b = after.get(m, zero), before.get(m, zero)
            d[m] = {k: a[k] - b[k] for k in zero}
        dd = after_dep.get("fake-chat", zero)["requests"] - \
            before_dep.get("fake-chat", zero)["requests"]
        done = all(d[m]["requests"] == want[m]["requests"] for m in want) and dd == 30
        return (d, dd) if done else None

    # the workers send their counters with the next Redis round trip
    d, dd = wait_until(delta, 30, "usage counters to count the batch", 0.2)
    for m in want:
        for k in ("requests", "input_tokens", "output_tokens"):
            assert d[m][k] == want[m][k], (m, k, d[m], want[m])
        assert abs(d[m]["cost_usd"] - want[m]["cost_usd"]) < 1e-6, (m, d[m], want[m])

    # --scan (SCAN over the keyspace instead of the configured names) agrees
    scanned = {r["model"]: r for r in usage_rows(gw, "--team", TEAM, "--scan")["rows"]}
    direct = {r["model"]: r for r in usage_rows(gw, "--team", TEAM)["rows"]}
    assert scanned == direct

    # the table: aligned columns and a TOTAL row equal to the sum of the rows
    rc, o, e = cli(gw, "usage", "--team", TEAM, "--since", "24h")
    assert rc == 0, e
    lines = o.splitlines()
    assert lines[0].split()[:3] == ["TEAM", "MODEL", "REQUESTS"], o
    assert lines[-1].startswith("TOTAL"), o
    assert len({len(l) for l in lines}) == 1, f"columns not aligned:\n{o}"
    body = [l.split() for l in lines[1:-1]]
    assert sum(int(r[2]) for r in body) == int(lines[-1].split()[1])
    assert {r[1] for r in body} >= {"chat-default", "embed-default"}
    # exit 1 when nothing matches, 3 when Redis is unreachable
    assert cli(gw, "usage", "--team", "nobody")[0] == 1
    rc, o, e = cli(gw, "usage", env=gw.env.child_env({"INFERQ_REDIS_URL": "redis://127.0.0.1:1/0"}))
    assert rc == 3, e


def test_exit_codes_for_status_and_unreachable_kafka(gw, tmp_path):
    rc, o, e = cli(gw, "status", unique("nothing-"))
    assert rc == 1, e
    inp = tmp_path / "one.jsonl"
    write_jsonl(inp, [chat(unique("k"), "x")])
    rc, o, e = cli(gw, "batch", "run", str(inp), "-o", str(tmp_path / "o.jsonl"),
                   env=gw.env.child_env({"INFERQ_KAFKA_BOOTSTRAP": "127.0.0.1:1"}), timeout=90)
    assert rc == 3, e
