"""
The Python package (clients/python, `import inferq`) against the real stack:
futures, asyncio, run_batch on 2,000 requests, error results, timeouts,
Avro end to end, a shared reply topic with filtering, many threads, the
batch_file.py example on the quickstart batch. Also runs the package's unit
tests (the shared vectors, byte for byte), which need no stack.

The package is imported from clients/python/src (the checkout's code, even
when an older copy is installed).
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka.admin import AdminClient

from ifq_e2e import ROOT, TopicReader, deployment, ensure_topic, unique, wait_until

# the checkout's package (not an installed copy) and its unit tests
sys.path.insert(0, str(ROOT / "clients" / "python" / "tests"))
sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))

from inferq import (Client, ClientClosed, Request, RequestTimeout, Result,  # noqa: E402
                    ResultError, ResultFuture)
# The pure unit tests (vectors decoded and encoded byte for byte, typed
# classes) run here too, so that tests/run.sh covers them.
from test_inferq_unit import *  # noqa: E402,F401,F403

TIMEOUT = 90  # generous: CI runs the gateway under ASan


@pytest.fixture(scope="module")
def gw(make_gateway, stack_env):
    g = make_gateway(
        deployments={"fake-chat": deployment(stack_env.fake_url, "fake-chat"),
                     "fake-embed": deployment(stack_env.fake_url, "fake-embed")},
        aliases={"chat-default": ["fake-chat"], "embed-default": ["fake-embed"]})
    g.start_worker()
    return g


def make_client(gw, **kw) -> Client:
    return Client(gw.env.bootstrap, topic_prefix=gw.prefix, **kw)


def chat(text: str, model: str = "chat-default", **kw) -> Request:
    return Request.chat(model, [{"role": "user", "content": text}], max_tokens=16, **kw)


def topic_exists(bootstrap: str, topic: str) -> bool:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return topic in md.topics


def test_submit_returns_a_future_of_a_typed_result(gw):
    with make_client(gw) as c:
        assert c.reply_topic.startswith(f"{gw.prefix}.replies.py-")
        assert topic_exists(gw.env.bootstrap, c.reply_topic)
        req = chat("Hi", custom_id=unique("sub-"), metadata={"ticket": "T-1"})
        fut = c.submit(req, timeout=TIMEOUT)
        assert isinstance(fut, ResultFuture) and fut.custom_id == req.custom_id
        r = fut.result(TIMEOUT)
        assert isinstance(r, Result)
        assert r.ok, r.raw
        assert r.custom_id == req.custom_id and r.id.startswith("ifq_")
        assert r.content == "echo: Hi"
        assert r.metadata == {"ticket": "T-1"} and r.model_requested == "chat-default"
        assert r.deployment == "fake-chat" and r.usage.total_tokens > 0
        assert r.trace_id == fut.trace_id  # inferq continued the client's trace
        assert "total" in r.timings_ms and r.cost_usd == 0.0
        assert req.reply_to is None, "submit must not modify the caller's request"
        # a contract dict (a batch file line) works as well
        d = {"custom_id": unique("dict-"), "url": "/v1/embeddings",
             "body": {"model": "embed-default", "input": ["a", "b"]}}
        e = c.submit(d, timeout=TIMEOUT).result(TIMEOUT)
        assert e.ok and len(e.embeddings) == 2
        assert c.in_flight == 0
        private = c.reply_topic
    # the private reply topic goes away with the client
    wait_until(lambda: not topic_exists(gw.env.bootstrap, private), 30,
               f"{private} to be deleted")


def test_private_reply_topic_can_be_kept(gw):
    with make_client(gw, delete_reply_topic=False, reply_partitions=2) as c:
        assert c.submit(chat("keep"), timeout=TIMEOUT).result(TIMEOUT).ok
        kept = c.reply_topic
    admin = AdminClient({"bootstrap.servers": gw.env.bootstrap})
    md = admin.list_topics(kept, timeout=10)
    assert len(md.topics[kept].partitions) == 2
    for f in admin.delete_topics([kept], operation_timeout=10).values():
        f.result(30)


def test_rejected_request_is_an_error_result(gw):
    with make_client(gw) as c:
        r = c.submit(chat("Hi", model="no-such-model"), timeout=TIMEOUT).result(TIMEOUT)
        assert r.status == "rejected" and not r.ok and r.response is None
        assert r.error.code == "model_not_found", r.raw
        body = {"model": "chat-default", "messages": [{"role": "user", "content": "x"}]}
        bad = Request(custom_id=unique("bad-"), body=body, priority="urgent")
        r2 = c.submit(bad, timeout=TIMEOUT).result(TIMEOUT)
        assert r2.status == "rejected" and r2.error.code == "invalid_request", r2.raw
        with pytest.raises(ResultError, match="model_not_found"):
            r.raise_for_error()


def test_client_refuses_what_inferq_could_not_answer(gw):
    with make_client(gw) as c:
        with pytest.raises(ValueError, match="custom_id"):
            c.submit(Request(custom_id="", body={"model": "chat-default"}))
        with pytest.raises(ValueError, match="reply_to"):
            c.submit(chat("x", reply_to="somewhere.else"))
        req = chat("[[fake:latency=3000]] slow", custom_id=unique("dup-"))
        f = c.submit(req, timeout=TIMEOUT)
        with pytest.raises(ValueError, match="already waiting"):
            c.submit(req)
        assert f.result(TIMEOUT).ok
        # once answered, the custom_id may be used again
        assert c.submit(req, timeout=TIMEOUT).result(TIMEOUT).ok


def test_asyncio_many_concurrent_infer_without_blocking_the_loop(gw):
    n = 400
    with make_client(gw) as c:
        async def main():
            gaps = []
            stop = asyncio.Event()

            async def ticker():
                last = time.monotonic()
                while not stop.is_set():
                    await asyncio.sleep(0.005)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            t = asyncio.create_task(ticker())
            reqs = [chat(f"async {i}", custom_id=f"{unique('as-')}-{i}") for i in range(n)]
            results = await asyncio.gather(*(c.infer(r, timeout=TIMEOUT) for r in reqs))
            # a slow one: the loop keeps running while it waits
            slow = await c.infer(chat("[[fake:latency=1500]] slow"), timeout=TIMEOUT)
            # cancelling the awaiting task stops the wait
            dropped = chat("[[fake:latency=3000]] dropped")
            task = asyncio.create_task(c.infer(dropped, timeout=TIMEOUT))
            while c.in_flight == 0:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert c.in_flight == 0
            stop.set()
            await t
            return reqs, results, slow, gaps

        reqs, results, slow, gaps = asyncio.run(main())
        assert [r.custom_id for r in results] == [q.custom_id for q in reqs]
        assert all(r.ok for r in results), [r.raw for r in results if not r.ok][:3]
        assert all(r.content == f"echo: async {i}" for i, r in enumerate(results))
        assert slow.ok
        assert len(gaps) > 50, "the event loop did not run while results were awaited"
        assert max(gaps) < 1.0, f"event loop blocked for {max(gaps):.2f}s"
        assert c.in_flight == 0


def test_run_batch_2000_yields_each_custom_id_once_with_bounded_in_flight(gw):
    n, cap = 2000, 150
    pulled = 0
    max_seen = 0
    base = unique("batch-")

    def requests():
        nonlocal pulled
        for i in range(n):
            pulled += 1
            yield chat(f"item {i}", custom_id=f"{base}-{i}")
        # one rejected request among them
        pulled += 1
        yield chat("x", custom_id=f"{base}-bad", model="no-such-model")

    seen: dict = {}
    with make_client(gw) as c:
        t0 = time.monotonic()
        for r in c.run_batch(requests(), max_in_flight=cap, timeout=TIMEOUT):
            max_seen = max(max_seen, c.in_flight)
            # lazily read: never more than cap requests ahead of the results
            assert pulled - len(seen) <= cap + 1, (pulled, len(seen))
            seen[r.custom_id] = seen.get(r.custom_id, 0) + 1
            if r.custom_id.endswith("-bad"):
                assert r.status == "rejected" and r.error.code == "model_not_found"
            else:
                assert r.ok, r.raw
                assert r.content == "echo: item " + r.custom_id.rsplit("-", 1)[1]
        took = time.monotonic() - t0
    want = {f"{base}-{i}" for i in range(n)} | {f"{base}-bad"}
    assert set(seen) == want and all(v == 1 for v in seen.values())
    assert max_seen <= cap
    print(f"run_batch: {n + 1} requests in {took:.2f}s ({(n + 1) / took:.0f}/s), "
          f"max in flight {max_seen}")


def test_timeouts(gw):
    with make_client(gw) as c:
        # a future: RequestTimeout, the slot is freed, the late result ignored
        f = c.submit(chat("[[fake:latency=4000]] late"), timeout=1.0)
        t0 = time.monotonic()
        with pytest.raises(RequestTimeout) as ei:
            f.result(TIMEOUT)
        assert 0.9 <= time.monotonic() - t0 < 10
        assert ei.value.custom_id == f.custom_id and c.in_flight == 0
        # asyncio
        async def one():
            return await c.infer(chat("[[fake:latency=4000]] late too"), timeout=1.0)
        with pytest.raises(RequestTimeout):
            asyncio.run(one())
        # run_batch: a client_timeout result, the others answered
        reqs = [chat("[[fake:latency=12000]] late 3", custom_id=unique("to-")),
                chat("quick", custom_id=unique("q-"))]
        out = {r.custom_id: r for r in c.run_batch(reqs, timeout=6.0)}
        assert out[reqs[0].custom_id].error.code == "client_timeout"
        assert out[reqs[0].custom_id].status == "failed"
        assert out[reqs[1].custom_id].ok
        # the late results arrive and are ignored, not misdelivered
        wait_until(lambda: c.stats["ignored"] >= 3, 60, "the late results to arrive")
        assert c.in_flight == 0 and c.stats["timed_out"] == 3


def test_run_batch_stopped_early_stops_waiting(gw):
    with make_client(gw) as c:
        # the first is quick, the others take 5 s
        gen = c.run_batch((chat(f"[[fake:latency={0 if i == 0 else 5000}]] s{i}")
                           for i in range(50)), max_in_flight=20, timeout=TIMEOUT)
        first = next(gen)
        assert first.ok
        assert c.in_flight > 0
        gen.close()
        assert c.in_flight == 0


def test_default_timeout_and_close_fails_waiting_futures(gw):
    c = make_client(gw, default_timeout=60)
    f = c.submit(chat("[[fake:latency=5000]] pending"))
    c.close()
    with pytest.raises(ClientClosed):
        f.result(10)
    with pytest.raises(ClientClosed):
        c.submit(chat("after close"))
    c.close()  # twice is fine


def test_avro_encoding_end_to_end(gw):
    dlq = TopicReader(gw.env.bootstrap, gw.dlq, watch=gw)
    try:
        with make_client(gw, encoding="avro") as c:
            text = "Grüße, 世界! 🚀 \"quoted\"\nline"
            futs = [c.submit(chat(text, metadata={"équipe": "café ☕"}), timeout=TIMEOUT),
                    c.submit(Request.embeddings("embed-default", ["x", "y", "z"]), timeout=TIMEOUT),
                    c.submit(Request.completions("chat-default", "say hi", max_tokens=8),
                             timeout=TIMEOUT),
                    c.submit(chat("x", model="no-such-model"), timeout=TIMEOUT)]
            rs = [f.result(TIMEOUT) for f in futs]
            assert rs[0].ok and rs[0].content == "echo: " + text
            assert rs[0].metadata == {"équipe": "café ☕"}
            assert rs[1].ok and len(rs[1].embeddings) == 3
            assert rs[2].ok and rs[2].response.body["object"] == "text_completion"
            assert rs[3].error.code == "model_not_found"
        dlq.poll(1.0)
        assert not dlq.records, [r.header("inferq-error") for r in dlq.records]
    finally:
        dlq.close()


def test_shared_reply_topic_each_client_gets_only_its_own(gw):
    shared = gw.topic(unique("shared-"))
    ensure_topic(gw.env.bootstrap, shared)
    n = 100
    ids = [f"{unique('same-')}-{i}" for i in range(n)]  # both clients use THESE ids
    with make_client(gw, reply_topic=shared) as a, make_client(gw, reply_topic=shared) as b:
        fa = [a.submit(chat(f"from A {i}", custom_id=ids[i]), timeout=TIMEOUT) for i in range(n)]
        fb = [b.submit(chat(f"from B {i}", custom_id=ids[i]), timeout=TIMEOUT) for i in range(n)]
        ra = [f.result(TIMEOUT) for f in fa]
        rb = [f.result(TIMEOUT) for f in fb]
        assert [r.content for r in ra] == [f"echo: from A {i}" for i in range(n)]
        assert [r.content for r in rb] == [f"echo: from B {i}" for i in range(n)]
        # each saw the other's results on the topic and left them alone
        wait_until(lambda: a.stats["ignored"] >= n and b.stats["ignored"] >= n, 30,
                   "each client to see the other's results")
        assert a.stats["received"] == n and b.stats["received"] == n
    assert topic_exists(gw.env.bootstrap, shared), "a shared reply topic must not be deleted"


def test_gateway_default_reply_topic_as_the_shared_topic(gw):
    # the usual setup where clients may not create topics
    with make_client(gw, reply_topic=gw.replies) as c:
        r = c.submit(chat("on the default topic"), timeout=TIMEOUT).result(TIMEOUT)
        assert r.ok and r.content == "echo: on the default topic"
    assert topic_exists(gw.env.bootstrap, gw.replies)


def test_submit_from_many_threads(gw):
    threads, per = 8, 60
    with make_client(gw) as c:
        futs: list = []
        lock = threading.Lock()
        errors: list = []

        def work(t):
            try:
                mine = [c.submit(chat(f"t{t} {i}"), timeout=TIMEOUT) for i in range(per)]
                with lock:
                    futs.extend(mine)
            except Exception as e:  # reported below
                errors.append(e)

        ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(TIMEOUT)
        assert not errors
        rs = [f.result(TIMEOUT) for f in futs]
        assert len(rs) == threads * per and all(r.ok for r in rs)
        assert len({r.custom_id for r in rs}) == threads * per


def test_kafka_config_is_passed_through(gw):
    # an invalid librdkafka property must reach librdkafka and be refused
    with pytest.raises(Exception, match="no.such.property"):
        make_client(gw, kafka_config={"no.such.property": "1"})


def test_batch_file_example_runs_the_quickstart_batch(gw, tmp_path):
    # clients/python/examples/batch_file.py: schemas/examples/batch.jsonl as-is
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "clients" / "python" / "src"))
    for enc in ("json", "avro"):
        p = subprocess.run([sys.executable, str(ROOT / "clients" / "python" / "examples" /
                                                "batch_file.py"),
                            str(ROOT / "schemas" / "examples" / "batch.jsonl"), str(out),
                            "--bootstrap", gw.env.bootstrap, "--prefix", gw.prefix,
                            "--encoding", enc, "--timeout", str(TIMEOUT)],
                           env=env, capture_output=True, text=True, timeout=TIMEOUT + 30)
        assert p.returncode == 0, p.stderr[-2000:]
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert sorted(r["custom_id"] for r in lines) == sorted(f"sample-{i}" for i in range(1, 13))
        assert all(r["error"] is None and r["inferq"]["status"] == "succeeded" for r in lines)
