"""
Observability on the real stack: spans on <prefix>.traces, /metrics of the
broker and the worker, request logging on <prefix>.logs, JSON log lines.

One gateway (own broker, worker and two fake models: one healthy, one that
answers 503 to everything) gets six requests at once:

  ok         team "loggers" (log_requests, redact policy), a card number in
             the prompt and an e-mail address in the answer, the client's
             own traceparent
  failover   alias fo = [bad, good]: two 503 attempts on bad, then good
  blocked    team "blockers": the card number is blocked by the broker
  expired_b  deadline_ms already passed: expired by the broker
  expired_w  waits on the per-model topic behind a slow request (deployment
             "slow" allows one call at a time) until its deadline passed:
             expired by the worker before any attempt
  unsampled  the client's traceparent says "not sampled": no spans

and the tests assert on what the programs wrote about them. Needs: Kafka,
Redis (the stack), inferq-broker, inferq-worker, inferq-fake-model.
"""
import json
import re
import secrets
import urllib.request

import pytest

from ifq_e2e import (FakeModel, Gateway, Produce, ReplyCollector, TopicReader, chat, deployment,
                     describe, now_ms, serve_teams, unique, wait_until)

CARD = "4111 1111 1111 1111"
EMAIL = "bob.smith@example.com"
MAX_ATTEMPTS = 2
KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}


# ---------------------------------------------------------------------------
# helpers


def metrics(port: int) -> dict:
    """Prometheus text -> {(name, frozenset(labels.items())): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$', line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def metric(ms: dict, name: str, **labels) -> float:
    """Sum of the samples of name whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, ls), v in ms.items() if n == name and want <= set(ls))


def attrs(span) -> dict:
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        if "arrayValue" in v:
            out[a["key"]] = [x.get("stringValue") for x in v["arrayValue"].get("values", [])]
        else:
            (k, val), = v.items()
            out[a["key"]] = int(val) if k == "intValue" else val
    return out


def spans_of(records, trace_id):
    """[(service, span)] of every span message keyed by trace_id."""
    out = []
    for r in records:
        if r.key != trace_id.encode():
            continue
        doc = json.loads(r.value)
        for rs in doc["resourceSpans"]:
            service = {a["key"]: a["value"].get("stringValue")
                       for a in rs["resource"]["attributes"]}["service.name"]
            for ss in rs["scopeSpans"]:
                assert ss["scope"]["name"] == "inferq"
                for s in ss["spans"]:
                    out.append((service, s))
    return out


def messages_of(records, trace_id, service):
    return [r for r in records if r.key == trace_id.encode()
            and json.loads(r.value)["resourceSpans"][0]["resource"]["attributes"][0]["value"]
            ["stringValue"] == service]


def assert_one_tree(spans, client_span=None, what=""):
    """Every span's parent is a span of the same trace, except one root (whose
    parent is the client's span when the client sent a traceparent)."""
    ids = {s["spanId"] for _, s in spans}
    assert len(ids) == len(spans), f"{what}: duplicate span ids"
    roots = [s for _, s in spans if s.get("parentSpanId", "") not in ids]
    assert len(roots) == 1, f"{what}: {len(roots)} roots: {[r['name'] for r in roots]}"
    assert roots[0]["name"] == "broker.request", what
    assert roots[0].get("parentSpanId") == client_span, what
    for _, s in spans:
        assert re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) and re.fullmatch(r"[0-9a-f]{16}",
                                                                           s["spanId"])
        assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 0, s["name"]
    return roots[0]


def named(spans, name):
    return [s for _, s in spans if s["name"] == name]


def attempt_spans(spans):
    return [s for _, s in spans if s["kind"] == KINDS["client"]]


# ---------------------------------------------------------------------------
# the scenario, run once for the module


@pytest.fixture(scope="module")
def fakes(stack_env, workdir):
    ok = FakeModel(stack_env, workdir, "fake-ok", group=__name__)
    bad = FakeModel(stack_env, workdir, "fake-bad", ["--fail-rate", "1"], group=__name__)
    yield ok, bad
    ok.stop()
    bad.stop()


