"""
The worker writes a successful result in one of two ways (workers/worker.c):
from bytes (result_bytes: the values carried over from the routed message
and an OpenAI-compatible answer are copied as received, on one line), or
from a jansson tree (when the tree holds something the bytes do not: a
retry of the same hop, output guardrail findings, or a team that logs
requests, whose log takes the request and the result as trees).

Both must write the same result. The same requests go through two teams
that differ only in log_requests: "bytes" gets the bytes, "trees" the
tree. Their results must be equal member for member and in the same order,
apart from what differs between any two requests (ids, times, the team).

  simple    metadata with escapes, control characters and non-ASCII text
  pretty    the model answers indented over several lines, as OpenAI does
  failover  two 503s on "bad", then "good" answers: the last hop's routed
            message carries the earlier hop's attempt records
  nometa    no metadata at all

Needs: Kafka, Redis (the stack), inferq-broker, inferq-worker,
inferq-fake-model.
"""
import json

import pytest

from ifq_e2e import (Gateway, Produce, ReplyCollector, chat, deployment, describe, serve_teams,
                     unique)

TEAMS = ("bytes", "trees")  # names of one length: the prompts then count the same tokens
METADATA = {"batch": "b-7", "q": "say \"hi\"\\n", "text": "café ☕ 東京", "tab": "a\tb",
            "ctl": "\u0001\u001f", "slash": "a/b"}


@pytest.fixture(scope="module")
def gw(stack_env, workdir, fake):
    g = Gateway(
        stack_env, workdir / "enc",
        deployments={"m": deployment(fake.base_url, timeout_ms=30000),
                     "bad": deployment(fake.base_url, timeout_ms=30000),
                     "good": deployment(fake.base_url, timeout_ms=30000)},
        aliases={"chat": ["m"], "fo": ["bad", "good"]},
        worker={"max_attempts": 2, "backoff_base_ms": 10, "backoff_max_ms": 20},
        group=__name__,
        extra={"teams": {
            "bytes": {"models": ["chat", "fo"]},
            "trees": {"models": ["chat", "fo"], "log_requests": True},
        }})
    yield from serve_teams(g, TEAMS)


def requests_for(team):
    """The scenario's requests for one team: {case: request}."""
    return {
        "simple": chat(unique(f"enc-{team}-simple-"), "hello there", model="chat",
                       metadata=METADATA),
        "pretty": chat(unique(f"enc-{team}-pretty-"), "[[fake:pretty]] hello pretty",
                       model="chat", metadata={"k": "v"}),
        # Each team's own key, so that each gets its two 503s.
        "failover": chat(unique(f"enc-{team}-fo-"),
                         f"[[fake:fail_first=2]][[fake:key=enc-{team}-{unique('k')}]][[fake:content=ok]] fo",
                         model="fo", metadata={"k": "fo"}),
        "nometa": chat(unique(f"enc-{team}-nometa-"), "no metadata", model="chat"),
    }


@pytest.fixture(scope="module")
def results(gw):
    reqs = {team: requests_for(team) for team in TEAMS}
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    try:
        p = Produce(gw.env.bootstrap)
        for team in TEAMS:
            for r in reqs[team].values():
                p.send(f"{gw.requests}.{team}", r, key=r["custom_id"])
        p.flush()
        cids = [r["custom_id"] for team in TEAMS for r in reqs[team].values()]
        replies.results(cids, timeout=90)
        raw = {}
        for cid, recs in replies.by_id().items():
            raw[cid] = recs[0].value
    finally:
        replies.close()
    return {team: {case: raw[r["custom_id"]] for case, r in reqs[team].items()} for team in TEAMS}


# Members whose values differ between any two requests: compared by
# presence and type only.
VOLATILE = {("id",), ("custom_id",), ("response", "request_id"), ("response", "body", "id"),
            ("response", "body", "created"), ("inferq", "trace_id"), ("inferq", "finished_ms"),
            ("inferq", "team"), ("inferq", "timings_ms", "queue"), ("inferq", "timings_ms", "model"),
            ("inferq", "timings_ms", "total"), ("inferq", "attempts", "*", "latency_ms")}


def normalise(v, path=()):
    """v (parsed with object_pairs_hook=list) with the volatile values
    replaced by their type name; objects stay lists of pairs, so member
    order is compared too."""
    if isinstance(v, list) and v and all(isinstance(p, tuple) for p in v):
        return [(k, normalise(x, path + (k,))) for k, x in v]
    if isinstance(v, list):
        return [normalise(x, path + ("*",)) for x in v]
    if path in VOLATILE:
        return type(v).__name__
    return v


def pairs(raw: bytes):
    return json.loads(raw, object_pairs_hook=list)


@pytest.mark.parametrize("case", ["simple", "pretty", "failover", "nometa"])
def test_bytes_and_tree_write_the_same_result(results, case):
    by_bytes, by_tree = results["bytes"][case], results["trees"][case]
    a, b = normalise(pairs(by_bytes)), normalise(pairs(by_tree))
    assert a == b, f"bytes:\n{by_bytes.decode()}\ntree:\n{by_tree.decode()}"


@pytest.mark.parametrize("team", TEAMS)
def test_results_are_one_line_of_valid_json(results, team):
    for case, raw in results[team].items():
        assert b"\n" not in raw and b"\r" not in raw, (case, raw)
        res = json.loads(raw)
        assert res["error"] is None and res["inferq"]["status"] == "succeeded", describe(res)


def test_carried_values_are_the_requests(results):
    for team in TEAMS:
        res = json.loads(results[team]["simple"])
        assert res["inferq"]["metadata"] == METADATA, describe(res)
        assert res["inferq"]["team"] == team
        assert res["inferq"]["model_requested"] == "chat"
        assert res["inferq"]["deployment"] == "m"
        assert res["response"]["body"]["choices"][0]["message"]["content"] == "echo: hello there"
        assert json.loads(results[team]["nometa"])["inferq"]["metadata"] == {}


def test_pretty_answer_is_kept_whole(results):
    res = json.loads(results["bytes"]["pretty"])
    body = res["response"]["body"]
    assert body["choices"][0]["message"]["content"] == "echo: [[fake:pretty]] hello pretty"
    assert body["usage"] == res["inferq"]["usage"]
    assert body["object"] == "chat.completion"


def test_failover_result_lists_every_hops_attempts(results):
    for team in TEAMS:
        res = json.loads(results[team]["failover"])
        att = [(a["deployment"], a["attempt"], a["status_code"]) for a in res["inferq"]["attempts"]]
        assert att == [("bad", 1, 503), ("bad", 2, 503), ("good", 1, 200)], describe(res)
        assert res["inferq"]["deployment"] == "good"
        assert res["inferq"]["timings_ms"]["model"] >= 0
