"""
Retries, failover along an alias chain, non-retryable errors, Retry-After,
and a deadline that passes while the model hangs.

Worker policy in this module: max_attempts 3, backoff 50..200 ms, so any
wait of a second or more can only come from a Retry-After header.
"""
import pytest

from ifq_e2e import (FakeModel, Produce, ReplyCollector, chat, content_of, deployment, describe,
                     free_port, now_ms, unique, wait_until)

MAX_ATTEMPTS = 3


def st(a):
    """HTTP status of an attempt record (docs/wire-contract.md calls the key
    status_code; the worker has written status)."""
    return a.get("status_code", a.get("status"))


@pytest.fixture(scope="module")
def fakes(stack_env, workdir):
    ok = FakeModel(stack_env, workdir, "fake-ok", group=__name__)
    bad = FakeModel(stack_env, workdir, "fake-bad", ["--fail-rate", "1"], group=__name__)
    yield ok, bad
    ok.stop()
    bad.stop()


@pytest.fixture(scope="module")
def gw(make_gateway, fakes):
    ok, bad = fakes
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    g = make_gateway(
        deployments={
            "a-bad": deployment(bad.base_url),
            "a-closed": deployment(closed, timeout_ms=5000),
            "b-ok": deployment(ok.base_url),
            "c-ok": deployment(ok.base_url),
            "solo": deployment(ok.base_url, timeout_ms=60000),
        },
        aliases={"fo-503": ["a-bad", "b-ok"], "fo-closed": ["a-closed", "b-ok"],
                 "chain-ok": ["c-ok", "b-ok"]},
        worker={"max_attempts": MAX_ATTEMPTS, "backoff_base_ms": 50, "backoff_max_ms": 200})
    g.start_worker()
    return g


def run_one(gw, req, timeout=60):
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    try:
        p = Produce(gw.env.bootstrap)
        p.send(gw.requests, req, key=req["custom_id"])
        p.flush()
        return replies.results([req["custom_id"]], timeout=timeout)[req["custom_id"]]
    finally:
        replies.close()


@pytest.mark.parametrize("alias,first", [("fo-503", "a-bad"), ("fo-closed", "a-closed")])
def test_failover_to_next_deployment(gw, alias, first):
    cid = unique(f"{alias}-")
    res = run_one(gw, chat(cid, "fail over please", model=alias))
    assert res["error"] is None and res["inferq"]["status"] == "succeeded", describe(res)
    assert res["inferq"]["deployment"] == "b-ok", describe(res)
    assert content_of(res) == "echo: fail over please"
    att = res["inferq"]["attempts"]
    failed, last = att[:-1], att[-1]
    assert [a["deployment"] for a in failed] == [first] * MAX_ATTEMPTS, describe(res)
    assert all(a.get("error") for a in failed), describe(res)
    if first == "a-bad":
        assert all(st(a) == 503 for a in failed), describe(res)
    else:
        assert all(st(a) is None for a in failed), describe(res)
    assert last["deployment"] == "b-ok" and st(last) == 200 and not last.get("error"), \
        describe(res)


def test_fail_first_retries_on_same_deployment(gw, fakes):
    ok, _ = fakes
    key = unique("ff-")
    res = run_one(gw, chat(key, f"[[fake:fail_first=2]][[fake:key={key}]] retry me", model="solo"))
    assert res["error"] is None and res["inferq"]["status"] == "succeeded", describe(res)
    att = res["inferq"]["attempts"]
    assert [(a["deployment"], st(a)) for a in att] == \
        [("solo", 503), ("solo", 503), ("solo", 200)], describe(res)
    assert [a["attempt"] for a in att] == [1, 2, 3]
    assert ok.stats()["by_key"].get(key) == 3


def test_client_error_is_not_retried(gw, fakes):
    ok, _ = fakes
    key = unique("e400-")
    res = run_one(gw, chat(key, f"[[fake:status=400]][[fake:key={key}]]", model="chain-ok"))
    assert res["response"] is None, describe(res)
    assert res["error"]["code"] == "upstream_error", describe(res)
    assert res["inferq"]["status"] == "failed"
    att = res["inferq"]["attempts"]
    assert [(a["deployment"], st(a)) for a in att] == [("c-ok", 400), ("b-ok", 400)], \
        describe(res)
    assert ok.stats()["by_key"].get(key) == 2


def test_429_retry_after_is_honoured(gw, fakes):
    ok, _ = fakes
    key = unique("e429-")
    res = run_one(gw, chat(key, f"[[fake:fail_first=1]][[fake:key={key}]][[fake:status=429]]"
                                f"[[fake:retry_after=1]] slow down", model="solo"))
    assert res["error"] is None and res["inferq"]["status"] == "succeeded", describe(res)
    att = res["inferq"]["attempts"]
    assert [(a["deployment"], st(a)) for a in att] == [("solo", 429), ("solo", 200)], \
        describe(res)
    t = res["inferq"]["timings_ms"]
    # total - queue = from the worker taking the request to the result:
    # attempt 1 + the wait + attempt 2. Backoff alone is at most 200 ms here.
    spent = t["total"] - t["queue"]
    assert spent >= 1000, f"Retry-After: 1 not honoured: {spent} ms between pick-up and result " \
                          f"({t}, attempts {att})"


def test_deadline_passes_while_model_hangs(gw, fakes):
    ok, _ = fakes
    cid = unique("hang-")
    deadline = now_ms() + 2000
    res = run_one(gw, chat(cid, "[[fake:hang]]", model="solo", deadline_ms=deadline), timeout=30)
    assert res["response"] is None, describe(res)
    assert res["error"]["code"] == "batch_expired", describe(res)
    assert res["inferq"]["status"] == "expired", describe(res)
    assert res["inferq"]["finished_ms"] >= deadline - 50, describe(res)
    assert res["inferq"]["finished_ms"] <= deadline + 10_000, describe(res)
    # the hung upstream call was abandoned
    wait_until(lambda: ok.stats()["in_flight"] == 0, 10, "the hung call to be closed")
