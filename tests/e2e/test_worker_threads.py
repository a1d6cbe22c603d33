"""
A worker with several event loops (worker.threads: 2) behaves as one worker:

- Both loops call models at once, and together they never exceed the
  process's max_inflight: each loop takes its share (20 of 40), so more
  than 20 calls at the fake at once means both ran, and never more than 40.
  Every request is answered exactly once; each loop reports its in-flight
  count to Redis under its own id; SIGTERM drains both and exits 0.
- The admin endpoint of a worker with 1,100 calls in flight (descriptors
  past FD_SETSIZE) still answers /readyz and /metrics.
- The circuit breaker of a deployment is the process's, not a loop's: with
  a threshold of 3 consecutive 503s and one call at a time per loop, the
  circuit opens after the third failure whichever loop saw it, so the fake
  gets at most 3 + 1 calls (the other loop's call already under way). A
  breaker per loop would let each loop make 3 calls of its own (6) before
  the first refresh from Redis, one second later.
"""
import socket

import pytest
import redis

from ifq_e2e import (Produce, ReplyCollector, admin_metric, chat, deployment, describe, http_get,
                     send_chats, unique, wait_until)


@pytest.fixture(scope="module")
def gw(make_gateway, fake):
    return make_gateway(
        deployments={"mt-chat": deployment(fake.base_url, "fake-chat", max_inflight=40)},
        aliases={"chat-default": ["mt-chat"]},
        worker={"threads": 2, "max_inflight": 40, "shutdown_grace_ms": 10000})


@pytest.fixture(scope="module")
def gw_sick(make_gateway, fake):
    return make_gateway(
        deployments={"sick": deployment(fake.base_url, timeout_ms=10000, max_inflight=2)},
        aliases={"only-sick": {"strategy": "failover", "deployments": ["sick"],
                               "health_aware": False}},
        worker={"threads": 2, "max_inflight": 2, "max_attempts": 1,
                "circuit_failure_threshold": 3, "circuit_open_ms": 60000,
                "shutdown_grace_ms": 1000})


def test_two_loops_share_the_work_and_the_cap(gw, fake):
    tag = unique("mt-")
    ids = [f"{tag}-{i:03d}" for i in range(200)]
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    fake.reset()
    w = gw.start_worker()
    try:
        send_chats(gw, ids, "[[fake:latency=150]] hello")
        res = replies.results(ids, timeout=120)
        bad = [describe(r) for r in res.values() if r["inferq"]["status"] != "succeeded"]
        assert not bad, bad[:3]
        counts = replies.counts(ids)
        assert all(c == 1 for c in counts.values()), {k: c for k, c in counts.items() if c != 1}
        st = fake.stats()
        assert st["max_in_flight"] <= 40, st
        assert st["max_in_flight"] > 20, f"only one loop called the model at a time: {st}"

        rd = redis.Redis.from_url(gw.env.redis_url, decode_responses=True)
        me = f"{socket.gethostname()}-{w.pid}"
        fields = wait_until(
            lambda: (lambda f: f if {me, me + ".1"} <= set(f) else None)(
                rd.hkeys(f"{gw.prefix}:inflight:mt-chat")),
            30, "both loops' in-flight reports in Redis", 0.2)
        assert len([f for f in fields if f.startswith(me)]) == 2, fields
    finally:
        replies.close()
        assert w.stop(30) == 0, w.tail()


def test_one_circuit_breaker_for_all_loops(gw_sick, fake):
    rd = redis.Redis.from_url(gw_sick.env.redis_url, decode_responses=True)
    tag = unique("cb-")
    fake.reset()
    w = gw_sick.start_worker()
    try:
        p = Produce(gw_sick.env.bootstrap)
        # Half high, half normal priority: the requests land on 8 of the 12
        # partitions (3 lanes x 4), so whichever 6 the group gives each
        # loop, both have requests (all normal ones could sit on one loop's
        # partitions after an incremental rebalance).
        for i in range(40):
            cid = f"{tag}-{i:02d}"
            body = chat(cid, f"[[fake:status=503]][[fake:key={tag}]] {cid}", model="only-sick",
                        priority="high" if i % 2 else "normal")
            p.send(gw_sick.requests, body, key=cid)
        p.flush()
        wait_until(lambda: rd.hget(f"{gw_sick.prefix}:circuit:sick", "state") == "open",
                   60, "the circuit of sick to open", 0.01)
        # Both loops hold a request that waits for the circuit to half-open
        # (each loop has one slot): every call that was going to be made has
        # been made.
        wait_until(lambda: admin_metric(w.admin_port, "inferq_worker_inflight") == 2, 60,
                   "both loops to hold a waiting request", 0.05)
        calls = fake.stats()["by_key"].get(tag)
        assert calls is not None and 3 <= calls <= 4, fake.stats()["by_key"].get(tag)
    finally:
        assert w.stop(30) == 0, w.tail()


@pytest.fixture(scope="module")
def gw_busy(make_gateway, fake):
    return make_gateway(
        deployments={"busy-chat": deployment(fake.base_url, "fake-chat", max_inflight=1100)},
        aliases={"chat-default": ["busy-chat"]},
        worker={"max_inflight": 1100, "shutdown_grace_ms": 30000})


def test_admin_answers_with_over_a_thousand_calls_in_flight(gw_busy, fake):
    """With 1,100 HTTP calls open, the worker's descriptors run past
    FD_SETSIZE (1024): /readyz and /metrics must still answer (a
    select()-based admin server closed those connections at once)."""
    tag = unique("busy-")
    ids = [f"{tag}-{i:04d}" for i in range(1100)]
    replies = ReplyCollector(gw_busy.env.bootstrap, gw_busy.replies, watch=gw_busy)
    fake.reset()
    w = gw_busy.start_worker()
    try:
        send_chats(gw_busy, ids, "[[fake:latency=8000]]")
        wait_until(lambda: fake.stats()["in_flight"] >= 1050, 90,
                   "1,050 calls in flight at the model", 0.05)
        port = w.admin_port
        status, body = http_get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert status == 200, (status, body)
        assert admin_metric(port, "inferq_worker_inflight") >= 1050
        res = replies.results(ids, timeout=180)
        assert all(r["inferq"]["status"] == "succeeded" for r in res.values())
    finally:
        replies.close()
        assert w.stop(60) == 0, w.tail()
