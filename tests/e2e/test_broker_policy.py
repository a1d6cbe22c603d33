"""
The broker's policy on real Kafka and Redis: teams and access control,
signed requests, rate limits shared by two broker replicas, budgets, the
response cache, priority lanes, health-aware routing, the model list, and
exactly-once routing under SIGKILL.
"""
import hashlib
import hmac
import json
import os
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition

from ifq_e2e import (Gateway, Produce, ReplyCollector, TopicReader, chat, deployment, describe,
                     ensure_topic, free_port, unique, wait_until)

SIGNING_KEY = "e2e-signing-key-" + unique("k")


class PolicyGateway(Gateway):
    """A Gateway that can run several broker replicas (distinct instance ids)."""

    def start_broker(self, instance="0"):
        b = self._start("broker", "inferq-broker", extra_args=["--instance-id", instance])
        if self.broker is None:
            self.broker = b
        else:
            self.workers.append(b)  # stopped with the others
        return b


@pytest.fixture(scope="module")
def gw(stack_env, workdir, fake):
    os.environ["IFQ_E2E_OPS_KEY"] = SIGNING_KEY
    closed = f"http://127.0.0.1:{free_port()}/v1"
    g = PolicyGateway(
        stack_env, workdir / "policy",
        deployments={
            "small": deployment(fake.base_url, price_input_per_mtok=10, price_output_per_mtok=10),
            "large": deployment(fake.base_url),
            "down": deployment(closed, timeout_ms=2000),
            "spare": deployment(fake.base_url),
        },
        aliases={"chat": ["small", "large"], "secret-model": ["large"],
                 "flaky": ["down", "spare"]},
        worker={"max_attempts": 1, "circuit_failure_threshold": 2, "circuit_open_ms": 600000},
        group=__name__,
        extra={
            "teams": {
                "search": {"models": ["chat", "flaky", "small"], "reply_topics": ["search.*"]},
                "limited": {"models": ["chat"], "limits": {"rpm": 10}},
                "patient": {"models": ["chat"], "limits": {"rpm": 3},
                            "over_limit_low_priority": "hold"},
                "ops": {"models": ["*"], "hmac_key_env": "IFQ_E2E_OPS_KEY"},
                "thrifty": {"models": ["chat"], "budget": {"daily_usd": 0.003}},
            },
            "broker": {"default_team": "search", "hold_max_ms": 150000},
            "cache": {"enabled": True, "ttl_s": 600},
        })
    for team in ("search", "ops", "thrifty", "limited", "patient"):
        ensure_topic(stack_env.bootstrap, f"{g.requests}.{team}", 4)
    g.start_broker("0")
    g.start_worker()
    yield g
    codes = g.stop()
    assert all(rc == 0 for rc in codes.values()), codes


def send(gw, reqs, topic=None, headers=None, timeout=60):
    """Produces requests and returns {custom_id: result}."""
    replies = ReplyCollector(gw.env.bootstrap, gw.replies)
    try:
        p = Produce(gw.env.bootstrap)
        for r in reqs:
            p.send(topic or gw.requests, r, key=r["custom_id"], headers=headers)
        p.flush()
        return replies.results([r["custom_id"] for r in reqs], timeout=timeout)
    finally:
        replies.close()


def model_topics(gw, deployments):
    return [gw.topic(f"{lane}.{d}") for d in deployments
            for lane in ("model", "model-high", "model-low")]


def test_team_cannot_reach_a_model_it_is_not_allowed_to_use(gw):
    cid = unique("deny-")
    # Whatever the request claims about its team, it is search's (the
    # default team of the shared topic): no signature, no team topic.
    req = chat(cid, "let me in", model="secret-model", team="ops",
               inferq={"team": "ops", "chain": ["large"]})
    reader = TopicReader(gw.env.bootstrap, model_topics(gw, ["large", "small"]))
    res = send(gw, [req], headers=[("inferq-team", b"ops")])[cid]
    assert res["error"]["code"] == "unauthorized", describe(res)  # a team header needs a signature
    res = send(gw, [dict(req, custom_id=cid + "b")])[cid + "b"]
    assert res["error"]["code"] == "model_not_allowed", describe(res)
    assert res["inferq"]["team"] == "search"
    reader.poll(1.0)
    assert not [r for r in reader.records if cid.encode() in (r.value or b"")], \
        "a refused request reached a per-model topic"
    reader.close()


