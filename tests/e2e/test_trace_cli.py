"""
`inferq trace CUSTOM_ID` on real Kafka and Redis: for a request that the
module's own gateway really processed (its Redis state holds trace_id and
received_ms), synthetic OTLP/JSON spans are produced to the traces topic
(tests/e2e/otlp_synth.py) together with noise (a malformed message under the
same key, another trace's message); the CLI must find exactly the request's
spans, draw them as a tree with a timeline, print them as JSON, wait for
late spans with --wait, and exit 1 / 2 / 3 for an unknown request, usage
errors, unreachable Redis and a request without spans. That gateway has tracing off, so the
synthetic spans are the only ones; a second gateway with tracing on checks
the CLI on the spans the broker and worker really write, across a failover.
"""
import json
import re
import subprocess
import threading

import pytest

from ifq_e2e import Produce, ReplyCollector, chat, deployment, describe, unique
from otlp_synth import produce_spans, request_spans, request_state


@pytest.fixture(scope="module")
def gw(make_gateway, stack_env):
    g = make_gateway(deployments={"fake-chat": deployment(stack_env.fake_url)},
                     aliases={"chat-default": ["fake-chat"]},
                     extra={"trace": {"enabled": False}})
    g.start_worker()
    return g


@pytest.fixture(scope="module")
def gw_traced(make_gateway, stack_env):
    """Tracing on; "chat-default" fails over from a deployment nobody
    listens on to the fake model."""
    g = make_gateway(deployments={"dead": deployment("http://127.0.0.1:1/v1"),
                                  "fake-chat": deployment(stack_env.fake_url)},
                     aliases={"chat-default": ["dead", "fake-chat"]},
                     worker={"max_attempts": 2})
    g.start_worker()
    return g


def process(gw, n=1):
    """Sends n requests through the gateway; returns their custom_ids once
    answered."""
    ids = [unique("trace-") for _ in range(n)]
    replies = ReplyCollector(gw.env.bootstrap, gw.replies)
    try:
        p = Produce(gw.env.bootstrap)
        for cid in ids:
            p.send(gw.requests, chat(cid, "hello"), key=cid)
        p.flush()
        res = replies.results(ids, timeout=90)
    finally:
        replies.close()
    for cid in ids:
        assert res[cid]["inferq"]["status"] == "succeeded", describe(res[cid])
    return ids


def run_cli(gw, *args, env=None, timeout=90, config=None):
    argv = [gw.env.bin("inferq"), "--config", str(config or gw.cli_config), "trace", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=env or gw.env.child_env({"LANG": "C.UTF-8"}))


def state_of(gw, cid):
    st = request_state(gw.env.redis_url, gw.prefix, cid)
    assert st.get("trace_id") and st.get("received_ms"), st
    return st


def test_trace_draws_the_requests_spans_as_a_tree(gw):
    cid = process(gw)[0]
    st = state_of(gw, cid)
    spans = request_spans(st, cid)
    produce_spans(gw.env.bootstrap, gw.topic("traces"), st["trace_id"], spans)

    r = run_cli(gw, cid, "--width", "140")
    assert r.returncode == 0, r.stderr + r.stdout
    out = r.stdout
    assert f"request {cid}  state succeeded" in out
    assert st["trace_id"] in out
    assert "6 span(s) from 2 service(s)" in out
    assert "1 malformed" in out  # the garbage message under the same key
    assert "other" not in out.split("STAGE", 1)[1]  # another trace's span
    rows = [line for line in out.splitlines() if "|" in line and "ms" in line]
    names = [line.split()[0] for line in rows]
    assert names == ["broker.request", "guardrails.input", "route", "worker.attempt",
                     "worker.attempt", "chat"], out
    indent = [len(line) - len(line.lstrip()) for line in rows]
    assert indent == [0, 2, 2, 2, 2, 4], out
    assert all(re.search(r"inferq-(broker|worker)", line) for line in rows)
    # start offsets and durations from the root
    assert re.search(r"chat fake-chat\s+inferq-worker\s+95\.0 ms\s+53\.0 ms", out), out
    # the timeline: every bar inside |...| of the same width, the failed
    # attempt drawn with x
    bars = [line[line.index("|"):] for line in rows]
    assert len({len(b) for b in bars}) == 1
    assert "x" in bars[3] and "x" not in bars[4]
    # key attributes under their span
    assert "deployment=fake-chat" in out
    assert "status=200 tokens_in=3 tokens_out=9" in out
    assert "error.type=503" in out and "ERROR: upstream 503" in out
    assert 'inferq.guardrail.findings=["EMAIL_ADDRESS:redact"]' in out


