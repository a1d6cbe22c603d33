"""
The C client library (clients/c) through its example programs, against a
private broker and worker on the real Kafka stack: one request awaited (JSON
and Avro), many threads awaiting their own custom_ids on one client, results
by callback, a batch file with bounded in-flight requests, an await timeout,
a request the broker rejects, a shared reply topic read by two clients at
once, and the private reply topic's life cycle.

Needs: the stack (deploy/local/stack.sh up --kafka real) and the examples
built (inferq-example-* in $INFERQ_BUILD_DIR/bin).
"""
import json
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from ifq_e2e import content_of, deployment, describe, unique, wait_until

TIMEOUT_MS = "90000"  # generous: CI runs this with the ASan build


@pytest.fixture(scope="module")
def gw(make_gateway, fake):
    g = make_gateway(
        deployments={"fake-chat": deployment(fake.base_url, "fake-chat")},
        aliases={"chat-default": ["fake-chat"]},
        worker={"max_inflight": 256})
    g.start_worker()
    return g


def example(gw, name, *args, timeout=180):
    """Runs clients/c/examples/<name> against the gateway; (rc, stdout, stderr)."""
    exe = gw.env.bin(f"inferq-example-{name}")
    if not Path(exe).is_file():
        pytest.fail(f"{exe} not found: build the C client examples", pytrace=False)
    argv = [exe, "-b", gw.env.bootstrap, "-p", gw.prefix, *args]
    p = subprocess.run(argv, capture_output=True, timeout=timeout, env=gw.env.child_env())
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def results_of(out: str) -> dict:
    res = {}
    for line in out.splitlines():
        r = json.loads(line)
        assert r["custom_id"] not in res, f"two results for {r['custom_id']}"
        res[r["custom_id"]] = r
    return res


def topics(gw) -> set:
    admin = AdminClient({"bootstrap.servers": gw.env.bootstrap})
    return set(admin.list_topics(timeout=30).topics)


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_submit_await_returns_the_answer(gw, encoding):
    cid = unique(f"c-{encoding}-")
    flags = ["-a"] if encoding == "avro" else []
    rc, out, err = example(gw, "submit_await", *flags, "-i", cid, "-t", TIMEOUT_MS,
                           f"hello {encoding}")
    assert rc == 0, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    res = json.loads(out)
    assert res["custom_id"] == cid
    assert res["error"] is None, describe(res)
    assert res["inferq"]["status"] == "succeeded"
    assert content_of(res) == f"echo: hello {encoding}"
    assert res["id"].startswith("ifq_")


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_many_threads_awaiting_on_one_client_each_get_their_own_result(gw, encoding):
    prefix = unique("thr")
    flags = ["-a"] if encoding == "avro" else []
    rc, out, err = example(gw, "threads_await", *flags, "-T", "16", "-n", "15", "-i", prefix,
                           "-t", TIMEOUT_MS)
    # every result checked in C: its custom_id is the awaited one and the
    # echoed answer contains that custom_id
    assert out.strip() == "ok 240 wrong 0 missing 0", f"exit {rc}\nstdout: {out}\nstderr: {err}"
    assert rc == 0


def test_callbacks_deliver_every_result_once(gw):
    prefix = unique("cb")
    rc, out, err = example(gw, "callbacks", "-n", "100", "-i", prefix, "-t", TIMEOUT_MS, "msg")
    assert rc == 0, f"exit {rc}\nstderr: {err}"
    res = results_of(out)
    assert set(res) == {f"{prefix}-{i}" for i in range(100)}
    for i in range(100):
        r = res[f"{prefix}-{i}"]
        assert content_of(r) == f"echo: msg {i}", describe(r)


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_a_request_the_broker_rejects_comes_back_as_an_error_result(gw, encoding):
    cid = unique("c-bad-")
    flags = ["-a"] if encoding == "avro" else []
    rc, out, err = example(gw, "submit_await", *flags, "-m", "no-such-model", "-i", cid,
                           "-t", TIMEOUT_MS, "hi")
    assert rc == 1, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    res = json.loads(out)
    assert res["custom_id"] == cid
    assert res["response"] is None
    assert res["error"]["code"] == "model_not_found", describe(res)
    assert res["inferq"]["status"] == "rejected"
    assert "model_not_found" in err