def test_team_topic_and_signature_identify_the_team(gw):
    a, b, c = unique("ops-topic-"), unique("ops-signed-"), unique("ops-badsig-")
    res = send(gw, [chat(a, "hi", model="secret-model")], topic=f"{gw.requests}.ops")[a]
    assert res["inferq"]["status"] == "succeeded", describe(res)
    assert res["inferq"]["team"] == "ops"

    line = json.dumps(chat(b, "signed", model="secret-model")).encode()
    sig = hmac.new(SIGNING_KEY.encode(), line, hashlib.sha256).hexdigest()
    replies = ReplyCollector(gw.env.bootstrap, gw.replies)
    p = Produce(gw.env.bootstrap)
    p.send(gw.requests, line, key=b, headers=[("inferq-team", b"ops"),
                                              ("inferq-signature", sig.encode())])
    bad = json.dumps(chat(c, "forged", model="secret-model")).encode()
    p.send(gw.requests, bad, key=c, headers=[("inferq-team", b"ops"),
                                             ("inferq-signature", sig.encode())])
    p.flush()
    got = replies.results([b, c])
    replies.close()
    assert got[b]["inferq"]["status"] == "succeeded" and got[b]["inferq"]["team"] == "ops", \
        describe(got[b])
    assert got[c]["error"]["code"] == "unauthorized", describe(got[c])


def test_reply_topic_must_be_allowed_for_the_team(gw):
    cid = unique("rt-")
    res = send(gw, [chat(cid, "x", model="chat", reply_to="payroll.answers")])[cid]
    assert res["error"]["code"] == "reply_topic_not_allowed", describe(res)


def metrics(gw, proc):
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.admin_port}/metrics",
                                timeout=5) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def wait_for_fresh_minute(margin_s=20):
    """The limits use one-minute windows: start a burst early in a window
    so that it cannot straddle two."""
    def fresh():
        return (time.time() % 60) < 60 - margin_s
    wait_until(fresh, 70, "the start of a rate-limit window", 0.5)


def test_two_broker_replicas_share_one_rate_limit(gw):
    # A second broker replica in the same group shares the request
    # partitions; both admit against the same Redis counters.
    second = gw.start_broker("1")
    try:
        wait_for_fresh_minute()
        ids = [unique(f"rl{i}-") for i in range(30)]
        reqs = [chat(cid, f"burst {i}", model="chat") for i, cid in enumerate(ids)]
        got = send(gw, reqs, topic=f"{gw.requests}.limited", timeout=90)
        ok = [c for c in ids if got[c]["inferq"]["status"] == "succeeded"]
        limited = [c for c in ids if (got[c].get("error") or {}).get("code") == "rate_limited"]
        assert len(ok) == 10, f"{len(ok)} admitted, want exactly the rpm of 10"
        assert len(limited) == 20
        r = got[limited[0]]["inferq"]
        assert r["limit"] == "rpm" and 0 < r["retry_after_ms"] <= 60000
        # Both replicas did work (the partitions were split between them).
        for b in (gw.broker, second):
            m = metrics(gw, b)
            handled = sum(v for k, v in m.items() if k.startswith("inferq_broker_requests_total"))
            assert handled > 0, f"{b.name} handled no request: {m}"
    finally:
        rc = second.stop(60)
        gw.workers.remove(second)
    assert rc == 0


def test_budget_stops_a_team_when_spent(gw):
    got_budget = None
    for i in range(60):
        cid = unique(f"budget{i}-")
        res = send(gw, [chat(cid, "spend some money " * 4, model="chat")],
                   topic=f"{gw.requests}.thrifty")[cid]
        if (res.get("error") or {}).get("code") == "budget_exceeded":
            got_budget = res
            break
        assert res["inferq"]["status"] == "succeeded", describe(res)
        assert res["inferq"]["cost_usd"] > 0
    assert got_budget is not None, "the daily budget never stopped the team"
    assert got_budget["inferq"]["limit"] == "daily"
    # ~0.00033 USD a request: about eight fit before the spend plus the next
    # estimate crosses 0.003.
    assert 5 <= i <= 10, f"budget exceeded after {i} request(s)"