@pytest.fixture(scope="module")
def gw(stack_env, workdir, fakes):
    ok, bad = fakes
    g = Gateway(
        stack_env, workdir / "obs",
        deployments={"m": deployment(ok.base_url, timeout_ms=60000),
                     "bad": deployment(bad.base_url),
                     "good": deployment(ok.base_url),
                     "slow": deployment(ok.base_url, max_inflight=1)},
        aliases={"chat": ["m"], "fo": ["bad", "good"]},
        worker={"max_attempts": MAX_ATTEMPTS},
        group=__name__,
        extra={
            "guardrails": {"policies": {
                "redact": {"detectors": {"CREDIT_CARD": "redact"},
                           "output": {"detectors": {"EMAIL_ADDRESS": "redact"}}},
                "block": {"detectors": {"CREDIT_CARD": "block"}},
            }},
            "teams": {
                "loggers": {"models": ["chat", "fo", "slow"], "guardrail_policy": "redact",
                            "log_requests": True},
                "blockers": {"models": ["chat"], "guardrail_policy": "block"},
            },
            "trace": {"sample_rate": 1.0},
        })
    yield from serve_teams(g, ("loggers", "blockers"))


@pytest.fixture(scope="module")
def run(gw, fakes):
    bport = gw.broker.admin_port
    wport = gw.workers[0].admin_port
    before = {"broker": metrics(bport), "worker": metrics(wport)}
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    traces = TopicReader(gw.env.bootstrap, gw.topic("traces"), watch=gw)
    logs = TopicReader(gw.env.bootstrap, gw.topic("logs"), watch=gw)

    client_trace = secrets.token_hex(16)
    client_span = secrets.token_hex(8)
    unsampled_trace = secrets.token_hex(16)
    cid = {k: unique(f"obs-{k}-") for k in
           ("ok", "failover", "blocked", "expired_b", "expired_w", "unsampled", "slow")}
    loggers, blockers = f"{gw.requests}.loggers", f"{gw.requests}.blockers"
    # First the slow request that holds deployment "slow"'s only slot.
    p = Produce(gw.env.bootstrap)
    p.send(loggers, chat(cid["slow"], "[[fake:latency=4000]] hold the slot", model="slow"),
           key=cid["slow"])
    p.flush()
    wait_until(lambda: fakes[0].stats()["in_flight"] >= 1, 60, "the slow call to start")
    ok_req = chat(cid["ok"], f"[[fake:content=write to {EMAIL} today]] card {CARD}", model="chat")
    ok_req["body"]["temperature"] = 0.5
    sends = [
        (loggers, ok_req,
         [("traceparent", f"00-{client_trace}-{client_span}-01".encode())]),
        (loggers, chat(cid["failover"], "fail over please", model="fo"), None),
        (blockers, chat(cid["blocked"], f"charge {CARD}", model="chat"), None),
        (loggers, chat(cid["expired_b"], "too late", model="chat", deadline_ms=now_ms() - 1000),
         None),
        (loggers, chat(cid["expired_w"], "never called", model="slow",
                       deadline_ms=now_ms() + 1500), None),
        (loggers, chat(cid["unsampled"], "quiet please", model="chat"),
         [("traceparent", f"00-{unsampled_trace}-{secrets.token_hex(8)}-00".encode())]),
    ]
    for topic, req, headers in sends:
        p.send(topic, req, key=req["custom_id"], headers=headers)
    p.flush()
    results = replies.results(list(cid.values()), timeout=90)
    tid = {k: results[c]["inferq"]["trace_id"] for k, c in cid.items()}

    # Span messages expected per request: broker 1 each (none when not
    # sampled), worker one per hop.
    want = {"ok": 1, "failover": 2, "blocked": 0, "expired_b": 0, "expired_w": 1, "unsampled": 0,
            "slow": 1}

    def complete():
        for k, n in want.items():
            if k == "unsampled":
                continue
            if len(messages_of(traces.records, tid[k], "inferq-broker")) < 1:
                return False
            if len(messages_of(traces.records, tid[k], "inferq-worker")) < n:
                return False
        return True

    traces.wait(complete, 60, "the span messages of every request")
    logs.wait(lambda: sum(1 for r in logs.records if r.key and r.key.decode() in
                          (cid["ok"], cid["failover"], cid["expired_w"], cid["slow"],
                           cid["unsampled"])) >= 5, 60,
              "the request log records")
    # Nothing more should come; a short bounded poll shows duplicates, if any.
    for _ in range(5):
        traces.poll(0.2)
        logs.poll(0.1)
    after = {"broker": metrics(bport), "worker": metrics(wport)}
    out = {"cid": cid, "tid": tid, "results": results, "traces": traces.records,
           "logs": logs.records, "before": before, "after": after, "want": want,
           "client_trace": client_trace, "client_span": client_span,
           "unsampled_trace": unsampled_trace}
    replies.close()
    traces.close()
    logs.close()
    return out


