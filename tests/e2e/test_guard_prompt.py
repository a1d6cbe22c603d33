"""
Guardrails and prompt templates through the whole gateway, on real Kafka and
Redis: a redacted card number is what reaches the per-model topic (asserted
on the topic's bytes), a blocked one never reaches it, an email in a model's
answer is redacted before the reply topic, and a template stored with
`inferq prompt push` is rendered by the broker.
"""
import json
import subprocess

import pytest

from ifq_e2e import (Gateway, Produce, ReplyCollector, TopicReader, chat, content_of, deployment,
                     describe, serve_teams, unique)

CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def gw(stack_env, workdir, fake):
    g = Gateway(
        stack_env, workdir / "guard",
        deployments={"m": deployment(fake.base_url)},
        aliases={"chat": ["m"]},
        group=__name__,
        extra={
            "guardrails": {"policies": {
                "redact-cards": {"detectors": {"CREDIT_CARD": "redact"},
                                 "output": {"detectors": {"EMAIL_ADDRESS": "redact"}}},
                "block-cards": {"detectors": {"CREDIT_CARD": "block"}},
            }},
            "teams": {
                "redactors": {"models": ["chat"], "guardrail_policy": "redact-cards"},
                "blockers": {"models": ["chat"], "guardrail_policy": "block-cards"},
            },
        })
    yield from serve_teams(g, ("redactors", "blockers"))


def run(gw, reqs, topic):
    replies = ReplyCollector(gw.env.bootstrap, gw.replies)
    model = TopicReader(gw.env.bootstrap, [gw.topic("model.m")])
    p = Produce(gw.env.bootstrap)
    for r in reqs:
        p.send(topic, r, key=r["custom_id"])
    p.flush()
    got = replies.results([r["custom_id"] for r in reqs])
    model.poll(0.5)
    replies.close()
    model.close()
    return got, model.records


def test_redacted_card_is_what_reaches_the_model_topic(gw):
    cid = unique("redact-")
    got, routed = run(gw, [chat(cid, f"charge my card {CARD} please", model="chat")],
                      f"{gw.requests}.redactors")
    res = got[cid]
    assert res["inferq"]["status"] == "succeeded", describe(res)
    mine = [r for r in routed if cid.encode() in r.value]
    assert len(mine) == 1
    assert CARD.encode() not in mine[0].value, "the card number reached the per-model topic"
    assert b"<CREDIT_CARD>" in mine[0].value
    assert "<CREDIT_CARD>" in content_of(res)  # the fake echoes what it was sent
    findings = res["inferq"]["guardrails"]["input"]
    assert any(f["entity"] == "CREDIT_CARD" and f["action"] == "redact" for f in findings)
    assert CARD not in json.dumps(res["inferq"]), "matched text copied into the result"


def test_blocked_card_never_reaches_a_model(gw):
    cid = unique("block-")
    got, routed = run(gw, [chat(cid, f"charge my card {CARD} please", model="chat")],
                      f"{gw.requests}.blockers")
    res = got[cid]
    assert res["error"]["code"] == "guardrail_blocked", describe(res)
    assert "CREDIT_CARD" in res["error"]["message"]
    assert not [r for r in routed if cid.encode() in r.value]


def test_email_in_the_answer_is_redacted_before_the_reply(gw):
    cid = unique("out-")
    got, _ = run(gw, [chat(cid, "[[fake:content=write to bob.smith@example.com today]]",
                           model="chat")], f"{gw.requests}.redactors")
    res = got[cid]
    assert res["inferq"]["status"] == "succeeded", describe(res)
    text = content_of(res)
    assert "bob.smith@example.com" not in text and "<EMAIL_ADDRESS>" in text, text
    assert any(f["entity"] == "EMAIL_ADDRESS"
               for f in res["inferq"]["guardrails"]["output"])


def test_prompt_template_is_rendered_by_the_broker(gw, stack_env, workdir):
    pid = unique("summarise-")
    tmpl = workdir / "summarise.json"
    tmpl.write_text(json.dumps({
        "messages": [{"role": "system", "content": "You are {{persona}}."},
                     {"role": "user", "content": "Summarise: {{text}}"}],
        "variables": {"persona": {"default": "terse"}, "text": {"required": True}},
        "model": "chat"}))
    cli = [stack_env.bin("inferq"), "--config", str(gw.cli_config)]
    out = subprocess.run(cli + ["prompt", "push", pid, str(tmpl)], capture_output=True,
                         text=True, env=stack_env.child_env(), timeout=30)
    assert out.returncode == 0, out.stderr
    subprocess.run(cli + ["prompt", "label", pid, "production", "1"], check=True,
                   capture_output=True, env=stack_env.child_env(), timeout=30)
    ok, missing = unique("tmpl-"), unique("tmpl-missing-")
    reqs = [
        {"custom_id": ok, "method": "POST", "url": "/v1/chat/completions", "body": {},
         "prompt": {"id": pid, "label": "production", "variables": {"text": "the minutes"}}},
        {"custom_id": missing, "method": "POST", "url": "/v1/chat/completions", "body": {},
         "prompt": {"id": pid, "label": "production", "variables": {}}},
    ]
    got, _ = run(gw, reqs, f"{gw.requests}.redactors")
    assert got[ok]["inferq"]["status"] == "succeeded", describe(got[ok])
    assert content_of(got[ok]) == "echo: Summarise: the minutes"
    assert got[ok]["inferq"]["prompt"] == f"{pid}@1"
    assert got[missing]["error"]["code"] == "invalid_request", describe(got[missing])
    assert "text" in got[missing]["error"]["message"]
