"""
A worker whose Kafka is behind takes no new request (worker.max_undelivered).

A request's model call is over once its answer arrives, so it stops counting
against the in-flight caps; its result still waits in the worker's producer
until Kafka acknowledges it. Without a bound, a slow or stalled Kafka lets a
worker take request after request and hold their results in memory.

Here the worker's producer lingers 6 s before sending (linger.ms, this
worker only; the broker routes at once), and worker.max_undelivered is 3:

- The first 3 requests are taken and answered by the fake; their 3 results
  then wait in the producer, which is the bound: the worker reports that it
  holds back (inferq_worker_backlogged_loops).
- 3 more requests reach the per-model topic. Until the first 3 results can
  have been delivered (6 s after they were sent), the fake sees no further
  call (without the bound the worker,
  whose max_inflight is 50, would call the model for them at once).
- Afterwards all 6 are answered exactly once, and the worker counted the
  pause in inferq_worker_backlog_pauses_total.
"""
import time

import pytest

from ifq_e2e import (ReplyCollector, TopicReader, admin_metric, deployment, describe, send_chats,
                     unique, wait_until)


@pytest.fixture(scope="module")
def gw(make_gateway, fake):
    return make_gateway(
        deployments={"bl": deployment(fake.base_url, "fake-chat", max_inflight=50)},
        aliases={"chat-default": ["bl"]},
        worker={"max_inflight": 50, "max_undelivered": 3, "shutdown_grace_ms": 10000})


LINGER_MS = 6000  # the worker's producer holds each message this long


def test_no_new_request_while_kafka_has_not_taken_the_results(gw, fake):
    tag = unique("bl-")
    first = [f"{tag}-a{i}" for i in range(3)]
    second = [f"{tag}-b{i}" for i in range(3)]
    fake.reset()
    gw.start_broker()
    w = gw.start_worker(kafka_properties={"linger.ms": str(LINGER_MS)})
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    routed = TopicReader(gw.env.bootstrap, gw.topic("model.bl"), watch=gw)
    try:
        send_chats(gw, first)
        # before: a moment before the first call (the fake had none), so
        # before the first result was produced
        before, deadline = time.monotonic(), time.monotonic() + 60
        while True:
            t = time.monotonic()
            if fake.stats()["requests"] > 0:
                break
            before = t
            assert t < deadline, "no call within 60 s"
            routed.poll(0.02)
        wait_until(lambda: fake.stats()["requests"] == 3, 30, "the first 3 calls", 0.02)
        wait_until(lambda: admin_metric(w.admin_port, "inferq_worker_backlogged_loops") == 1, 30,
                   "the worker to hold back", 0.02)
        send_chats(gw, second)
        routed.wait(lambda: len(routed.records) == 6, 30, "all 6 requests on the model topic")
        # Kafka has none of the first results before before + linger: until
        # then no call may start.
        until = before + LINGER_MS / 1000 - 0.5
        assert time.monotonic() < until - 1, "too slow to see the worker hold back"
        while time.monotonic() < until:
            assert fake.stats()["requests"] == 3, \
                "the worker took new requests while 3 results waited for Kafka"
            routed.poll(0.05)
        assert not replies.by_id(), "a result arrived before its producer's linger.ms"
        res = replies.results(first + second, timeout=60)
        bad = [describe(r) for r in res.values() if r["inferq"]["status"] != "succeeded"]
        assert not bad, bad
        counts = replies.counts(first + second)
        assert all(c == 1 for c in counts.values()), counts
        assert fake.stats()["requests"] == 6
        assert admin_metric(w.admin_port, "inferq_worker_backlog_pauses_total") >= 1
    finally:
        replies.close()
        routed.close()
        assert w.stop(30) == 0, w.tail()
