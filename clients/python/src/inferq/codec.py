"""Bytes on the wire: JSON and Avro single-object encoding (docs/wire-contract.md 6).

``encode_request(req, "avro")`` writes ``0xC3 0x01``, the 8-byte CRC-64-AVRO
fingerprint of ``io.inferq.v1.Request`` (little-endian) and the Avro binary
datum; free-form JSON (body, prompt) travels as compact JSON text. The
output is byte-identical to the shared vectors in ``schemas/vectors``.
Decoders detect the encoding from the first bytes and refuse truncated or
trailing bytes, unknown fingerprints and JSON text that is not an object.
"""
from __future__ import annotations

import io
import json
from importlib import resources
from typing import Any, Dict, Mapping, Optional, Union

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from .errors import DecodeError, EncodeError
from .types import REQUEST_FIELDS, Request, Result

JSON = "json"
AVRO = "avro"
ENCODINGS = (JSON, AVRO)

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_AVRO_REQUEST = "application/vnd.inferq.request.v1+avro"
CONTENT_TYPE_AVRO_RESULT = "application/vnd.inferq.result.v1+avro"

SINGLE_OBJECT_MARKER = b"\xc3\x01"
#: Fingerprints as they appear on the wire (little-endian CRC-64-AVRO).
REQUEST_FINGERPRINT = bytes.fromhex("5aac6f8842a03294")
RESULT_FINGERPRINT = bytes.fromhex("d343bcfe24cf484f")

_schemas: Dict[str, Any] = {}


def _schema(kind: str) -> Any:
    """The parsed schema ("request" or "result"), loaded once from the
    package's copy of schemas/*.avsc and checked against the fingerprint."""
    s = _schemas.get(kind)
    if s is None:
        text = resources.files("inferq").joinpath("schemas", f"{kind}.avsc").read_text("utf-8")
        s = fastavro.parse_schema(json.loads(text))
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(s), "CRC-64-AVRO"))
        want = REQUEST_FINGERPRINT if kind == "request" else RESULT_FINGERPRINT
        if fp != want:  # the packaged schema does not match this code
            raise RuntimeError(f"inferq: {kind}.avsc has fingerprint {fp.hex()}, "
                               f"expected {want.hex()}")
        _schemas[kind] = s
    return s


def schema_json(kind: str) -> Dict[str, Any]:
    """The Avro schema ("request" or "result") as a dict."""
    text = resources.files("inferq").joinpath("schemas", f"{kind}.avsc").read_text("utf-8")
    d: Dict[str, Any] = json.loads(text)
    return d


