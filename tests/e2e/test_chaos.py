"""
Chaos: N requests through one gateway whose alias chain is
[down, ok-a, ok-b], with every failure the fake model can script, at once.

- `down` points at a closed port (connection refused): its circuit must
  open and stay open (circuit_open_ms is longer than the test).
- `ok-a` and `ok-b` are two own inferq-fake-model processes (one each, so
  that each fake's per-key counts are the calls made to one deployment).
- Worker: max_attempts 3, backoff 20..100 ms, circuit_failure_threshold 5,
  circuit_open_ms 600 s; per-deployment timeout_ms 1500.

The mix (every request has a unique `key=`, so the fakes count its calls):

| kind      | share | directives                                              |
|-----------|-------|---------------------------------------------------------|
| e500      | 30%   | fail_first=1, status=500                                |
| e429      | 10%   | fail_first=1, status=429, retry_after=1, in bursts of 25 |
| hang      | 5%    | fail_first=1, hang (the first call times out at 1.5 s)  |
| malformed | 5%    | fail_first=1, malformed (200 with half a JSON body)     |
| drop      | 5%    | fail_first=1, drop (connection closed, no response)     |
| deadline  | 1%    | hang on every call, deadline_ms = sent + 2.5 s          |
| plain     | rest  | none                                                    |

Asserted:
1. every request has exactly one result, also after a quiet period;
2. every request except the deadline ones ends `succeeded`, with a 200 as
   its last attempt; each failure kind shows its failed attempt(s) and
   requests routed while `down` was first show the failover;
3. no request was called more than max_attempts times on one deployment:
   the fakes' by_key counts (calls actually received) are <= 3 for every
   key on each fake, and a succeeded request's calls are recorded in its
   `inferq.attempts`;
4. deadline requests end `expired` / `batch_expired`; none was called
   after its result was produced (its by_key counts, read after the quiet
   period, equal the HTTP attempts its result records) and every recorded
   attempt started by the deadline (an attempt's start is at most
   finished_ms minus the latencies of it and every attempt after it);
5. Redis: `<prefix>:circuit:down` has state `open`, `<prefix>:circuit:ok-a`
   is `closed` (or was never written, i.e. never left closed).

N is INFERQ_CHAOS_N (default 10,000). With the ASan build on the shared
2-core machine the whole module takes about 100 s at the default (the
release build about 40 s).
"""
from __future__ import annotations

import json
import os
import random
import time
from collections import Counter

import pytest
import redis

from ifq_e2e import (FakeModel, Produce, ReplyCollector, chat, deployment, describe, free_port,
                     now_ms)

N = int(os.environ.get("INFERQ_CHAOS_N", "10000"))
MAX_ATTEMPTS = 3
TIMEOUT_MS = 1500
DEADLINE_AFTER_MS = 2500
CIRCUIT_THRESHOLD = 5
CIRCUIT_OPEN_MS = 600_000
QUIET_S = 3.0
RESULT_TIMEOUT_S = 150 + N // 100   # generous: the check is "all answered", not speed
FAKE_KEY_CAPACITY = 24576            # by_key and fail_first tables of inferq-fake-model

SHARES = [("e500", 0.30), ("hang", 0.05), ("malformed", 0.05), ("drop", 0.05),
          ("deadline", 0.01)]
BURST_EVERY, BURST_LEN = 250, 25     # e429: 25 in a row every 250 requests (10%)

DIRECTIVES = {
    "e500": "[[fake:fail_first=1]][[fake:status=500]]",
    "e429": "[[fake:fail_first=1]][[fake:status=429]][[fake:retry_after=1]]",
    "hang": "[[fake:fail_first=1]][[fake:hang]]",
    "malformed": "[[fake:fail_first=1]][[fake:malformed]]",
    "drop": "[[fake:fail_first=1]][[fake:drop]]",
    "deadline": "[[fake:hang]]",
    "plain": "",
}


def st(a):
    return a.get("status_code")


def err_type(a):
    e = a.get("error")
    return e.get("type") if isinstance(e, dict) else None


def is_http(a):
    """An attempt that called the model (not one skipped for an open circuit)."""
    return err_type(a) != "circuit_open"


def plan(n: int, seed: int = 20261125) -> list[str]:
    """The kind of each request, in sending order."""
    rng = random.Random(seed)
    kinds = []
    for i in range(n):
        if i % BURST_EVERY < BURST_LEN:
            kinds.append("e429")
            continue
        r = rng.random() / (1 - BURST_LEN / BURST_EVERY)  # shares are of all n
        acc = 0.0
        kind = "plain"
        for k, share in SHARES:
            acc += share
            if r < acc:
                kind = k
                break
        kinds.append(kind)
    return kinds