def test_cache_answers_deterministic_requests_without_the_model(gw, fake):
    key = unique("cache-key-")
    text = f"[[fake:key={key}]] what is two plus two"
    a, b = unique("cache-a-"), unique("cache-b-")
    body_extra = {"temperature": 0}
    ra = chat(a, text, model="chat", priority="normal")
    ra["body"].update(body_extra)
    rb = chat(b, text, model="chat")
    rb["body"].update(body_extra)
    first = send(gw, [ra])[a]
    assert first["inferq"]["cache_hit"] is False, describe(first)
    second = send(gw, [rb])[b]
    assert second["inferq"]["status"] == "succeeded", describe(second)
    assert second["inferq"]["cache_hit"] is True, describe(second)
    assert second["response"]["body"] == first["response"]["body"]
    assert fake.stats()["by_key"].get(key) == 1, "the model was called for a cached answer"


def test_open_circuit_routes_around_a_dead_deployment(gw):
    # "down" refuses connections; two failures open its circuit (threshold
    # 2), the worker publishes it, and the broker then puts "spare" first.
    for i in range(3):
        cid = unique(f"flaky{i}-")
        res = send(gw, [chat(cid, "x", model="flaky")])[cid]
        assert res["inferq"]["status"] == "succeeded", describe(res)

    def routed_around():
        cid = unique("flaky-after-")
        res = send(gw, [chat(cid, "x", model="flaky")])[cid]
        routing = res["inferq"].get("routing") or {}
        if routing.get("chain", [None])[0] == "spare":
            return res
        return None

    res = wait_until(routed_around, 30, "the broker to route around the open circuit", 0.5)
    assert [a["deployment"] for a in res["inferq"]["attempts"]] == ["spare"]
    skipped = res["inferq"]["routing"].get("skipped") or []
    assert {"deployment": "down", "reason": "circuit_open"} in skipped


def test_models_endpoint_lists_what_a_team_may_use(gw):
    port = gw.broker.admin_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models?team=search", timeout=5) as r:
        body = json.loads(r.read())
    ids = {m["id"] for m in body["data"]}
    assert body["object"] == "list"
    assert {"chat", "flaky", "small"} <= ids
    assert "secret-model" not in ids and "large" not in ids
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
        everything = {m["id"] for m in json.loads(r.read())["data"]}
    assert "secret-model" in everything


def test_high_priority_overtakes_a_low_priority_backlog(stack_env, workdir, fake):
    g = Gateway(stack_env, workdir / "lanes", deployments={"m": deployment(fake.base_url)},
                aliases={"lane": ["m"]}, worker={"max_inflight": 1}, group=__name__)
    g.start_broker()
    try:
        low = [chat(unique(f"low{i}-"), "[[fake:latency=20]] low", model="lane", priority="low")
               for i in range(60)]
        high = [chat(unique(f"high{i}-"), "high", model="lane", priority="high")
                for i in range(5)]
        replies = ReplyCollector(stack_env.bootstrap, g.replies)
        p = Produce(stack_env.bootstrap)
        for r in low + high:  # the backlog is queued before the urgent work
            p.send(g.requests, r, key=r["custom_id"])
        p.flush()
        # Wait until the broker routed everything, then start the worker.
        lanes = TopicReader(stack_env.bootstrap, [g.topic("model-low.m"), g.topic("model-high.m")])
        lanes.wait(lambda: len(lanes.records) >= 65, 60, "all requests routed")
        lanes.close()
        g.start_worker()
        ids = [r["custom_id"] for r in low + high]
        replies.results(ids, timeout=120)
        order = [rec.json["custom_id"] for rec in sorted(replies.records,
                                                         key=lambda r: r.received_mono)]
        replies.close()
        last_high = max(order.index(r["custom_id"]) for r in high)
        # max_inflight 1: each request finishes before the next starts; the
        # five high ones come out within the first few, not after 60 low.
        assert last_high < 15, f"high-priority results at positions up to {last_high}"
    finally:
        codes = g.stop()
    assert all(rc == 0 for rc in codes.values()), codes


