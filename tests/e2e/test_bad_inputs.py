"""
Bad input never stops a partition. Undecodable or uncorrelatable messages go
to the dead-letter topic with their original bytes and headers plus the
inferq-error* headers; decodable but invalid requests get an error result
with a stable code; good requests produced between them, all with the same
key (so all in one partition), are answered.
"""
import json
import re
import secrets

import pytest

from ifq_e2e import (Produce, ReplyCollector, TopicReader, chat, content_of, deployment,
                     describe, ensure_topic, now_ms, unique)

DLQ_HEADERS = ("inferq-error", "inferq-error-code", "inferq-source-topic",
               "inferq-source-partition", "inferq-source-offset", "inferq-dlq-ts")


@pytest.fixture(scope="module")
def gw(make_gateway, stack_env):
    g = make_gateway(
        deployments={"fake-chat": deployment(stack_env.fake_url, "fake-chat")},
        aliases={"chat-default": ["fake-chat"]},
        broker={"max_message_bytes": 1048576})
    g.start_worker()
    return g


def test_bad_inputs_interleaved_with_good_ones(gw):
    tag = unique("bad-")
    key = f"{tag}-key"
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    dlq = TopicReader(gw.env.bootstrap, gw.dlq, watch=gw)
    prod = Produce(gw.env.bootstrap)

    good = []  # custom_ids that must succeed
    dlq_cases = []  # (name, bytes, delivery slot)
    err_cases = []  # (custom_id, expected code, words the message must contain, state)

    def send_good():
        cid = f"{tag}-good-{len(good)}"
        good.append(cid)
        prod.send(gw.requests, chat(cid, f"good {cid}"), key=key)

    def send_dlq(name, value):
        slot = prod.send(gw.requests, value, key=key,
                         headers=[("x-e2e-case", name.encode()), ("content-type", b"text/plain")])
        dlq_cases.append((name, value, slot))

    def send_err(suffix, req, code, words, state="rejected", raw=None):
        cid = f"{tag}-{suffix}"
        if req is not None:
            req["custom_id"] = cid
        prod.send(gw.requests, raw if raw is not None else req, key=key)
        err_cases.append((cid, code, words, state))

    try:
        send_good()
        send_dlq("not_json", b"hello")
        send_good()
        send_dlq("binary", b"\xff\xfe")
        send_good()
        send_dlq("empty", b"")
        send_good()
        send_dlq("truncated_avro", b"\xc3\x01\x01\x02\x03")
        send_good()
        send_dlq("json_array", b'[{"custom_id": "x"}]')
        send_good()
        no_cid = chat("unused", "no custom id")
        del no_cid["custom_id"]
        send_dlq("missing_custom_id", json.dumps(no_cid).encode())
        send_good()
        # robustness: Confluent framing with garbage, an Avro string length
        # far beyond the message, JSON nested beyond any sane depth, a NUL in
        # the custom_id
        send_dlq("confluent_garbage", b"\x00\x00\x00\x00\x07garbage")
        send_dlq("avro_huge_length",
                 b"\xc3\x01" + bytes.fromhex("5aac6f8842a03294") + b"\xfe\xff\xff\xff\x0f" + b"ab")
        send_dlq("deep_nesting", b'{"custom_id": "deep", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}")
        send_dlq("nul_in_custom_id", json.dumps(chat("a\u0000b", "x")).encode())
        send_good()
        send_err("bad-reply-to", chat("", "x", reply_to="not a topic!"), "invalid_request",
                 ["reply_to"])
        # duplicate keys resolve to the last one (wire contract 6.2)
        dup = f"{tag}-good-{len(good)}"
        good.append(dup)
        prod.send(gw.requests, ('{"custom_id": "%s-first", "custom_id": "%s", "method": "POST", '
                                '"url": "/v1/chat/completions", "body": {"model": "chat-default", '
                                '"messages": [{"role": "user", "content": "good %s"}]}}'
                                % (dup, dup, dup)).encode(), key=key)

        r = chat("", "no url")
        del r["url"]
        send_err("no-url", r, "unsupported_url", ["url"])
        send_good()
        send_err("bad-url", chat("", "x", url="/v1/images/generations"), "unsupported_url",
                 ["/v1/images/generations"])
        send_err("unknown-model", chat("", "x", model="no-such-model"), "model_not_found",
                 ["no-such-model"])
        send_good()
        r = chat("", "x")
        r["body"] = "not an object"
        send_err("body-string", r, "invalid_request", ["body"])
        send_err("metadata-numbers", chat("", "x", metadata={"n": 1, "m": 2.5}),
                 "invalid_request", ["metadata"])
        send_err("priority-urgent", chat("", "x", priority="urgent"), "invalid_request",
                 ["priority"])
        send_err("deadline-soon", chat("", "x", deadline_ms="soon"), "invalid_request",
                 ["deadline_ms"])
        send_good()
        big = chat(f"{tag}-big", "x" * (10 * 1024 * 1024))
        send_err("big", None, "request_too_large", [], raw=json.dumps(big).encode())
        send_good()
        send_err("past-deadline", chat("", "x", deadline_ms=now_ms() - 60_000), "batch_expired",
                 ["deadline"], state="expired")
        send_good()
        prod.flush()

        # Everything went to one partition: the bad input really sat between
        # the good requests.
        parts = {s[0].partition for _, _, s in dlq_cases}
        assert len(parts) == 1

        ids = good + [c[0] for c in err_cases]
        res = replies.results(ids, timeout=90)

        for cid in good:
            r = res[cid]
            assert r["error"] is None and r["inferq"]["status"] == "succeeded", describe(r)
            assert content_of(r) == f"echo: good {cid}"

        for cid, code, words, state in err_cases:
            r = res[cid]
            assert r["response"] is None, describe(r)
            assert r["error"] is not None and r["error"]["code"] == code, \
                f"{cid}: expected {code}: {describe(r)}"
            assert r["inferq"]["status"] == state, describe(r)
            msg = r["error"]["message"]
            for w in words:
                assert w in msg, f"{cid}: error message {msg!r} does not name {w!r}"

        # DLQ: one record per undecodable message, original bytes, reasons.
        t_end = now_ms()
        want_offsets = {s[0].offset for _, _, s in dlq_cases}

        def dlq_done():
            got = {r.header("inferq-source-offset") for r in dlq.records
                   if r.header("inferq-source-topic") == gw.requests}
            return {str(o) for o in want_offsets}.issubset(got)

        dlq.wait(dlq_done, 60, "the dead-letter records")
        by_off = {}
        for rec in dlq.records:
            by_off.setdefault(rec.header("inferq-source-offset"), []).append(rec)
        for name, value, slot in dlq_cases:
            d = slot[0]
            recs = by_off.get(str(d.offset), [])
            assert len(recs) == 1, f"{name}: {len(recs)} DLQ records for offset {d.offset}"
            rec = recs[0]
            for h in DLQ_HEADERS:
                assert rec.header(h), f"{name}: DLQ header {h} missing: {rec.headers}"
            assert (rec.value or b"") == value, f"{name}: DLQ value {rec.value[:40]!r} != original"
            assert rec.key == key.encode(), f"{name}: key {rec.key!r}"
            assert rec.header("inferq-source-topic") == gw.requests
            assert rec.header("inferq-source-partition") == str(d.partition)
            assert rec.header("x-e2e-case") == name, f"{name}: client headers not kept"
            reason = rec.header("inferq-error")
            assert len(reason) >= 10 and reason.isprintable(), f"{name}: reason {reason!r}"
            ts = int(rec.header("inferq-dlq-ts"))
            assert d.timestamp - 5000 <= ts <= t_end + 5000, f"{name}: inferq-dlq-ts {ts}"
        # Nothing else in the DLQ, and nothing correlatable was dead-lettered.
        extra = [r.header("inferq-source-offset") for r in dlq.records
                 if r.header("inferq-source-offset") not in {str(o) for o in want_offsets}]
        assert not extra, f"unexpected DLQ records at offsets {extra}"
        reasons = {name: by_off[str(s[0].offset)][0].header("inferq-error")
                   for name, _, s in dlq_cases}
        assert "JSON" in reasons["not_json"] or "Avro" in reasons["not_json"], reasons
        assert "custom_id" in reasons["missing_custom_id"], reasons
        assert "Avro" in reasons["truncated_avro"], reasons
        assert "empty" in reasons["empty"], reasons
    finally:
        replies.close()
        dlq.close()


def test_reply_to_topic(gw):
    """Results go to the request's reply_to topic, with the metadata echoed."""
    tag = unique("rt-")
    team = gw.topic("replies.team-a")
    ensure_topic(gw.env.bootstrap, team)
    replies = ReplyCollector(gw.env.bootstrap, [gw.replies, team], watch=gw)
    prod = Produce(gw.env.bootstrap)
    try:
        ok, rej = f"{tag}-team", f"{tag}-team-rejected"
        prod.send(gw.requests, chat(ok, "to the team", reply_to=team, metadata={"t": "1"}), key=ok)
        prod.send(gw.requests, chat(rej, "x", model="no-such-model", reply_to=team), key=rej)
        prod.flush()
        res = replies.results([ok, rej], timeout=60)
        where = {cid: [r.topic for r in recs] for cid, recs in replies.by_id().items()}
        assert where[ok] == [team] and where[rej] == [team], where
        assert res[ok]["inferq"]["status"] == "succeeded", describe(res[ok])
        assert res[ok]["inferq"]["metadata"] == {"t": "1"}
        assert res[rej]["error"]["code"] == "model_not_found", describe(res[rej])
    finally:
        replies.close()


def test_unwritable_reply_to_falls_back_to_default_replies(make_gateway, stack_env):
    """A reply_to topic Kafka refuses to write (here the internal
    __consumer_offsets; in production, one the broker has no ACL for) must
    neither lose the result nor stop the partition: the result goes to the
    default reply topic (the broker and the worker both say so in their
    code), for a request answered by a worker and for one rejected by the
    broker, and the requests after it are answered. Own broker and worker,
    so that a crash here cannot take the module's other tests with it."""
    g = make_gateway(deployments={"fake-chat": deployment(stack_env.fake_url, "fake-chat")},
                     aliases={"chat-default": ["fake-chat"]})
    g.start_worker()
    tag = unique("rtfb-")
    replies = ReplyCollector(g.env.bootstrap, g.replies, watch=g)
    prod = Produce(g.env.bootstrap)
    try:
        routed = f"{tag}-internal-routed"
        prod.send(g.requests, chat(routed, "x", reply_to="__consumer_offsets"), key=tag)
        rejected = f"{tag}-internal-rejected"
        prod.send(g.requests, chat(rejected, "x", model="no-such-model",
                                   reply_to="__consumer_offsets"), key=tag)
        after = f"{tag}-after"
        prod.send(g.requests, chat(after, "after"), key=tag)
        prod.flush()
        res = replies.results([routed, rejected, after], timeout=30)
        assert res[routed]["inferq"]["status"] == "succeeded", describe(res[routed])
        assert res[rejected]["error"]["code"] == "model_not_found", describe(res[rejected])
        assert res[after]["inferq"]["status"] == "succeeded", describe(res[after])
    finally:
        replies.close()


def test_result_lines_follow_the_wire_contract(gw):
    """Shape of result lines and their headers, as docs/wire-contract.md
    sections 3.1 and 4 define them, for a succeeded and a rejected request.
    All deviations are collected and reported together."""
    tag = unique("shape-")
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    prod = Produce(gw.env.bootstrap)
    trace = secrets.token_hex(16)
    tp = f"00-{trace}-{secrets.token_hex(8)}-01"
    try:
        ok, rej = f"{tag}-ok", f"{tag}-rejected"
        prod.send(gw.requests, chat(ok, "shape"), key=ok, headers=[("traceparent", tp.encode())])
        prod.send(gw.requests, chat(rej, "shape", model="no-such-model"), key=rej)
        prod.flush()
        res = replies.results([ok, rej], timeout=60)
        recs = replies.by_id()
        problems = []

        def check(cond, what):
            if not cond:
                problems.append(what)

        for cid in (ok, rej):
            r = res[cid]
            ext = r.get("inferq", {})
            check(set(r) >= {"id", "custom_id", "response", "error", "inferq"}, f"{cid}: keys {sorted(r)}")
            check(re.fullmatch(r"ifq_[0-9a-f]{24}", r.get("id", "")), f"{cid}: id {r.get('id')!r}")
            check(re.fullmatch(r"[0-9a-f]{32}", ext.get("trace_id", "")), f"{cid}: trace_id")
            check(ext.get("model_requested"), f"{cid}: inferq.model_requested missing")
            check(ext.get("metadata") == {}, f"{cid}: inferq.metadata is {ext.get('metadata', '<absent>')!r}, "
                                             "contract: {} when the request had none")
            check(isinstance(ext.get("attempts"), list), f"{cid}: inferq.attempts not a list")
            check(isinstance(ext.get("usage"), dict), f"{cid}: inferq.usage absent")
            check(isinstance(ext.get("cost_usd"), (int, float)), f"{cid}: inferq.cost_usd absent")
            check(isinstance(ext.get("timings_ms"), dict), f"{cid}: inferq.timings_ms absent")
            h = recs[cid][0]
            check(h.header("inferq-id") == r.get("id"), f"{cid}: inferq-id header {h.header('inferq-id')!r}")
            check((h.header("content-type") or "").startswith("application/json"),
                  f"{cid}: content-type header {h.header('content-type')!r}")
            check(ext.get("trace_id", "-") in (h.header("traceparent") or ""),
                  f"{cid}: traceparent header does not carry the trace id")

        r = res[ok]
        check(r["inferq"].get("deployment") == "fake-chat", "succeeded: inferq.deployment")
        check(r["inferq"].get("trace_id") == trace, "the client's traceparent trace id was not continued")
        for a in r["inferq"].get("attempts", []):
            check({"deployment", "status_code", "latency_ms"} <= set(a),
                  f"attempt keys {sorted(a)}, contract: deployment, status_code, latency_ms")
        r = res[rej]
        check(r["inferq"].get("status") == "rejected" and r["inferq"].get("attempts") == [],
              "rejected: status/attempts")
        check(r["inferq"].get("deployment", "<absent>") is None,
              f"rejected: inferq.deployment is {r['inferq'].get('deployment', '<absent>')!r}, contract: null")
        assert not problems, "result lines deviate from docs/wire-contract.md:\n  " + "\n  ".join(problems)
    finally:
        replies.close()


def test_null_prompt_means_absent(gw):
    """Wire contract 2.1: "null for an optional field means the same as
    leaving it out". A chat request without body.messages and with
    "prompt": null is invalid (invalid_request naming messages), exactly as
    without the prompt field; it must not be routed to a model."""
    tag = unique("pnull-")
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    prod = Produce(gw.env.bootstrap)
    try:
        ids = []
        for suffix, extra in (("absent", {}), ("null", {"prompt": None})):
            r = chat(f"{tag}-{suffix}", "x", **extra)
            del r["body"]["messages"]
            ids.append(r["custom_id"])
            prod.send(gw.requests, r, key=r["custom_id"])
        prod.flush()
        res = replies.results(ids, timeout=60)
        for cid in ids:
            r = res[cid]
            assert r["error"] and r["error"]["code"] == "invalid_request", f"{cid}: {describe(r)}"
            assert "messages" in r["error"]["message"], describe(r)
            assert r["inferq"]["status"] == "rejected", describe(r)
    finally:
        replies.close()
