"""
Bad input never stops a partition. Undecodable or uncorrelatable messages go
to the dead-letter topic with their original bytes and headers plus the
inferq-error* headers; decodable but invalid requests get an error result
with a stable code; good requests produced between them, all with the same
key (so all in one partition), are answered.
"""
import json
import time

import pytest

from ifq_e2e import (Produce, ReplyCollector, TopicReader, chat, content_of, deployment,
                     describe, now_ms, unique)

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
    replies = ReplyCollector(gw.env.bootstrap, gw.replies)
    dlq = TopicReader(gw.env.bootstrap, gw.dlq)
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
