"""
A worker that dies or is stopped with requests in flight loses nothing:

- SIGKILL with ~200 slow requests in flight (max_inflight 50), then a new
  worker: every request is answered (at least once; duplicates are
  reported, not failed).
- SIGTERM with slow requests in flight: the worker drains them, exits 0
  within its shutdown grace, and a new worker answers the rest.
- SIGTERM when the grace is too short: exit 0 at the end of the grace, the
  unfinished requests are handed back and answered by the next worker.
- SIGTERM while first attempts fail with a retryable error: the requests
  still get their retries.
- A fresh worker (no pooled connections) calls the model concurrently.
- A routed request delivered again after it was answered is skipped by the
  idempotency check in Redis: no second model call, no second result.
"""
import time

import pytest

from ifq_e2e import (Produce, ReplyCollector, chat, deployment, describe, http_get, unique,
                     wait_until)

GRACE_MS = 10_000


@pytest.fixture(scope="module")
def gw(make_gateway, fake):
    return make_gateway(
        deployments={"slow-chat": deployment(fake.base_url, "fake-chat", max_inflight=50)},
        aliases={"chat-default": ["slow-chat"]},
        worker={"max_inflight": 50, "shutdown_grace_ms": GRACE_MS})


def produce_slow(gw, tag, n, latency_ms):
    ids = [f"{tag}-{i:03d}" for i in range(n)]
    p = Produce(gw.env.bootstrap)
    for i, cid in enumerate(ids):
        p.send(gw.requests, chat(cid, f"[[fake:latency={latency_ms}]] slow {cid}"),
               key=f"{tag}-{i % 16}")
    p.flush()
    return ids


def check_complete(replies, ids, timeout):
    res = replies.results(ids, timeout=timeout)
    counts = replies.counts(ids)
    dups = sum(c - 1 for c in counts.values())
    by_id = replies.by_id()
    not_ok = []
    for cid in ids:
        if not any(r.json["inferq"]["status"] == "succeeded" for r in by_id[cid]):
            not_ok.append(describe(res[cid]))
    assert not not_ok, f"{len(not_ok)} request(s) without a succeeded result, e.g. {not_ok[:3]}"
    return dups


def stop_workers(gw):
    for w in gw.workers:
        if w.exit_code is None:
            assert w.stop(GRACE_MS / 1000 + 15) == 0, w.tail()


def test_sigkill_with_requests_in_flight(gw, fake, record_property):
    tag = unique("kill-")
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    fake.reset()
    w1 = gw.start_worker()
    try:
        ids = produce_slow(gw, tag, 200, 300)
        st = wait_until(lambda: (lambda s: s if s["in_flight"] >= 40 else None)(fake.stats()),
                        60, "40 requests in flight at the model", 0.01)
        w1.kill()
        # max_inflight (50) was respected up to the kill
        assert fake.stats()["max_in_flight"] <= 50, fake.stats()
        replies.poll(0.5)
        answered_before = sum(1 for c in replies.counts(ids).values() if c)
        print(f"SIGKILL with {st['in_flight']} in flight at the model, "
              f"{answered_before}/200 answered before")
        assert answered_before < 200, "everything was answered before the kill: test proves nothing"

        gw.start_worker()
        dups = check_complete(replies, ids, timeout=120)
        print(f"all 200 answered after the restart; duplicates: {dups}")
        record_property("duplicates", dups)
    finally:
        replies.close()


def test_sigterm_drains_in_flight_requests(gw, fake, record_property):
    tag = unique("term-")
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    stop_workers(gw)  # start from a clean slate: no worker of the last test
    w1 = gw.start_worker()
    try:
        ids = produce_slow(gw, tag, 100, 1500)
        st = wait_until(lambda: (lambda s: s if s["in_flight"] >= 40 else None)(fake.stats()),
                        60, "40 requests in flight at the model", 0.01)
        in_flight = st["in_flight"]
        t0 = time.monotonic()
        w1.p.terminate()  # SIGTERM
        rc = w1.wait_exit(GRACE_MS / 1000 + 10)
        took = time.monotonic() - t0
        assert rc == 0, f"worker exited {rc} after SIGTERM:\n{w1.tail()}"
        assert took <= GRACE_MS / 1000 + 5, f"worker took {took:.1f}s to drain"

        # what was in flight at SIGTERM was finished and answered, not dropped
        replies.wait(lambda: sum(1 for c in replies.counts(ids).values() if c) >= in_flight, 15,
                     f"the {in_flight} in-flight requests to be answered by the draining worker")
        answered = sum(1 for c in replies.counts(ids).values() if c)
        print(f"SIGTERM with {in_flight} in flight: exit 0 after {took:.1f}s, "
              f"{answered}/100 answered by the draining worker")

        gw.start_worker()
        dups = check_complete(replies, ids, timeout=120)
        print(f"all 100 answered after the restart; duplicates: {dups}")
        record_property("duplicates", dups)
    finally:
        replies.close()