# ---------------------------------------------------------------------------
# results (the scenario did what it says)


def test_results_are_as_scripted(run):
    res = run["results"]
    c = run["cid"]
    assert res[c["ok"]]["inferq"]["status"] == "succeeded", describe(res[c["ok"]])
    assert res[c["failover"]]["inferq"]["deployment"] == "good", describe(res[c["failover"]])
    assert res[c["blocked"]]["error"]["code"] == "guardrail_blocked", describe(res[c["blocked"]])
    assert res[c["expired_b"]]["error"]["code"] == "batch_expired"
    assert res[c["expired_w"]]["error"]["code"] == "batch_expired", json.dumps(res[c["expired_w"]])
    assert res[c["expired_w"]]["inferq"]["attempts"] == [], describe(res[c["expired_w"]])
    assert res[c["slow"]]["inferq"]["status"] == "succeeded", describe(res[c["slow"]])
    assert res[c["unsampled"]]["inferq"]["status"] == "succeeded"
    assert run["tid"]["ok"] == run["client_trace"], "the client's trace was not continued"
    assert run["tid"]["unsampled"] == run["unsampled_trace"]


# ---------------------------------------------------------------------------
# traces


def test_every_span_message_is_an_otlp_export_keyed_by_trace(run):
    mine = set(run["tid"].values())
    seen = 0
    for r in run["traces"]:
        doc = json.loads(r.value)
        assert re.fullmatch(rb"[0-9a-f]{32}", r.key), r.key
        rs = doc["resourceSpans"]
        assert len(rs) == 1 and len(rs[0]["scopeSpans"]) == 1
        res_attrs = {a["key"]: a["value"]["stringValue"] for a in rs[0]["resource"]["attributes"]}
        assert res_attrs["service.name"] in ("inferq-broker", "inferq-worker")
        assert res_attrs.get("service.instance.id")
        spans = rs[0]["scopeSpans"][0]["spans"]
        assert spans, "an empty span message"
        in_msg = {s["spanId"] for s in spans}
        for s in spans:
            assert s["traceId"] == r.key.decode()
            assert isinstance(s["kind"], int) and 1 <= s["kind"] <= 5
            assert re.fullmatch(r"\d+", s["startTimeUnixNano"])
            assert s["status"]["code"] in (0, 1, 2)
            # the request's ids are on the message's top spans (whose parent
            # is in another message or none); their children go without
            top = s.get("parentSpanId", "") not in in_msg
            assert ("inferq.custom_id" in attrs(s)) == top, s["name"]
        if r.key.decode() in mine:
            seen += 1
            ids = {attrs(s).get("inferq.custom_id") for s in spans} - {None}
            assert len(ids) == 1, f"one message mixes requests: {ids}"
    assert seen == sum(1 + n for k, n in run["want"].items() if k != "unsampled"), \
        "expected exactly one broker message per request and one worker message per hop"


