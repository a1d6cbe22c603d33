"""
Secrets and PII never leak: a gateway whose deployments use provider API keys
(one valid, one the model server refuses) and whose team redacts PII on input
and output, with request logging and tracing on, answers requests that carry
seeded PII. Then every byte the gateway wrote is scanned for the keys and the
seeded values: every record (value, key, headers) of every topic under the
gateway's prefix except the request topics the client itself wrote (read
uncommitted, so aborted transactional writes count too), every Redis key
under the prefix, and every line the broker and workers logged.

The scan is only meaningful when those places carry the requests' traces,
logs and results, so the test also asserts that they do (and that redaction
placeholders, not the values, are what they carry).
"""
import json
import os
import secrets

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ifq_e2e import (FakeModel, Gateway, Produce, ReplyCollector, chat, deployment, describe,
                     serve_teams, unique, wait_until)

KEY = "sk-leak-" + secrets.token_hex(16)  # the deployment's valid key
WRONG = "sk-wrong-" + secrets.token_hex(16)  # a key the model server refuses
EMAIL = f"jane.{secrets.token_hex(4)}@example.org"
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
SEEDED = {"api key": KEY, "wrong api key": WRONG, "email": EMAIL, "card": CARD,
          "card digits": CARD.replace(" ", ""), "iban": IBAN, "iban compact": IBAN.replace(" ", "")}
N_OK = 12
N_FAILED = 4


@pytest.fixture(scope="module")
def keys_in_env():
    saved = {k: os.environ.get(k) for k in ("INFERQ_LEAK_KEY", "INFERQ_LEAK_WRONG")}
    os.environ["INFERQ_LEAK_KEY"] = KEY
    os.environ["INFERQ_LEAK_WRONG"] = WRONG
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def fake(stack_env, workdir, keys_in_env):
    f = FakeModel(stack_env, workdir, "fake-leaks", args=["--api-key-env", "INFERQ_LEAK_KEY"],
                  group=__name__)
    yield f
    f.stop()


@pytest.fixture(scope="module")
def gw(stack_env, workdir, fake):
    g = Gateway(
        stack_env, workdir / "leaks",
        deployments={"good": deployment(fake.base_url, api_key_env="INFERQ_LEAK_KEY"),
                     "badkey": deployment(fake.base_url, api_key_env="INFERQ_LEAK_WRONG")},
        aliases={"chat": ["good"], "broken": ["badkey"]},
        group=__name__,
        extra={
            "guardrails": {"policies": {"redact-pii": {
                "detectors": {"EMAIL_ADDRESS": "redact", "CREDIT_CARD": "redact",
                              "IBAN_CODE": "redact"},
                "output": {"detectors": {"EMAIL_ADDRESS": "redact", "CREDIT_CARD": "redact",
                                         "IBAN_CODE": "redact"}}}}},
            "teams": {"pii": {"models": ["chat", "broken"], "guardrail_policy": "redact-pii",
                              "log_requests": True}},
        })
    yield from serve_teams(g, ("pii",))