def test_trace_json_prints_the_spans(gw):
    cid = process(gw)[0]
    st = state_of(gw, cid)
    produce_spans(gw.env.bootstrap, gw.topic("traces"), st["trace_id"], request_spans(st, cid))
    r = run_cli(gw, "--json", cid)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["custom_id"] == cid and doc["trace_id"] == st["trace_id"]
    assert doc["state"]["state"] == "succeeded"
    assert doc["malformed"] == 1
    spans = doc["spans"]
    assert [s["span_id"] for s in spans] == [
        "b000000000000001", "b000000000000002", "b000000000000003", "c000000000000001",
        "c000000000000002", "c000000000000003"]
    assert [s["depth"] for s in spans] == [0, 1, 1, 1, 1, 2]
    assert spans[0]["parent_span_id"] is None
    assert spans[5]["parent_span_id"] == "c000000000000002"
    assert {s["service"] for s in spans} == {"inferq-broker", "inferq-worker"}
    assert all(s["trace_id"] == st["trace_id"] for s in spans)
    assert all(s["attributes"]["inferq.custom_id"] == cid for s in spans)
    chat_span = spans[5]
    assert chat_span["attributes"]["gen_ai.usage.output_tokens"] == 9  # an integer, not "9"
    assert chat_span["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat_span["offset_ms"] == pytest.approx(95.0)
    assert chat_span["duration_ms"] == pytest.approx(53.0)
    assert spans[3]["status"] == {"code": 2, "message": "upstream 503"}
    assert int(spans[0]["start_unix_nano"]) == int(st["received_ms"]) * 1_000_000


def test_trace_waits_for_spans_written_later(gw):
    cid = process(gw)[0]
    st = state_of(gw, cid)
    # Without --wait: the request is known, no span yet.
    r = run_cli(gw, cid)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no spans found" in r.stdout
    result = {}
    t = threading.Thread(target=lambda: result.update(r=run_cli(gw, cid, "--wait", "60")))
    t.start()
    try:
        spans = request_spans(st, cid)
        # the broker's hop first, the worker's a moment later
        produce_spans(gw.env.bootstrap, gw.topic("traces"), st["trace_id"],
                      {"inferq-broker": spans["inferq-broker"]}, noise=False)
        produce_spans(gw.env.bootstrap, gw.topic("traces"), st["trace_id"],
                      {"inferq-worker": spans["inferq-worker"]}, noise=False)
    finally:
        t.join(90)
    r = result["r"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 span(s) from 2 service(s)" in r.stdout


def test_trace_exit_codes_and_address_options(gw, tmp_path):
    r = run_cli(gw, unique("never-sent-"))
    assert r.returncode == 1 and "no such request" in r.stderr
    assert run_cli(gw).returncode == 2
    assert run_cli(gw, "a", "b").returncode == 2
    assert run_cli(gw, "a", "--wait", "soon").returncode == 2
    assert run_cli(gw, "a", "--bogus").returncode == 2

    # --redis and --bootstrap win over a config whose addresses are wrong
    cid = process(gw)[0]
    st = state_of(gw, cid)
    produce_spans(gw.env.bootstrap, gw.topic("traces"), st["trace_id"], request_spans(st, cid),
                  noise=False)
    cfg = json.loads(gw.cli_config.read_text())
    cfg["kafka"]["bootstrap_servers"] = "127.0.0.1:1"
    cfg["redis"]["url"] = "redis://127.0.0.1:1/0"
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(cfg))
    env = gw.env.child_env()
    env.pop("INFERQ_KAFKA_BOOTSTRAP")
    env.pop("INFERQ_REDIS_URL")
    r = run_cli(gw, cid, env=env, config=bad, timeout=60)
    assert r.returncode == 3 and "redis" in r.stderr  # the config's Redis is not there
    r = run_cli(gw, cid, "--json", "--redis", gw.env.redis_url, "--bootstrap", gw.env.bootstrap,
                env=env, config=bad)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["spans"]) == 6


def test_trace_of_real_spans_across_a_failover(gw_traced):
    gw = gw_traced
    cid = process(gw)[0]
    r = run_cli(gw, cid, "--json", "--wait", "60")
    assert r.returncode == 0, r.stderr + r.stdout
    out = json.loads(r.stdout)
    spans = out["spans"]
    names = [s["name"] for s in spans]
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert [s["name"] for s in roots] == ["broker.request"], names
    assert all(s["parent_span_id"] in ids for s in spans if s is not roots[0]), spans
    attempts = [s for s in spans if s["name"].startswith("chat ")]
    deps = [s["attributes"].get("inferq.deployment") for s in attempts]
    assert deps.count("dead") >= 1 and deps.count("fake-chat") == 1, deps
    assert all(s["status"]["code"] == 2 for s in attempts if s["attributes"]["inferq.deployment"] == "dead")
    ok = next(s for s in attempts if s["attributes"]["inferq.deployment"] == "fake-chat")
    assert ok["attributes"]["gen_ai.usage.output_tokens"] > 0
    assert ok["attributes"]["gen_ai.provider.name"] == "openai"
    assert "worker.failover" in names, names
    assert {s["service"] for s in spans} == {"inferq-broker", "inferq-worker"}

    text = run_cli(gw, cid, "--width", "140")
    assert text.returncode == 0, text.stderr
    for needle in ("broker.request", "queue.wait", "worker.request", "chat ", "fake-chat"):
        assert needle in text.stdout, text.stdout