def test_successful_request_is_one_tree_with_genai_attributes(run):
    tid, cid = run["tid"]["ok"], run["cid"]["ok"]
    spans = spans_of(run["traces"], tid)
    root = assert_one_tree(spans, client_span=run["client_span"], what="ok")
    assert root["status"]["code"] == 1
    ra = attrs(root)
    assert ra["inferq.team"] == "loggers" and ra["inferq.alias"] == "chat"
    assert ra["inferq.deployment"] == "m" and ra["inferq.route.strategy"] == "failover"
    assert ra["inferq.request_id"] == run["results"][cid]["id"]
    tops = [s for _, s in spans if "inferq.custom_id" in attrs(s)]
    assert {s["name"] for s in tops} == {"broker.request", "queue.wait", "worker.request"}
    assert all(attrs(s)["inferq.custom_id"] == cid for s in tops)
    names = {s["name"] for _, s in spans}
    for n in ("broker.decode", "broker.guardrails", "broker.route", "broker.publish",
              "queue.wait", "worker.request", "worker.guardrails", "worker.reply"):
        assert n in names, f"no {n} span in {sorted(names)}"
    g = attrs(named(spans, "broker.guardrails")[0])
    assert g["inferq.guardrail.findings"] >= 1 and "redact" in g["inferq.guardrail.actions"]
    wreq = named(spans, "worker.request")[0]
    assert wreq["parentSpanId"] == root["spanId"] and wreq["kind"] == KINDS["consumer"]
    assert named(spans, "queue.wait")[0]["parentSpanId"] == root["spanId"]

    calls = attempt_spans(spans)
    assert len(calls) == len(run["results"][cid]["inferq"]["attempts"]) == 1
    a = attrs(calls[0])
    assert calls[0]["name"] == "chat fake-chat"
    assert calls[0]["parentSpanId"] == wreq["spanId"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "fake-chat"
    assert a["gen_ai.response.model"]
    assert a["gen_ai.request.max_tokens"] == 16
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["server.address"] == "127.0.0.1" and a["http.response.status_code"] == 200
    assert a["inferq.attempt"] == 1 and a["inferq.deployment"] == "m"
    assert a["inferq.team"] == "loggers"
    assert calls[0]["status"]["code"] == 0 and "error.type" not in a
    assert "inferq.cost_usd" in attrs(wreq)


def test_failover_links_every_attempt_into_the_same_trace(run):
    tid, cid = run["tid"]["failover"], run["cid"]["failover"]
    spans = spans_of(run["traces"], tid)
    assert_one_tree(spans, what="failover")
    att = run["results"][cid]["inferq"]["attempts"]
    calls = attempt_spans(spans)
    assert len(calls) == len(att) == MAX_ATTEMPTS + 1, [s["name"] for s in calls]
    got = sorted((attrs(s)["inferq.deployment"], attrs(s)["inferq.attempt"],
                  attrs(s).get("http.response.status_code")) for s in calls)
    assert got == sorted((a["deployment"], a["attempt"], a.get("status_code")) for a in att)
    for s in calls:
        a = attrs(s)
        if a["inferq.deployment"] == "bad":
            assert s["status"]["code"] == 2 and a["error.type"], a
        else:
            assert s["status"]["code"] == 0 and "error.type" not in a
    hops = named(spans, "worker.request")
    assert len(hops) == 2
    fo = named(spans, "worker.failover")
    assert len(fo) == 1 and attrs(fo[0])["inferq.failover.to"] == "good"
    second = [h for h in hops if attrs(h)["inferq.deployment"] == "good"][0]
    assert second["parentSpanId"] == fo[0]["spanId"], "hop 2 does not hang under the hand-off"


def test_blocked_request_has_error_spans_with_the_reason(run):
    spans = spans_of(run["traces"], run["tid"]["blocked"])
    root = assert_one_tree(spans, what="blocked")
    assert root["status"]["code"] == 2
    assert root["status"]["message"].startswith("guardrail_blocked")
    assert attrs(root)["error.type"] == "guardrail_blocked"
    g = named(spans, "broker.guardrails")[0]
    assert g["status"]["code"] == 2 and "CREDIT_CARD" in g["status"]["message"]
    assert attrs(g)["inferq.guardrail.blocked"] is True
    assert not [s for svc, s in spans if svc == "inferq-worker"]
    assert CARD not in json.dumps([s for _, s in spans])


def test_expired_requests_have_error_spans(run):
    spans = spans_of(run["traces"], run["tid"]["expired_b"])
    root = assert_one_tree(spans, what="expired_b")
    assert root["status"]["code"] == 2 and "batch_expired" in root["status"]["message"]
    assert attrs(root)["inferq.outcome"] == "expired"

    spans = spans_of(run["traces"], run["tid"]["expired_w"])
    assert_one_tree(spans, what="expired_w")
    wreq = named(spans, "worker.request")[0]
    assert wreq["status"]["code"] == 2 and "batch_expired" in wreq["status"]["message"]
    assert attrs(wreq)["error.type"] == "batch_expired"
    assert not attempt_spans(spans), "an expired request must not call the model"
    assert named(spans, "queue.wait") and named(spans, "worker.reply")


def test_unsampled_trace_writes_no_spans(run):
    assert not [r for r in run["traces"] if r.key == run["unsampled_trace"].encode()]


# ---------------------------------------------------------------------------
# metrics


def delta(run, side, name, **labels):
    return metric(run["after"][side], name, **labels) - metric(run["before"][side], name, **labels)


def test_broker_metrics_count_the_outcomes(run):
    assert delta(run, "broker", "inferq_requests_total", status="routed", team="loggers") == 5
    assert delta(run, "broker", "inferq_requests_total", status="rejected",
                 code="guardrail_blocked", team="blockers", alias="chat") == 1
    assert delta(run, "broker", "inferq_requests_total", status="expired",
                 code="batch_expired") == 1
    assert delta(run, "broker", "inferq_guardrail_findings_total", stage="input",
                 action="block") == 1
    assert delta(run, "broker", "inferq_guardrail_findings_total", stage="input",
                 action="redact") == 1
    assert delta(run, "broker", "inferq_routing_decisions_total", alias="fo",
                 strategy="failover", deployment="bad") == 1
    # the old names still work
    assert delta(run, "broker", "inferq_broker_requests_total", outcome="routed") == 5
    assert delta(run, "broker", "inferq_trace_messages_total") == 6


def assert_histogram(ms, name, **labels):
    buckets = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in ms.items()
                      if n == name + "_bucket" and set(labels.items()) <= set(ls)),
                     key=lambda x: x[0])
    assert buckets and buckets[-1][0] == float("inf"), f"{name}: no +Inf bucket"
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"{name}: buckets not cumulative: {buckets}"
    assert counts[-1] == metric(ms, name + "_count", **labels)
    return counts[-1]