def read_all(bootstrap: str, topics: list[str]) -> list:
    """Every record of the topics from the beginning to their current end."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("leak-scan-"),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_uncommitted"})
    md = c.list_topics(timeout=10)
    tps = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in md.topics[t].partitions]
    c.assign(tps)
    pending = {(tp.topic, tp.partition) for tp in tps}
    out = []

    def drained():
        for m in c.consume(num_messages=5000, timeout=0.2):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard((m.topic(), m.partition()))
                continue
            out.append(m)
        return not pending

    wait_until(drained, 60, "every partition read to its end", 0)
    c.close()
    return out


def scan(where: str, data: bytes, found: list):
    for what, value in SEEDED.items():
        if value.encode() in data:
            found.append(f"{what} in {where}")


def test_no_key_or_seeded_pii_anywhere(gw, stack_env):
    ok_ids = [unique("leak-ok-") for _ in range(N_OK)]
    bad_ids = [unique("leak-bad-") for _ in range(N_FAILED)]
    text = f"mail {EMAIL}, pay with {CARD} from {IBAN}; repeat it back"
    replies = ReplyCollector(stack_env.bootstrap, gw.replies, watch=gw)
    p = Produce(stack_env.bootstrap)
    for cid in ok_ids:
        p.send(f"{gw.requests}.pii", chat(cid, text, model="chat"), key=cid)
    for cid in bad_ids:
        p.send(f"{gw.requests}.pii", chat(cid, text, model="broken"), key=cid)
    p.flush()
    got = replies.results(ok_ids + bad_ids, timeout=120)
    replies.close()
    for cid in ok_ids:
        assert got[cid]["inferq"]["status"] == "succeeded", describe(got[cid])
        assert "<EMAIL_ADDRESS>" in json.dumps(got[cid]["response"]), describe(got[cid])
    for cid in bad_ids:
        assert got[cid]["inferq"]["status"] == "failed", describe(got[cid])

    # Everything the gateway wrote: the request logs and traces of these
    # requests must be there before the scan means anything.
    md = Consumer({"bootstrap.servers": stack_env.bootstrap, "group.id": unique("leak-md-")})
    topics = [t for t in md.list_topics(timeout=10).topics
              if t.startswith(gw.prefix + ".") and not t.startswith(gw.requests)]
    md.close()
    assert gw.topic("traces") in topics and gw.topic("logs") in topics, topics

    def everything_written():
        recs = read_all(stack_env.bootstrap, topics)
        logs = [r for r in recs if r.topic() == gw.topic("logs")]
        traces = [r for r in recs if r.topic() == gw.topic("traces")]
        logged = sum(1 for cid in ok_ids + bad_ids if any(cid.encode() in r.value() for r in logs))
        traced = sum(1 for cid in ok_ids + bad_ids
                     if any(cid.encode() in r.value() for r in traces))
        return recs if logged == len(ok_ids + bad_ids) and traced == len(ok_ids + bad_ids) else None

    recs = wait_until(everything_written, 60, "a request log and spans for every request", 0.5)
    found = []
    for r in recs:
        where = f"{r.topic()}[{r.partition()}]@{r.offset()}"
        scan(where + " value", r.value() or b"", found)
        scan(where + " key", r.key() or b"", found)
        for k, v in r.headers() or []:
            scan(f"{where} header {k}", (k.encode() + b"=" + (v or b"")), found)
    logs = [r.value() for r in recs if r.topic() == gw.topic("logs")]
    assert any(b"<EMAIL_ADDRESS>" in v for v in logs), "request logs carry no redaction placeholder"

    # Redis: every key under the prefix, whatever its type.
    rd = redis.Redis.from_url(stack_env.redis_url)
    n_keys = 0
    for k in rd.scan_iter(match=f"{gw.prefix}:*", count=1000):
        n_keys += 1
        t = rd.type(k)
        if t == b"hash":
            blob = json.dumps({a.decode("latin-1"): b.decode("latin-1")
                               for a, b in rd.hgetall(k).items()}).encode("latin-1")
        elif t == b"string":
            blob = rd.get(k) or b""
        elif t == b"list":
            blob = b"\n".join(rd.lrange(k, 0, -1))
        elif t == b"set":
            blob = b"\n".join(rd.smembers(k))
        elif t == b"zset":
            blob = b"\n".join(m for m, _ in rd.zrange(k, 0, -1, withscores=True))
        else:
            blob = rd.dump(k) or b""
        scan(f"redis {k.decode('latin-1')}", k + b" " + blob, found)
    assert n_keys >= N_OK + N_FAILED, f"only {n_keys} Redis keys under {gw.prefix}"

    # Every line the gateway's programs logged.
    n_lines = 0
    for proc in [gw.broker, *gw.workers]:
        for i, line in enumerate(proc.log.read_bytes().splitlines()):
            n_lines += 1
            scan(f"{proc.name} log line {i + 1}", line, found)
    assert n_lines > 0
    assert not found, "leaked:\n  " + "\n  ".join(found[:40])
