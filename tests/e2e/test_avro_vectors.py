"""
Avro requests: the shared wire-contract vectors (schemas/vectors/*.avro,
exact Avro single-object encodings) are produced byte for byte, unchanged,
and every one is answered (none is dead-lettered). The plain ones succeed
and their text (including non-ASCII) survives the round trip.
"""
import json

import pytest

from ifq_e2e import (ROOT, Produce, ReplyCollector, TopicReader, content_of, deployment, describe,
                     ensure_topic, now_ms)

VECTORS = ROOT / "schemas" / "vectors"


def request_vectors():
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    return [c for c in manifest["cases"] if c["kind"] == "request"]


@pytest.fixture(scope="module")
def gw(make_gateway, stack_env):
    g = make_gateway(
        deployments={"fake-chat": deployment(stack_env.fake_url, "fake-chat"),
                     "fake-embed": deployment(stack_env.fake_url, "fake-embed")},
        aliases={"chat-default": ["fake-chat"], "embed-default": ["fake-embed"]})
    g.start_worker()
    return g


def test_request_vectors_are_answered(gw):
    cases = request_vectors()
    assert len(cases) >= 6
    vec = {}
    for c in cases:
        raw = (VECTORS / c["avro"]).read_bytes()
        assert len(raw) == c["avro_size"], c["name"]
        assert raw[:2] == b"\xc3\x01", f"{c['avro']} is not single-object encoded"
        vec[c["name"]] = (raw, json.loads((VECTORS / c["json"]).read_text()))

    # results go to reply_to when a vector names one
    reply_topics = {gw.replies}
    for raw, js in vec.values():
        if js.get("reply_to"):
            reply_topics.add(js["reply_to"])
    for t in reply_topics - {gw.replies}:
        ensure_topic(gw.env.bootstrap, t)
    replies = ReplyCollector(gw.env.bootstrap, sorted(reply_topics), watch=gw)
    dlq = TopicReader(gw.env.bootstrap, gw.dlq, watch=gw)
    prod = Produce(gw.env.bootstrap)
    try:
        slots = {}
        for name, (raw, js) in vec.items():
            slots[name] = prod.send(gw.requests, raw, key=js["custom_id"],
                                    headers=[("content-type",
                                              b"application/vnd.inferq.request.v1+avro")])
        prod.flush()
        t_sent = now_ms()
        got = replies.results([js["custom_id"] for _, js in vec.values()], timeout=60)
        dlq.poll(1.0)
        assert not dlq.records, f"vectors dead-lettered: {[r.header('inferq-error') for r in dlq.records]}"

        for name, (raw, js) in vec.items():
            res = got[js["custom_id"]]
            where = [r.topic for r in replies.by_id()[js["custom_id"]]]
            assert where[0] == (js.get("reply_to") or gw.replies), f"{name}: answered on {where}"
            if js.get("metadata"):
                assert res["inferq"].get("metadata") == js["metadata"], f"{name}: {describe(res)}"
            assert res["inferq"]["model_requested"] == js["body"]["model"], describe(res)
            deadline = js.get("deadline_ms")
            if deadline and deadline < t_sent:
                assert res["error"]["code"] == "batch_expired", f"{name}: {describe(res)}"
            elif js.get("prompt") is None and js["body"]["model"] != "auto":
                assert res["error"] is None and res["inferq"]["status"] == "succeeded", \
                    f"{name}: {describe(res)}"
            else:
                # prompt templates / cost routing: answered, with a stable code when failed
                assert res["inferq"]["status"] in ("succeeded", "failed", "rejected", "expired"), \
                    describe(res)

        mc = vec["request_minimal_chat"][1]
        assert content_of(got[mc["custom_id"]]) == "echo: Hi"
        uc = vec["request_unicode"][1]
        assert content_of(got[uc["custom_id"]]) == "echo: " + uc["body"]["messages"][0]["content"]
        ec = vec["request_embeddings"][1]
        assert len(got[ec["custom_id"]]["response"]["body"]["data"]) == 2
        cc = vec["request_completions"][1]
        body = got[cc["custom_id"]]["response"]["body"]
        assert body["object"] == "text_completion", body
    finally:
        replies.close()
        dlq.close()