def test_worker_metrics_count_attempts_failovers_and_latency(run):
    assert delta(run, "worker", "inferq_attempts_total", deployment="bad") == MAX_ATTEMPTS
    assert delta(run, "worker", "inferq_retries_total", deployment="bad") == MAX_ATTEMPTS - 1
    assert delta(run, "worker", "inferq_failovers_total", **{"from": "bad", "to": "good"}) == 1
    assert delta(run, "worker", "inferq_requests_total", status="succeeded",
                 team="loggers") == 4
    assert delta(run, "worker", "inferq_requests_total", status="expired",
                 code="batch_expired", deployment="slow") == 1
    assert delta(run, "worker", "inferq_guardrail_findings_total", stage="output",
                 action="redact") == 1
    assert delta(run, "worker", "inferq_tokens_total", team="loggers", direction="input") > 0
    after = run["after"]["worker"]
    assert assert_histogram(after, "inferq_model_latency_seconds", deployment="bad") >= MAX_ATTEMPTS
    assert assert_histogram(after, "inferq_queue_wait_seconds", deployment="m") >= 2
    assert assert_histogram(after, "inferq_request_duration_seconds", deployment="good") >= 1
    assert assert_histogram(after, "inferq_gateway_overhead_seconds", deployment="m") >= 2
    # expired_w waited about 4 s behind the slow call: its queue wait shows it
    slow_wait = [(float(dict(ls)["le"]), v) for (n, ls), v in after.items()
                 if n == "inferq_queue_wait_seconds_bucket" and ("deployment", "slow") in ls]
    assert dict(slow_wait)[1.0] < dict(slow_wait)[float("inf")], slow_wait
    assert delta(run, "worker", "inferq_model_latency_seconds_count") == \
        delta(run, "worker", "inferq_attempts_total")
    circuits = {dict(ls)["deployment"]: v for (n, ls), v in after.items()
                if n == "inferq_circuit_state"}
    assert circuits.get("good") == 0 and circuits.get("m") == 0, circuits
    assert any(n == "inferq_consumer_lag" for n, _ in after), "no consumer lag gauge"
    assert any(n == "inferq_consumer_lag" for n, _ in run["after"]["broker"])