def test_batch_file_streams_with_bounded_in_flight(gw, fake, tmp_path):
    prefix = unique("b")
    lines = []
    for i in range(120):
        model = "no-such-model" if i == 7 else "chat-default"
        lines.append(json.dumps({"custom_id": f"{prefix}-{i}", "method": "POST",
                                 "url": "/v1/chat/completions",
                                 "body": {"model": model, "max_tokens": 8,
                                          "messages": [{"role": "user", "content": f"line {i}"}]}}))
    lines.insert(50, "this is not json")
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(lines) + "\n")
    fake.reset()
    rc, out, err = example(gw, "batch_file", "-f", "6", "-t", TIMEOUT_MS, str(src), str(dst))
    assert rc == 1, f"exit {rc}\nstderr: {err}"  # one bad line, one error result
    assert "line 51" in err and "120 sent, 120 results, 1 failed, 1 bad lines" in err, err
    res = results_of(dst.read_text())
    assert set(res) == {f"{prefix}-{i}" for i in range(120)}
    assert res[f"{prefix}-7"]["error"]["code"] == "model_not_found"
    for i in range(120):
        if i != 7:
            assert content_of(res[f"{prefix}-{i}"]) == f"echo: line {i}"
    stats = fake.stats()
    assert stats["requests"] == 119, stats
    assert 1 <= stats["max_in_flight"] <= 6, stats


def test_await_timeout_returns_the_timeout_code(gw):
    # The shared reply topic, so the late result has somewhere to go.
    cid = unique("c-slow-")
    rc, out, err = example(gw, "submit_await", "-r", gw.replies, "-i", cid, "-t", "1500",
                           "slow [[fake:latency=8000]]")
    assert rc == 3, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    assert out == ""
    assert f"{cid}: timed out" in err


def test_two_clients_share_a_reply_topic_and_see_only_their_own(gw):
    procs = []
    prefixes = [unique("sa"), unique("sb")]
    for p in prefixes:
        argv = [gw.env.bin("inferq-example-callbacks"), "-b", gw.env.bootstrap, "-p", gw.prefix,
                "-r", gw.replies, "-n", "60", "-i", p, "-t", TIMEOUT_MS, "shared"]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=gw.env.child_env()))
    for p, proc in zip(prefixes, procs):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"exit {proc.returncode}\nstderr: {err.decode()}"
        res = results_of(out.decode())
        assert set(res) == {f"{p}-{i}" for i in range(60)}, "results of the other client leaked"


def test_a_request_kafka_refuses_comes_back_as_a_delivery_failed_result(gw):
    # ".." is a topic name Kafka refuses; the producer-only property must not
    # reach (and warn on) the consumer.
    cid = unique("c-undelivered-")
    rc, out, err = example(gw, "submit_await", "-X", "requests.topic=..",
                           "-X", "kafka.producer.message.timeout.ms=30000", "-i", cid,
                           "-t", TIMEOUT_MS, "hi")
    assert rc == 1, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    res = json.loads(out)
    assert res["custom_id"] == cid
    assert res["response"] is None
    assert res["error"]["code"] == "delivery_failed", describe(res)
    assert res["inferq"]["status"] == "failed"
    assert "CONFWARN" not in err, err


def test_a_request_over_the_producer_limit_is_refused_at_submit(gw):
    rc, out, err = example(gw, "submit_await", "-X", "kafka.producer.message.max.bytes=1000",
                           "-t", TIMEOUT_MS, "x" * 3000)
    assert rc == 2, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    assert "larger than the producer's message.max.bytes" in err


def test_the_private_reply_topic_is_deleted_when_the_client_ends(gw):
    # Every earlier test made (and should have deleted) its own private topic.
    cid = unique("c-topic-")
    rc, out, err = example(gw, "submit_await", "-i", cid, "-t", TIMEOUT_MS, "bye")
    assert rc == 0, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    assert json.loads(out)["custom_id"] == cid

    def leftovers():
        return {t for t in topics(gw) if t.startswith(f"{gw.prefix}.replies.c")}

    wait_until(lambda: not leftovers(), 60, "the private reply topics to be deleted", 0.5)
