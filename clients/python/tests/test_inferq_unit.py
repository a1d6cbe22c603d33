"""
Unit tests of the inferq Python package that need no Kafka: the shared
wire-contract vectors (schemas/vectors) decoded and re-encoded byte for
byte, truncation and trailing bytes refused, the typed classes.

    python3 -m pytest -q clients/python/tests

tests/e2e/test_python_client.py runs these too.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# Test the checkout's code, not an older installed copy.
SRC = Path(__file__).resolve().parents[1] / "src"
if (SRC / "inferq").is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from inferq import (DecodeError, EncodeError, Request, Result, ResultError, codec,  # noqa: E402
                    decode_request, decode_result, encode_request, encode_result)

VECTORS = ROOT / "schemas" / "vectors"


def _cases(kind=None):
    if not (VECTORS / "manifest.json").is_file():
        return []
    cases = json.loads((VECTORS / "manifest.json").read_text())["cases"]
    return [c for c in cases if kind is None or c["kind"] == kind]


def _load(case):
    raw = (VECTORS / case["avro"]).read_bytes()
    js = json.loads((VECTORS / case["json"]).read_text(encoding="utf-8"))
    return raw, js


needs_vectors = pytest.mark.skipif(not _cases(),
                                   reason="schemas/vectors not found (not a checkout)")


# ------------------------------------------------------------------ vectors --


@needs_vectors
def test_manifest_fingerprints_match_the_package():
    m = json.loads((VECTORS / "manifest.json").read_text())
    assert m["schemas"]["request"]["fingerprint_le_hex"] == codec.REQUEST_FINGERPRINT.hex()
    assert m["schemas"]["result"]["fingerprint_le_hex"] == codec.RESULT_FINGERPRINT.hex()
    assert len(_cases("request")) >= 6 and len(_cases("result")) >= 4


@needs_vectors
def test_packaged_schemas_are_the_repository_schemas():
    for kind in ("request", "result"):
        repo = json.loads((ROOT / "schemas" / f"{kind}.avsc").read_text())
        assert codec.schema_json(kind) == repo, \
            f"clients/python/src/inferq/schemas/{kind}.avsc differs from schemas/{kind}.avsc"


@needs_vectors
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_vector_avro_decodes_to_its_json(case):
    raw, js = _load(case)
    assert len(raw) == case["avro_size"]
    if case["kind"] == "request":
        assert codec.request_dict_from_avro(raw) == js
        assert decode_request(raw).to_dict() == js
    else:
        assert codec.result_dict_from_avro(raw) == js
        r = decode_result(raw)
        assert r.custom_id == js["custom_id"] and r.raw == js


@needs_vectors
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_vector_json_encodes_to_the_exact_avro_bytes(case):
    raw, js = _load(case)
    if case["kind"] == "request":
        assert encode_request(js, "avro") == raw
        assert encode_request(Request.from_dict(js), "avro") == raw
    else:
        assert encode_result(js, "avro") == raw
        assert encode_result(Result.from_dict(js), "avro") == raw


@needs_vectors
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_vector_json_encoding_is_compact_and_round_trips(case):
    raw, js = _load(case)
    want = json.dumps(js, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if case["kind"] == "request":
        out = encode_request(js, "json")
        assert out == want
        assert decode_request(out).to_dict() == js
        # the Avro and JSON encodings of one request decode to the same request
        assert decode_request(out) == decode_request(raw)
    else:
        out = encode_result(js, "json")
        assert out == want
        assert decode_result(out).raw == js == decode_result(raw).raw


@needs_vectors
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_vector_every_prefix_and_trailing_bytes_refused(case):
    raw, _ = _load(case)
    read = (codec.request_dict_from_avro if case["kind"] == "request"
            else codec.result_dict_from_avro)
    for n in range(len(raw)):
        with pytest.raises(DecodeError):
            read(raw[:n])
    with pytest.raises(DecodeError, match="after the Avro datum"):
        read(raw + b"\x00")


@needs_vectors
def test_wrong_fingerprint_and_kind_refused():
    raw, _ = _load(_cases("request")[0])
    res, _ = _load(_cases("result")[0])
    with pytest.raises(DecodeError, match="unknown schema fingerprint 0x"):
        codec.request_dict_from_avro(raw[:2] + b"\x00" * 8 + raw[10:])
    with pytest.raises(DecodeError, match="fingerprint"):
        codec.request_dict_from_avro(res)  # a result is not a request
    with pytest.raises(DecodeError):
        decode_result(b"\x00\x00\x00\x00\x07" + raw[10:])  # Confluent framing: not ours


def test_detect_and_undecodable_bytes():
    assert codec.detect(b" \r\n\t{}") == "json"
    assert codec.detect(b"\xc3\x01abc") == "avro"
    assert codec.detect(b"") is None and codec.detect(b"[1]") is None
    for bad in (b"", b"[]", b"{not json", b"\xff\xfe", b"\xc3\x01"):
        with pytest.raises(DecodeError):
            decode_result(bad)
    with pytest.raises(DecodeError, match="custom_id"):
        decode_result(b'{"id": "x"}')


def test_avro_json_text_field_must_be_an_object():
    # hand-made datum whose body is the JSON text "[1]"
    import io

    import fastavro
    out = io.BytesIO()
    out.write(codec.SINGLE_OBJECT_MARKER + codec.REQUEST_FINGERPRINT)
    fastavro.schemaless_writer(out, codec._schema("request"), {
        "custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": "[1]",
        "reply_to": None, "priority": None, "deadline_ms": None, "metadata": None, "prompt": None})
    with pytest.raises(DecodeError, match="body is not a JSON object"):
        codec.request_dict_from_avro(out.getvalue())


# ----------------------------------------------------------------- requests --


def test_request_chat_builds_the_contract_dict():
    r = Request.chat("chat-default", [{"role": "user", "content": "Hi"}], custom_id="req-1",
                     max_tokens=64, metadata={"k": "v"}, priority="high")
    assert r.model == "chat-default" and r.messages == [{"role": "user", "content": "Hi"}]
    assert r.to_dict() == {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions",
                           "body": {"model": "chat-default",
                                    "messages": [{"role": "user", "content": "Hi"}],
                                    "max_tokens": 64},
                           "priority": "high", "metadata": {"k": "v"}}
    assert list(r.to_dict()) == ["custom_id", "method", "url", "body", "priority", "metadata"]


@needs_vectors
def test_request_chat_equals_the_minimal_vector():
    raw, js = _load(next(c for c in _cases("request") if c["name"] == "request_minimal_chat"))
    r = Request.chat("chat-default", [{"role": "user", "content": "Hi"}], custom_id="req-1",
                     max_tokens=64)
    assert encode_request(r, "avro") == raw


def test_request_other_constructors_and_deadline():
    e = Request.embeddings("embed-default", ["a", "b"])
    assert e.url == "/v1/embeddings" and e.body == {"model": "embed-default", "input": ["a", "b"]}
    assert e.custom_id.startswith("py-") and e.custom_id != Request.embeddings("m", "x").custom_id
    c = Request.completions("m", "Say hi", max_tokens=5)
    assert c.url == "/v1/completions" and c.body["prompt"] == "Say hi"
    before = int(time.time() * 1000)
    d = Request.chat("m", [], deadline_in=2.0)
    assert before + 1900 <= d.deadline_ms <= int(time.time() * 1000) + 2100
    with pytest.raises(ValueError):
        Request.chat("m", [], deadline_in=1, deadline_ms=5)


def test_request_from_dict_rules():
    base = {"custom_id": "x", "url": "/v1/chat/completions", "body": {"model": "m"}}
    r = Request.from_dict({**base, "reply_to": None, "metadata": None})
    assert r.method == "POST" and r.reply_to is None
    assert r.to_dict() == {**base, "method": "POST"} and "reply_to" not in r.to_dict()
    with pytest.raises(DecodeError, match="outside the inferq contract: extra"):
        Request.from_dict({**base, "extra": 1})
    for cid in (None, "", 7, "a" * 513, "a\0b"):
        with pytest.raises(DecodeError):
            Request.from_dict({**base, "custom_id": cid})
    assert Request.from_dict({**base, "custom_id": "é" * 256}).custom_id  # 512 bytes is fine
    with pytest.raises(DecodeError, match="body"):
        Request.from_dict({**base, "body": "text"})
    with pytest.raises(DecodeError):
        Request.from_dict(["not", "an", "object"])


def test_avro_encoder_refuses_what_the_schema_cannot_carry():
    r = Request.chat("m", [{"role": "user", "content": "x"}], custom_id="a")
    with pytest.raises(EncodeError, match="metadata"):
        encode_request(Request(**{**r.__dict__, "metadata": {"n": 1}}), "avro")
    with pytest.raises(EncodeError, match="deadline_ms"):
        encode_request(Request(**{**r.__dict__, "deadline_ms": "soon"}), "avro")
    with pytest.raises(EncodeError, match="prompt"):
        encode_request(Request(**{**r.__dict__, "prompt": ["x"]}), "avro")
    with pytest.raises(EncodeError):
        encode_request(Request(**{**r.__dict__, "body": {"x": float("nan")}}), "json")
    with pytest.raises(ValueError):
        encode_request(r, "xml")


def test_avro_and_json_round_trip_of_a_generated_request():
    r = Request.chat("chat-default", [{"role": "user", "content": "Grüße 🚀 \"q\"\n"}],
                     custom_id="id-é", metadata={"ä": "ö"}, priority="low", deadline_ms=1 << 40,
                     reply_to="t.replies", temperature=0.25)
    r.prompt = {"id": "p", "version": 2, "variables": {"a": [1, 2.5, None, True]}}
    for enc in ("avro", "json"):
        assert decode_request(encode_request(r, enc)) == r


# ------------------------------------------------------------------ results --


@needs_vectors
def test_result_typed_views():
    _, ok = _load(next(c for c in _cases("result") if c["name"] == "result_success"))
    r = Result.from_dict(ok)
    assert r.ok and r.status == "succeeded" and r.error is None
    assert r.content == "Hello! How can I help?"
    assert r.response.status_code == 200 and r.response.request_id == "req_7f3c2a9d"
    assert r.usage.total_tokens == 16 and r.usage.prompt_tokens == 9
    assert r.cost_usd == 0.0 and r.timings_ms["total"] == 420
    assert r.deployment == "llama-8b-local" and r.model_requested == "chat-default"
    assert r.attempts[0]["status_code"] == 200 and r.metadata == {"ticket": "T-1001"}
    assert r.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert r.raise_for_error() is r

    _, bad = _load(next(c for c in _cases("result") if c["name"] == "result_error"))
    e = Result.from_dict(bad)
    assert not e.ok and e.status == "rejected" and e.response is None and e.content is None
    assert e.error.code == "model_not_found"
    with pytest.raises(ResultError, match="model_not_found") as ei:
        e.raise_for_error()
    assert ei.value.code == "model_not_found" and ei.value.result is e

    _, emb = _load(next(c for c in _cases("result") if c["name"] == "result_embeddings"))
    vecs = Result.from_dict(emb).embeddings
    assert isinstance(vecs, list) and len(vecs) == len(emb["response"]["body"]["data"])


def test_result_is_lenient_with_unknown_and_missing_keys():
    r = Result.from_dict({"custom_id": "c", "response": None,
                          "error": {"code": "x", "message": "y"},
                          "inferq": {"status": "failed", "new_key": {"a": 1}}})
    assert r.status == "failed" and r.usage.total_tokens == 0 and r.raw["inferq"]["new_key"]
    ce = Result.client_error("c", "client_timeout", "no result")
    assert ce.status == "failed" and ce.error.code == "client_timeout" and not ce.ok


# ------------------------------------------------------------------- client --


def test_client_start_fails_cleanly_without_kafka():
    import threading

    from inferq import Client
    before = threading.active_count()
    for kw in ({}, {"reply_topic": "shared.replies"}):
        t0 = time.monotonic()
        with pytest.raises(Exception, match="(?i)timed out|transport|controller"):
            Client("127.0.0.1:1", start_timeout=2, **kw)
        assert time.monotonic() - t0 < 20
    assert threading.active_count() == before, "a failed start left a thread running"
    with pytest.raises(ValueError, match="encoding"):
        Client("127.0.0.1:1", encoding="xml")
