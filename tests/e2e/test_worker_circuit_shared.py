"""
Workers honour each other's circuit breakers (issue 5: the circuit state is
"published in Redis so brokers route around it and other workers see it").

Worker A opens the circuit of `sick` through its own failures and publishes
it; worker B, started afterwards, has never called `sick` and its own
breaker is closed. B reads the published circuits from Redis (every second,
and at start-up) and must treat `sick` as open: a request for an alias
`sick` -> `backup` is failed over without calling `sick`. The alias has
`health_aware: false`, so the broker does not route around the open circuit
itself and the decision is the worker's. The decision function is
unit-tested in tests/unit/test_worker_circuit.c.
"""
import pytest
import redis

from ifq_e2e import Produce, ReplyCollector, chat, deployment, describe, unique, wait_until

OPEN_MS = 60_000


@pytest.fixture(scope="module")
def gw(make_gateway, fake):
    return make_gateway(
        deployments={
            "sick": deployment(fake.base_url, timeout_ms=10000),
            "backup": deployment(fake.base_url, timeout_ms=10000),
        },
        aliases={"only-sick": {"strategy": "failover", "deployments": ["sick"],
                               "health_aware": False},
                 "sick-then-backup": {"strategy": "failover", "deployments": ["sick", "backup"],
                                      "health_aware": False}},
        worker={"max_attempts": 3, "backoff_base_ms": 20, "backoff_max_ms": 100,
                "circuit_failure_threshold": 3, "circuit_open_ms": OPEN_MS,
                "shutdown_grace_ms": 2000})


def send(gw, reqs, timeout=60):
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    try:
        p = Produce(gw.env.bootstrap)
        for r in reqs:
            p.send(gw.requests, r, key=r["custom_id"])
        p.flush()
        return replies.results([r["custom_id"] for r in reqs], timeout=timeout)
    finally:
        replies.close()


def test_worker_honours_a_circuit_another_worker_opened(gw, fake):
    rd = redis.Redis.from_url(gw.env.redis_url, decode_responses=True)
    key = f"{gw.prefix}:circuit:sick"

    # worker A: three 500s from `sick` open its circuit, published in Redis
    a = gw.start_worker({"deployments": ["sick"]})
    opener = unique("open-")
    res = send(gw, [chat(opener, "[[fake:status=500]] always fails", model="only-sick")])[opener]
    assert res["inferq"]["status"] == "failed", describe(res)
    wait_until(lambda: rd.hget(key, "state") == "open", 30, "worker A to publish the open circuit")
    assert a.stop(60) == 0, a.tail()

    # worker B has never called `sick`: its own breaker is closed
    b = gw.start_worker({"deployments": ["sick", "backup"]})
    wait_until(lambda: "circuit_adopted" in b.tail(200), 30,
               "worker B to read the published circuit")
    cid = unique("shared-")
    res = send(gw, [chat(cid, f"[[fake:key={cid}]] healthy request", model="sick-then-backup")])[cid]
    assert res["inferq"]["status"] == "succeeded", describe(res)
    att = res["inferq"]["attempts"]
    assert [a["deployment"] for a in att] == ["sick", "backup"], describe(res)
    assert att[0]["error"]["type"] == "circuit_open", describe(res)
    assert res["inferq"]["deployment"] == "backup", describe(res)
    # `sick` was not called: the fake saw exactly one call for this request
    assert fake.stats()["by_key"].get(cid) == 1, (fake.stats()["by_key"].get(cid), describe(res))
    # B does not republish what it adopted (that would keep the circuit open for ever)
    c = rd.hgetall(key)
    assert c.get("state") == "open" and c.get("opened_total") == "1", c