@pytest.fixture(scope="module")
def fakes(stack_env, workdir):
    a = FakeModel(stack_env, workdir, "fake-a", group=__name__)
    b = FakeModel(stack_env, workdir, "fake-b", group=__name__)
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def gw(make_gateway, fakes):
    a, b = fakes
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    g = make_gateway(
        deployments={
            "down": deployment(closed, timeout_ms=TIMEOUT_MS, max_inflight=4000),
            "ok-a": deployment(a.base_url, timeout_ms=TIMEOUT_MS, max_inflight=4000),
            "ok-b": deployment(b.base_url, timeout_ms=TIMEOUT_MS, max_inflight=4000),
        },
        aliases={"chaos": ["down", "ok-a", "ok-b"]},
        worker={"max_attempts": MAX_ATTEMPTS, "backoff_base_ms": 20, "backoff_max_ms": 100,
                "circuit_failure_threshold": CIRCUIT_THRESHOLD,
                "circuit_open_ms": CIRCUIT_OPEN_MS, "max_inflight": 4000})
    g.start_worker()
    return g


def test_chaos_every_request_gets_exactly_one_result(gw, fakes, record_property):
    fa, fb = fakes
    assert N <= FAKE_KEY_CAPACITY, f"INFERQ_CHAOS_N={N} exceeds the fake's key tables"
    tag = f"{gw.prefix}-c"
    kinds = plan(N)
    ids = [f"{tag}{i:05d}" for i in range(N)]
    kind_of = dict(zip(ids, kinds))
    deadline_of = {}

    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    t0 = time.monotonic()
    try:
        p = Produce(gw.env.bootstrap)
        for cid, kind in zip(ids, kinds):
            extra = {}
            if kind == "deadline":
                extra["deadline_ms"] = deadline_of[cid] = now_ms() + DEADLINE_AFTER_MS
            text = f"{DIRECTIVES[kind]}[[fake:key={cid}]] chaos {kind}"
            p.send(gw.requests, chat(cid, text, model="chaos", **extra), key=cid)
        p.flush()
        sent_s = time.monotonic() - t0

        res = replies.results(ids, timeout=RESULT_TIMEOUT_S)
        all_in_s = time.monotonic() - t0
        # quiet period: nothing more may arrive (no duplicate results)
        quiet_end = time.monotonic() + QUIET_S
        while time.monotonic() < quiet_end:
            replies.poll(0.2)
        counts = replies.counts(ids)
    finally:
        replies.close()

    # 1. exactly one result each
    dup = {cid: n for cid, n in counts.items() if n != 1}
    assert not dup, f"{len(dup)} request(s) with more than one result, e.g. " \
                    f"{list(dup.items())[:5]}"

    # 2. all non-deadline requests recovered; each kind shows its failure
    bad = [describe(r) for cid, r in res.items()
           if kind_of[cid] != "deadline" and (r["inferq"]["status"] != "succeeded"
                                              or r["error"] is not None)]
    assert not bad, f"{len(bad)} request(s) did not succeed, e.g. {bad[:3]}"
    for cid, r in res.items():
        if kind_of[cid] == "deadline":
            continue
        att = r["inferq"]["attempts"]
        assert att and st(att[-1]) == 200 and not att[-1].get("error"), describe(r)
        assert r["inferq"]["deployment"] in ("ok-a", "ok-b"), describe(r)

    seen = {k: Counter() for k in DIRECTIVES}
    for cid, r in res.items():
        att = [a for a in r["inferq"]["attempts"] if a["deployment"] != "down"]
        for a in att:
            seen[kind_of[cid]][(st(a), err_type(a))] += 1
    expect_failure = {"e500": (500, "http_500"), "e429": (429, "http_429"),
                      "hang": (None, "timeout"), "malformed": (200, "malformed_response")}
    for kind, sig in expect_failure.items():
        n_kind = sum(1 for k in kinds if k == kind)
        # each of them failed once per fake it reached (fail_first=1 per fake)
        assert seen[kind][sig] >= n_kind, f"{kind}: {dict(seen[kind])} for {n_kind} requests"
    # a dropped connection is a transport error, unless libcurl resent the
    # request on a fresh connection by itself (then the fake saw two calls
    # for one recorded attempt; counted below)
    drops = sum(v for (s, t), v in seen["drop"].items() if t == "transport")

    # 429 + Retry-After: 1 -> at least 1 s between the 429 and the next call
    # on that deployment (backoff alone is at most 100 ms here)
    for cid, r in res.items():
        if kind_of[cid] != "e429":
            continue
        att = r["inferq"]["attempts"]
        i = next(i for i, a in enumerate(att) if st(a) == 429)
        if i + 1 < len(att) and att[i + 1]["deployment"] == att[i]["deployment"]:
            t = r["inferq"]["timings_ms"]
            assert t["total"] - t["queue"] >= 1000, describe(r)

    via_down = [r for r in res.values() if any(a["deployment"] == "down"
                                               for a in r["inferq"]["attempts"])]
    assert via_down, "no request was routed to `down` first: the failover path was not exercised"
    down_errors = Counter(err_type(a) for r in via_down for a in r["inferq"]["attempts"]
                          if a["deployment"] == "down")
    assert set(down_errors) <= {"connect", "circuit_open"}, down_errors

    # 3. calls per deployment, from the fakes
    sa, sb = fa.stats(), fb.stats()
    for name, s in (("fake-a", sa), ("fake-b", sb)):
        assert s["by_key_overflow"] == 0, f"{name}: by_key table overflowed: {s['by_key_overflow']}"
        over = {k: v for k, v in s["by_key"].items() if k.startswith(tag) and v > MAX_ATTEMPTS}
        assert not over, f"{name}: keys called more than {MAX_ATTEMPTS} times: " \
                         f"{list(over.items())[:10]}"
        assert s["in_flight"] == 0, f"{name}: {s['in_flight']} call(s) still open"
    hidden = {}  # calls the fake saw that no attempt record accounts for
    for cid, r in res.items():
        for dep, s in (("ok-a", sa), ("ok-b", sb)):
            recorded = sum(1 for a in r["inferq"]["attempts"] if a["deployment"] == dep
                           and is_http(a))
            calls = s["by_key"].get(cid, 0)
            if calls != recorded:
                hidden[(cid, dep)] = (kind_of[cid], calls, recorded)
    # the only known source of extra calls: libcurl silently resending a
    # request whose reused keep-alive connection was closed without an answer
    unexplained = {k: v for k, v in hidden.items() if not (v[0] == "drop" and v[1] == v[2] + 1)}
    assert not unexplained, f"{len(unexplained)} (request, deployment) pairs whose calls at the " \
                            f"fake differ from the attempts recorded, e.g. " \
                            f"{list(unexplained.items())[:5]}"

    # 4. deadlines
    n_deadline = len(deadline_of)
    with_attempts = 0
    for cid, dl in deadline_of.items():
        r = res[cid]
        assert r["response"] is None and r["error"]["code"] == "batch_expired" \
            and r["inferq"]["status"] == "expired", describe(r)
        att = r["inferq"]["attempts"]
        fin = r["inferq"].get("finished_ms") or 0
        after = 0
        for a in reversed(att):
            after += a.get("latency_ms") or 0
            if fin:
                # start of a <= fin - (its latency + the later ones' latencies);
                # 250 ms for the worker's own processing between the end of
                # an attempt and the result under ASan on a loaded machine
                assert fin - after <= dl + 250, \
                    f"an attempt started after the deadline {dl}: {describe(r)}"
        if any(is_http(a) and a["deployment"] != "down" for a in att):
            with_attempts += 1

    # 5. circuits in Redis
    rd = redis.Redis.from_url(gw.env.redis_url, decode_responses=True)
    down = rd.hgetall(f"{gw.prefix}:circuit:down")
    oka = rd.hgetall(f"{gw.prefix}:circuit:ok-a")
    okb = rd.hgetall(f"{gw.prefix}:circuit:ok-b")
    assert down.get("state") == "open", down
    assert oka.get("state", "closed") == "closed", oka

    summary = {
        "n": N, "sent_s": round(sent_s, 1), "all_results_s": round(all_in_s, 1),
        "kinds": dict(Counter(kinds)), "via_down": len(via_down),
        "down_attempts": dict(down_errors), "drop_transport_errors": drops,
        "curl_resent_after_drop": len(hidden),
        "deadline": {"n": n_deadline, "with_model_attempts": with_attempts},
        "circuit": {"down": down, "ok-a": oka, "ok-b": okb},
        "fake_a": {k: sa[k] for k in ("requests", "max_in_flight", "hung", "dropped",
                                      "malformed", "by_status")},
        "fake_b": {k: sb[k] for k in ("requests", "max_in_flight", "hung", "dropped",
                                      "malformed", "by_status")},
    }
    print(json.dumps(summary))
    record_property("chaos", json.dumps(summary))
    # the deadline check must not be vacuous
    assert with_attempts > 0, f"no deadline request reached a model: {summary['deadline']}"