def compact_json(value: Any) -> str:
    """JSON text as inferq writers produce it: no whitespace, keys in the
    order given, UTF-8 not \\u-escaped."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _object_text(value: Any, what: str) -> str:
    if not isinstance(value, dict):
        raise EncodeError(f"{what} must be a JSON object, got {type(value).__name__}")
    try:
        return compact_json(value)
    except (TypeError, ValueError) as e:
        raise EncodeError(f"{what} is not JSON-serialisable: {e}") from None


def _parse_object(text: str, what: str) -> Dict[str, Any]:
    try:
        v = json.loads(text)
    except ValueError as e:
        raise DecodeError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(v, dict):
        raise DecodeError(f"{what} is not a JSON object")
    return v


class _StrictReader(io.BytesIO):
    """A BytesIO whose short reads raise: fastavro would otherwise accept a
    truncated string as a shorter one."""

    def read(self, n: Optional[int] = -1) -> bytes:
        b = super().read(n)
        if n is not None and n >= 0 and len(b) != n:
            raise EOFError(f"truncated datum at byte {self.tell()}")
        return b


def _avro_read(data: bytes, kind: str) -> Dict[str, Any]:
    want = REQUEST_FINGERPRINT if kind == "request" else RESULT_FINGERPRINT
    if len(data) < 10:
        raise DecodeError(f"truncated Avro header ({len(data)} bytes)")
    if data[:2] != SINGLE_OBJECT_MARKER:
        raise DecodeError("not Avro single-object encoding (no 0xC3 0x01 marker)")
    if data[2:10] != want:
        fp = int.from_bytes(data[2:10], "little")
        raise DecodeError(f"unknown schema fingerprint 0x{fp:016x} for a {kind}")
    r = _StrictReader(data[10:])
    try:
        rec = fastavro.schemaless_reader(r, _schema(kind), None)
    except DecodeError:
        raise
    except Exception as e:  # EOFError, struct/unicode errors, bad unions
        raise DecodeError(f"undecodable Avro {kind}: {e}") from None
    if r.tell() != len(data) - 10:
        raise DecodeError(f"{len(data) - 10 - r.tell()} byte(s) after the Avro datum")
    if not isinstance(rec, dict):
        raise DecodeError(f"undecodable Avro {kind}")
    return rec


def _avro_write(record: Dict[str, Any], kind: str) -> bytes:
    out = io.BytesIO()
    out.write(SINGLE_OBJECT_MARKER)
    out.write(REQUEST_FINGERPRINT if kind == "request" else RESULT_FINGERPRINT)
    try:
        fastavro.schemaless_writer(out, _schema(kind), record)
    except (TypeError, ValueError, AttributeError) as e:
        raise EncodeError(f"cannot encode the {kind} in Avro: {e}") from None
    return out.getvalue()


def detect(data: bytes) -> Optional[str]:
    """"json", "avro" (single-object) or None, from the first bytes (6.1)."""
    if data[:2] == SINGLE_OBJECT_MARKER:
        return AVRO
    s = data.lstrip(b" \t\r\n")
    return JSON if s[:1] == b"{" else None


def _json_object(data: bytes, kind: str) -> Dict[str, Any]:
    try:
        v = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodeError(f"{kind} is not valid JSON: {e}") from None
    if not isinstance(v, dict):
        raise DecodeError(f"{kind} is not a JSON object")
    return v


# ---------------------------------------------------------------- requests --


def encode_request(req: Union[Request, Mapping[str, Any]], encoding: str = JSON) -> bytes:
    """The message bytes of a request (a Request or a contract dict)."""
    if not isinstance(req, Request):
        req = Request.from_dict(req)
    if encoding == JSON:
        try:
            return compact_json(req.to_dict()).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise EncodeError(f"request is not JSON-serialisable: {e}") from None
    if encoding != AVRO:
        raise ValueError(f"encoding must be 'json' or 'avro', got {encoding!r}")
    if req.metadata is not None:
        if not isinstance(req.metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in req.metadata.items()):
            raise EncodeError("metadata must map strings to strings")
    for k in ("method", "url"):
        if not isinstance(getattr(req, k), str):
            raise EncodeError(f"{k} must be a string in Avro")
    for k in ("reply_to", "priority"):
        if getattr(req, k) is not None and not isinstance(getattr(req, k), str):
            raise EncodeError(f"{k} must be a string")
    if req.deadline_ms is not None and (isinstance(req.deadline_ms, bool) or
                                        not isinstance(req.deadline_ms, int)):
        raise EncodeError("deadline_ms must be an integer")
    rec = {
        "custom_id": req.custom_id, "method": req.method, "url": req.url,
        "body": _object_text(req.body, "body"),
        "reply_to": req.reply_to, "priority": req.priority, "deadline_ms": req.deadline_ms,
        "metadata": req.metadata,
        "prompt": None if req.prompt is None else _object_text(req.prompt, "prompt"),
    }
    return _avro_write(rec, "request")


def request_dict_from_avro(data: bytes) -> Dict[str, Any]:
    """The JSON form of an Avro request: null union branches left out, body
    and prompt parsed."""
    rec = _avro_read(data, "request")
    d: Dict[str, Any] = {}
    for k in REQUEST_FIELDS:
        v = rec.get(k)
        if v is None:
            continue
        if k in ("body", "prompt"):
            v = _parse_object(v, k)
        d[k] = v
    return d


def decode_request(data: bytes) -> Request:
    """A Request from message bytes (JSON or Avro, detected)."""
    enc = detect(data)
    if enc == AVRO:
        return Request.from_dict(request_dict_from_avro(data))
    if enc == JSON:
        return Request.from_dict(_json_object(data, "request"))
    raise DecodeError("neither JSON nor Avro single-object encoding")


# ----------------------------------------------------------------- results --


def encode_result(res: Union[Result, Mapping[str, Any]], encoding: str = JSON) -> bytes:
    """The message bytes of a result (a Result or a contract dict)."""
    d = res.to_dict() if isinstance(res, Result) else dict(res)
    if encoding == JSON:
        return compact_json(d).encode("utf-8")
    if encoding != AVRO:
        raise ValueError(f"encoding must be 'json' or 'avro', got {encoding!r}")
    resp = d.get("response")
    err = d.get("error")
    rec = {
        "id": d.get("id"), "custom_id": d.get("custom_id"),
        "response": None if resp is None else {
            "status_code": resp.get("status_code"), "request_id": resp.get("request_id"),
            "body": _object_text(resp.get("body"), "response.body")},
        "error": None if err is None else {"code": err.get("code"), "message": err.get("message")},
        "inferq": _object_text(d.get("inferq"), "inferq"),
    }
    return _avro_write(rec, "result")


def result_dict_from_avro(data: bytes) -> Dict[str, Any]:
    """The JSON form of an Avro result: response and error always present
    (null for the null branch), JSON text fields parsed."""
    rec = _avro_read(data, "result")
    resp = rec.get("response")
    if resp is not None:
        resp = {"status_code": resp["status_code"], "request_id": resp["request_id"],
                "body": _parse_object(resp["body"], "response.body")}
    err = rec.get("error")
    if err is not None:
        err = {"code": err["code"], "message": err["message"]}
    return {"id": rec["id"], "custom_id": rec["custom_id"], "response": resp, "error": err,
            "inferq": _parse_object(rec["inferq"], "inferq")}


def decode_result_dict(data: bytes) -> Dict[str, Any]:
    """The result as a dict, from JSON or Avro bytes (detected)."""
    enc = detect(data)
    if enc == AVRO:
        return result_dict_from_avro(data)
    if enc == JSON:
        return _json_object(data, "result")
    raise DecodeError("neither JSON nor Avro single-object encoding")


def decode_result(data: bytes) -> Result:
    """A Result from message bytes (JSON or Avro, detected)."""
    return Result.from_dict(decode_result_dict(data))
