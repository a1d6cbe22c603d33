"""
otlp_synth - synthetic spans for the tests of the span readers (`inferq
trace`, the dashboard's waterfall): OTLP/JSON ExportTraceServiceRequest
messages in the shape docs/dashboard.md describes, keyed by the trace id,
for a request that the gateway really processed (so its Redis state, with
trace_id and received_ms, exists).
"""
from __future__ import annotations

import json

import redis

from ifq_e2e import Produce


def request_state(redis_url: str, prefix: str, custom_id: str) -> dict:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return r.hgetall(f"{prefix}:req:{custom_id}")
    finally:
        r.close()


def _value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def span(trace_id: str, span_id: str, parent: str | None, name: str, t0_ns: int,
         start_ms: float, end_ms: float, attrs: dict | None = None, error: str = "") -> dict:
    s = {"traceId": trace_id, "spanId": span_id, "name": name, "kind": 1,
         "startTimeUnixNano": str(t0_ns + int(start_ms * 1e6)),
         "endTimeUnixNano": str(t0_ns + int(end_ms * 1e6)),
         "attributes": [{"key": k, "value": _value(v)} for k, v in (attrs or {}).items()],
         "status": {"code": 2, "message": error} if error else {"code": 1}}
    if parent:
        s["parentSpanId"] = parent
    return s


def message(service: str, spans: list[dict]) -> bytes:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "inferq"}, "spans": spans}]}]}).encode()


def request_spans(state: dict, custom_id: str, deployment: str = "fake-chat") -> dict:
    """{service: [spans]} for one request: a broker hop (receive, guardrails,
    route) and a worker hop (a failed attempt, a good attempt with its
    provider call), timed from the request's received_ms."""
    tid = state["trace_id"]
    t0 = int(state["received_ms"]) * 1_000_000
    c = {"inferq.custom_id": custom_id}
    return {
        "inferq-broker": [
            span(tid, "b000000000000001", None, "broker.request", t0, 0, 40, c),
            span(tid, "b000000000000002", "b000000000000001", "guardrails.input", t0, 4, 9,
                 {**c, "inferq.guardrail.findings": ["EMAIL_ADDRESS:redact"]}),
            span(tid, "b000000000000003", "b000000000000001", "route", t0, 10, 12,
                 {**c, "inferq.deployment": deployment}),
        ],
        "inferq-worker": [
            span(tid, "c000000000000001", "b000000000000001", "worker.attempt", t0, 60, 80,
                 {**c, "inferq.attempt": 1, "error.type": "503"}, error="upstream 503"),
            span(tid, "c000000000000002", "b000000000000001", "worker.attempt", t0, 90, 150,
                 {**c, "inferq.attempt": 2}),
            span(tid, "c000000000000003", "c000000000000002", f"chat {deployment}", t0, 95, 148,
                 {**c, "inferq.deployment": deployment, "http.response.status_code": 200,
                  "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 9,
                  "gen_ai.response.finish_reasons": ["stop"]}),
        ],
    }


def produce_spans(bootstrap: str, topic: str, trace_id: str, by_service: dict,
                  noise: bool = True):
    """One message per service hop, keyed by the trace id; with noise, also a
    malformed message under the same key and a message of another trace."""
    p = Produce(bootstrap)
    for service, spans in by_service.items():
        p.send(topic, message(service, spans), key=trace_id)
    if noise:
        p.send(topic, b"{not otlp", key=trace_id)
        other = "f" * 32
        p.send(topic, message("other", [span(other, "d000000000000001", None, "other", 0, 0, 1)]),
               key=other)
    p.flush()
    assert not p.errors, p.errors