def test_exactly_once_routing_under_sigkill(stack_env, workdir, fake):
    """Transactions on: kill the broker with SIGKILL mid-stream again and
    again; read_committed readers of the per-model topics see every request
    exactly once."""
    g = Gateway(stack_env, workdir / "eos", deployments={"m": deployment(fake.base_url)},
                aliases={"eos": ["m"]}, broker={"batch_size": 50}, group=__name__)
    n = 3000
    ids = [f"eos-{i}-{unique('')}" for i in range(n)]
    g.start_broker()
    p = Produce(stack_env.bootstrap)
    for cid in ids:
        p.send(g.requests, chat(cid, "once", model="eos"), key=cid)
    p.flush()
    topic = g.topic("model.m")
    reader = Consumer({"bootstrap.servers": stack_env.bootstrap, "group.id": unique("eos-r-"),
                       "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                       "enable.auto.commit": False})
    reader.subscribe([topic])
    seen: dict = {}

    def drain(t=0.5):
        for m in reader.consume(5000, t):
            if m.error():
                continue
            cid = json.loads(m.value())["custom_id"]
            seen[cid] = seen.get(cid, 0) + 1

    kills = 0
    try:
        for _ in range(5):
            # Let it route a share of the stream, then kill it mid-batch.
            before = len(seen)
            wait_until(lambda: drain(0.2) or len(seen) > before + 200 or len(seen) >= n, 60,
                       "routing progress")
            if len(seen) >= n:
                break
            g.broker.kill()
            kills += 1
            g.start_broker()
        wait_until(lambda: drain(0.5) or len(seen) >= n, 180, f"all {n} requests routed")
        drain(2.0)  # anything duplicated would arrive now
    finally:
        reader.close()
        codes = g.stop()
    assert kills >= 2, "the broker finished before it could be killed twice"
    missing = [c for c in ids if c not in seen]
    dups = {c: k for c, k in seen.items() if k > 1}
    assert not missing, f"{len(missing)} request(s) never routed, e.g. {missing[:5]}"
    assert not dups, f"{len(dups)} request(s) routed more than once, e.g. {list(dups.items())[:5]}"
    assert all(rc == 0 for rc in codes.values()), codes


def test_low_priority_over_the_limit_waits_instead_of_failing(gw):
    """Team `patient` (rpm 3) holds low-priority work over its limit: it is
    parked on the deferred topic and routed when the window rolls over.
    Normal priority over the limit is still refused at once."""
    wait_for_fresh_minute(margin_s=30)
    start_minute = int(time.time()) // 60
    low = [chat(unique(f"hold{i}-"), f"later {i}", model="chat", priority="low")
           for i in range(6)]
    normal = chat(unique("hold-normal-"), "now", model="chat")
    topic = f"{gw.requests}.patient"
    replies = ReplyCollector(gw.env.bootstrap, gw.replies)
    p = Produce(gw.env.bootstrap)
    for r in low:
        p.send(topic, r, key=r["custom_id"])
    p.flush()
    # Three are admitted in this window; the other three are held.
    replies.wait(lambda: sum(1 for r in low if r["custom_id"] in replies.by_id()) >= 3, 60,
                 "the admitted three")
    p.send(topic, normal, key=normal["custom_id"])
    p.flush()
    refused = replies.results([normal["custom_id"]], timeout=60)[normal["custom_id"]]
    assert refused["error"]["code"] == "rate_limited", describe(refused)
    got = replies.results([r["custom_id"] for r in low], timeout=150)
    counts = replies.counts([r["custom_id"] for r in low])
    minutes = {cid: recs[0].timestamp // 60000 for cid, recs in replies.by_id().items()
               if cid in counts}
    replies.close()
    for r in low:
        res = got[r["custom_id"]]
        assert res["inferq"]["status"] == "succeeded", describe(res)
    assert set(counts.values()) == {1}, counts
    in_window = [c for c, m in minutes.items() if m == start_minute]
    later = [c for c, m in minutes.items() if m > start_minute]
    assert len(in_window) == 3 and len(later) == 3, minutes