# ---------------------------------------------------------------------------
# request logs and log lines


def test_request_log_is_redacted_and_only_for_opted_in_teams(run):
    cid = run["cid"]
    mine = {r.key.decode(): r for r in run["logs"] if r.key}
    assert cid["blocked"] not in mine, "team blockers does not log requests"
    rec = json.loads(mine[cid["ok"]].value)
    assert rec["team"] == "loggers" and rec["status"] == "succeeded"
    assert rec["trace_id"] == run["tid"]["ok"]
    text = json.dumps(rec)
    assert CARD not in text and "<CREDIT_CARD>" in json.dumps(rec["request"]["body"])
    # The e-mail address is in the prompt (as the fake's script, and the
    # input policy does not cover it) but must not be in the logged answer.
    answer = rec["result"]["response"]["body"]["choices"][0]["message"]["content"]
    assert EMAIL not in json.dumps(rec["result"]) and "<EMAIL_ADDRESS>" in answer
    fo = json.loads(mine[cid["failover"]].value)
    assert fo["result"]["inferq"]["deployment"] == "good"
    ew = json.loads(mine[cid["expired_w"]].value)
    assert ew["status"] == "expired" and ew["result"]["error"]["code"] == "batch_expired"
    # exactly one record per request
    keys = [r.key.decode() for r in run["logs"] if r.key]
    assert keys.count(cid["ok"]) == 1 and keys.count(cid["failover"]) == 1
    # an unsampled request is still logged, with its trace id
    assert cid["unsampled"] in mine, "the unsampled request was not logged"
    assert json.loads(mine[cid["unsampled"]].value)["trace_id"] == run["unsampled_trace"]


def test_no_secret_or_pii_in_traces_and_logs(run, stack_env):
    key = stack_env.fake_api_key
    assert key
    for r in [*run["traces"], *run["logs"]]:
        assert key.encode() not in r.value, f"the provider key leaked into {r.topic}"
        assert CARD.encode() not in r.value, f"the card number leaked into {r.topic}"
    for r in run["traces"]:
        assert EMAIL.encode() not in r.value, "the e-mail address leaked into a span"
    for r in run["logs"]:
        assert EMAIL not in json.dumps(json.loads(r.value)["result"]), \
            "the answer's e-mail address was logged unredacted"


def test_log_lines_are_json_with_trace_ids(run, gw, stack_env):
    lines = []
    for p in [gw.broker, *gw.workers]:
        for line in p.log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue  # sanitizer or librdkafka output
            j = json.loads(line)
            for k in ("time", "level", "service", "event"):
                assert k in j, f"{p.name}: log line without {k}: {line}"
            assert stack_env.fake_api_key not in line and CARD not in line and EMAIL not in line
            lines.append(j)
    fo = [j for j in lines if j["event"] == "attempt_failed"
          and j.get("custom_id") == run["cid"]["failover"]]
    assert len(fo) == MAX_ATTEMPTS and all(j["trace_id"] == run["tid"]["failover"] for j in fo)
    bl = [j for j in lines if j["event"] == "request_blocked"]
    assert any(j.get("trace_id") == run["tid"]["blocked"] and
               j.get("custom_id") == run["cid"]["blocked"] for j in bl)