def test_sigterm_does_not_turn_retryable_errors_into_failures(gw, fake):
    """A request whose attempt fails with a retryable error (503) while the
    worker drains must still get its retries (max_attempts 3): by the
    draining worker, or by the next one after a hand-back. A restart of a
    worker must not turn a transient upstream error into a final failure."""
    tag = unique("termretry-")
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    stop_workers(gw)
    w1 = gw.start_worker()
    try:
        ids = [f"{tag}-{i}" for i in range(10)]
        p = Produce(gw.env.bootstrap)
        for cid in ids:
            p.send(gw.requests, chat(cid, f"[[fake:latency=1500]][[fake:fail_first=1]]"
                                          f"[[fake:key={cid}]] transient"), key=cid)
        p.flush()
        wait_until(lambda: fake.stats()["in_flight"] >= 5, 60, "requests in flight", 0.01)
        w1.p.terminate()  # SIGTERM while the first attempts are in flight
        assert w1.wait_exit(GRACE_MS / 1000 + 10) == 0, w1.tail()
        gw.start_worker()
        res = replies.results(ids, timeout=60)
        failed = [describe(r) for r in res.values() if r["inferq"]["status"] != "succeeded"]
        assert not failed, (f"{len(failed)}/10 requests failed after a single attempt because "
                            f"the worker was draining, e.g. {failed[0]}")
    finally:
        replies.close()


def test_fresh_worker_calls_the_model_concurrently(gw, fake):
    """A worker with no connections yet must send concurrent requests to the
    model concurrently (max_inflight 50), not one after the other: 20
    requests of 1 s each take about 1 s of model time each, not 2 s because
    they queued behind the first response."""
    tag = unique("conc-")
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    stop_workers(gw)
    gw.start_worker()  # an empty connection pool
    try:
        ids = produce_slow(gw, tag, 20, 1000)
        res = replies.results(ids, timeout=60)
        lat = sorted(r["inferq"]["attempts"][-1]["latency_ms"] for r in res.values())
        slow = [l for l in lat if l >= 1800]
        assert not slow, (f"{len(slow)}/20 model calls took >= 1.8 s for a 1 s answer (they "
                          f"waited for another request's response): latencies {lat}")
    finally:
        replies.close()


def test_sigterm_grace_expiry_hands_requests_back(gw, fake):
    """Requests still running when the shutdown grace ends are handed back
    (their offsets stay uncommitted): the worker exits 0 at the end of the
    grace, and the next worker answers them."""
    tag = unique("grace-")
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    stop_workers(gw)
    w1 = gw.start_worker(worker={"shutdown_grace_ms": 1000})
    try:
        ids = produce_slow(gw, tag, 10, 4000)
        wait_until(lambda: fake.stats()["in_flight"] >= 5, 60, "5 requests in flight", 0.01)
        t0 = time.monotonic()
        w1.p.terminate()
        rc = w1.wait_exit(20)
        took = time.monotonic() - t0
        assert rc == 0, f"worker exited {rc}:\n{w1.tail()}"
        assert took <= 1 + 5, f"worker took {took:.1f}s with a 1 s grace"
        replies.poll(0.5)
        unanswered = [c for c, n in replies.counts(ids).items() if n == 0]
        assert len(unanswered) >= 5, "the requests in flight were answered before the grace ended?"
        gw.start_worker()
        check_complete(replies, ids, timeout=60)
    finally:
        replies.close()


def test_redelivered_answered_request_is_not_sent_again(gw, fake):
    """Idempotency: a routed request delivered again after its result was
    produced (what a rebalance or a restart before the offset commit does)
    is recognised by its final state in Redis (same custom_id and id) and
    neither sent to the model again nor answered twice."""
    import json as _json

    import redis as _redis
    from confluent_kafka import Consumer, Producer, TopicPartition

    stop_workers(gw)
    gw.start_worker()
    cid = unique("redeliver-")
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    try:
        p = Produce(gw.env.bootstrap)
        p.send(gw.requests, chat(cid, f"[[fake:key={cid}]] once only"), key=cid)
        p.flush()
        first = replies.results([cid], timeout=60)[cid]
        assert first["inferq"]["status"] == "succeeded", describe(first)
        rd = _redis.Redis.from_url(gw.env.redis_url, decode_responses=True)
        wait_until(lambda: rd.hget(f"{gw.prefix}:req:{cid}", "state") == "succeeded", 10,
                   "the final state in Redis")

        # the routed message, exactly as the broker wrote it
        topic = gw.topic("model.slow-chat")
        c = Consumer({"bootstrap.servers": gw.env.bootstrap, "group.id": unique("redeliver-r-"),
                      "enable.auto.commit": False, "isolation.level": "read_committed"})
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, q, 0) for q in md.partitions])
        routed = None
        deadline = time.monotonic() + 30
        while routed is None and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if not m.error() and _json.loads(m.value()).get("custom_id") == cid:
                    routed = m
        c.close()
        assert routed is not None, "routed message not found"

        again = Producer({"bootstrap.servers": gw.env.bootstrap})
        again.produce(topic, value=routed.value(), key=routed.key(), headers=routed.headers(),
                      partition=routed.partition())
        assert again.flush(30) == 0

        # the worker consumed it (its duplicates_skipped counter says so) ...
        w = gw.workers[-1]
        port = w.admin_port

        def skipped():
            status, body = http_get(f"http://127.0.0.1:{port}/metrics")
            for line in body.decode().splitlines():
                if line.startswith("inferq_worker_duplicates_skipped_total "):
                    return int(line.split()[1]) >= 1
            return False

        wait_until(skipped, 30, "the worker to skip the redelivered request")
        # ... and answered nothing
        quiet_end = time.monotonic() + 3
        while time.monotonic() < quiet_end:
            replies.poll(0.2)
        assert replies.counts([cid])[cid] == 1, "the redelivered request was answered again"
        assert fake.stats()["by_key"].get(cid) == 1, \
            f"the model was called {fake.stats()['by_key'].get(cid)} times"
    finally:
        replies.close()
