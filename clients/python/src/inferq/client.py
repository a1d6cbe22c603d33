"""The Kafka client: submit requests, get their results back.

One :class:`Client` owns a confluent-kafka Producer (requests) and a
Consumer of its reply topic, read by one background thread that serves
every waiting future. Results are matched to requests by ``custom_id`` and
by the W3C trace id the client puts in each request's ``traceparent``
header (inferq continues it and echoes it as ``inferq.trace_id``), so
several clients can share one reply topic and each sees only its own
results, even when two of them happen to use the same custom_id.
"""
from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import queue
import secrets
import threading
import time
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Set, Tuple, Union

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from .codec import (AVRO, CONTENT_TYPE_AVRO_REQUEST, CONTENT_TYPE_JSON, ENCODINGS, JSON,
                    decode_result_dict, encode_request)
from .errors import ClientClosed, DecodeError, DeliveryError, RequestTimeout
from .types import Request, Result, check_custom_id

log = logging.getLogger("inferq")

RequestLike = Union[Request, Mapping[str, Any]]


class ResultFuture(Future[Result]):
    """A concurrent.futures.Future of a :class:`Result`, with the request's
    ``custom_id`` and the W3C ``trace_id`` sent with it. Cancelling it makes
    the client stop waiting for the result (the request itself is not
    withdrawn)."""

    custom_id: str
    trace_id: str


class _Pending:
    __slots__ = ("future", "trace_id", "deadline", "timeout")

    def __init__(self, future: ResultFuture, trace_id: str, timeout: Optional[float]):
        self.future = future
        self.trace_id = trace_id
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout if timeout is not None else None


def _resolve(fut: "Future[Any]", result: Any = None, exc: Optional[BaseException] = None) -> None:
    """Completes fut unless it is already done (cancelled by its owner)."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except InvalidStateError:
        pass


class Client:
    """A thread-safe inferq client.

    :param bootstrap_servers: Kafka bootstrap servers (``host:port,...``).
    :param encoding: ``"json"`` or ``"avro"`` (single-object encoding) for
        requests. Results are decoded whatever their encoding.
    :param reply_topic: ``None`` (default): a private topic
        ``<prefix>.replies.py-<hex>`` is created now and deleted on close.
        A name: that topic, which must exist, is shared with other clients;
        only this client's results are taken from it.
    :param request_topic: where requests go (default ``<prefix>.requests``;
        ``<prefix>.requests.<team>`` for a team).
    :param topic_prefix: the gateway's ``kafka.topic_prefix`` (default inferq).
    :param kafka_config: librdkafka properties for the producer, the consumer
        and topic administration alike (``security.protocol``, ``sasl.*``,
        ``ssl.*``, ...). ``producer_config``/``consumer_config`` are for one
        side only.
    :param default_timeout: seconds a request waits for its result when
        submit/infer/run_batch get no timeout (``None``: forever).
    :param reply_partitions: partitions of a private reply topic.
    :param delete_reply_topic: delete a private reply topic on close().
    :param start_timeout: seconds to wait for Kafka while starting.
    """

    def __init__(self, bootstrap_servers: str, *, encoding: str = JSON,
                 reply_topic: Optional[str] = None, request_topic: Optional[str] = None,
                 topic_prefix: str = "inferq", kafka_config: Optional[Mapping[str, Any]] = None,
                 producer_config: Optional[Mapping[str, Any]] = None,
                 consumer_config: Optional[Mapping[str, Any]] = None,
                 default_timeout: Optional[float] = None, reply_partitions: int = 1,
                 start_timeout: float = 30.0, delete_reply_topic: bool = True,
                 match_trace_id: bool = True,
                 poll_interval: float = 0.05):
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be 'json' or 'avro', got {encoding!r}")
        self.encoding = encoding
        self.request_topic = request_topic or f"{topic_prefix}.requests"
        self.default_timeout = default_timeout
        self.match_trace_id = match_trace_id
        self._poll_interval = poll_interval
        self._common: Dict[str, Any] = {"bootstrap.servers": bootstrap_servers}
        self._common.update(kafka_config or {})
        self._private = reply_topic is None
        self._delete_reply_topic = delete_reply_topic
        self.reply_topic = reply_topic or f"{topic_prefix}.replies.py-{secrets.token_hex(6)}"
        self._content_type = (CONTENT_TYPE_AVRO_REQUEST if encoding == AVRO
                              else CONTENT_TYPE_JSON).encode()

        self._lock = threading.Lock()
        self._pending: Dict[str, _Pending] = {}
        self._expiry: List[Tuple[float, int, str, _Pending]] = []
        self._seq = itertools.count()
        self._closed = False
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self._stats = {"received": 0, "ignored": 0, "undecodable": 0, "delivery_failed": 0,
                       "timed_out": 0}

        pc = {"client.id": "inferq-python", "enable.idempotence": True, "linger.ms": 5,
              "message.max.bytes": 16 * 1024 * 1024}
        pc.update(self._common)
        pc.update(producer_config or {})
        cc = {"client.id": "inferq-python", "group.id": f"inferq-py-{secrets.token_hex(6)}",
              "enable.auto.commit": False, "enable.partition.eof": False,
              "fetch.wait.max.ms": 50, "isolation.level": "read_committed",
              "receive.message.max.bytes": 200 * 1024 * 1024}
        cc.update(self._common)
        cc.update(consumer_config or {})

        # librdkafka's log lines go to the "inferq" logger (unless the
        # caller's config names a logger); warnings and errors still reach
        # stderr when the application configured no logging
        pc.setdefault("logger", log)
        cc.setdefault("logger", log)
        self._producer = Producer(pc)
        self._consumer: Optional[Consumer] = None
        self._created_topic = False
        try:
            if self._private:
                self._create_reply_topic(reply_partitions, start_timeout)
            self._consumer = Consumer(cc)
            self._assign_at_end(start_timeout)
        except BaseException:
            self._teardown_kafka()
            raise
        self._thread = threading.Thread(target=self._run, name="inferq-replies", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ start/stop --

    def _admin(self) -> AdminClient:
        # librdkafka's log lines of this short-lived handle go to the
        # "inferq" logger instead of stderr
        conf = dict(self._common)
        conf.setdefault("logger", log)
        return AdminClient(conf)

    def _create_reply_topic(self, partitions: int, timeout: float) -> None:
        admin = self._admin()  # must outlive the futures
        fs = admin.create_topics(
            # a day's retention bounds what is left behind should the
            # process die before close() deletes the topic
            [NewTopic(self.reply_topic, num_partitions=partitions, replication_factor=-1,
                      config={"retention.ms": str(24 * 3600 * 1000)})],
            operation_timeout=timeout, request_timeout=timeout)
        for f in fs.values():
            try:
                f.result(timeout + 5)  # librdkafka's own timeout comes first
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            except FutureTimeout:
                raise KafkaException(KafkaError(
                    KafkaError._TIMED_OUT,
                    f"creating reply topic {self.reply_topic}: timed out")) from None
        self._created_topic = True

    def _assign_at_end(self, timeout: float) -> None:
        """Assigns every partition of the reply topic at its high watermark,
        before any request is sent: nothing answered later can be missed,
        nothing older is seen. No consumer group, no commits."""
        assert self._consumer is not None
        deadline = time.monotonic() + timeout
        last = "no metadata"
        while True:
            try:
                md = self._consumer.list_topics(self.reply_topic,
                                                timeout=max(1.0, min(5.0, timeout)))
                t = md.topics.get(self.reply_topic)
                if t is not None and t.error is None and t.partitions and \
                        all(p.leader >= 0 for p in t.partitions.values()):
                    break
                last = str(t.error) if t is not None and t.error is not None else "no leader yet"
            except KafkaException as e:
                last = str(e)
            if time.monotonic() >= deadline:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT,
                                                f"reply topic {self.reply_topic}: {last}"))
            time.sleep(0.1)
        tps = []
        for p in sorted(t.partitions):
            while True:
                try:
                    _, hi = self._consumer.get_watermark_offsets(
                        TopicPartition(self.reply_topic, p), timeout=5)
                    break
                except KafkaException:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.1)
            tps.append(TopicPartition(self.reply_topic, p, hi))
        self._consumer.assign(tps)

    def close(self, flush_timeout: float = 30.0) -> None:
        """Delivers what was submitted (up to flush_timeout), stops the
        background thread, fails the futures still waiting with ClientClosed
        and deletes a private reply topic. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._producer.flush(flush_timeout)
        finally:
            self._stop.set()
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join()
            with self._lock:
                left = list(self._pending.values())
                self._pending.clear()
                self._expiry.clear()
            for p in left:
                _resolve(p.future, exc=ClientClosed(
                    f"client closed before a result for {p.future.custom_id!r} arrived"))
            self._teardown_kafka()

    def _teardown_kafka(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except RuntimeError:
                pass
            self._consumer = None
        if self._created_topic and self._delete_reply_topic:
            self._created_topic = False
            try:
                admin = self._admin()  # must outlive the futures
                for f in admin.delete_topics([self.reply_topic], operation_timeout=10).values():
                    f.result(15)
            except Exception as e:  # best effort: the topic is empty and unused
                log.warning("inferq: could not delete reply topic %s: %s", self.reply_topic, e)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self, flush_timeout: float = 30.0) -> None:
        """close() in a worker thread, for asyncio code."""
        await asyncio.get_running_loop().run_in_executor(None, self.close, flush_timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> Dict[str, int]:
        """A copy of the counters: ``received`` (results taken), ``ignored``
        (messages on the reply topic for other clients, or late ones),
        ``undecodable``, ``delivery_failed``, ``timed_out``."""
        with self._stats_lock:
            return dict(self._stats)

    def _bump(self, key: str) -> None:
        with self._stats_lock:
            self._stats[key] += 1

    @property
    def in_flight(self) -> int:
        """Requests submitted and still waiting for their result."""
        with self._lock:
            return len(self._pending)

    # ---------------------------------------------------------------- submit --

    def _prepare(self, request: RequestLike) -> Request:
        req = request if isinstance(request, Request) else Request.from_dict(request)
        check_custom_id(req.custom_id)
        if req.reply_to is not None and req.reply_to != self.reply_topic:
            raise ValueError(f"request {req.custom_id!r} names reply_to {req.reply_to!r}, but "
                             f"this client reads its results from {self.reply_topic!r}")
        return dataclasses.replace(req, reply_to=self.reply_topic)

    def submit(self, request: RequestLike, timeout: Optional[float] = None) -> ResultFuture:
        """Sends a request; returns a future of its Result.

        ``request`` is a Request or a contract dict (a batch file line). The
        future fails with RequestTimeout when no result arrives within
        ``timeout`` seconds (default: the client's default_timeout), with
        DeliveryError when Kafka refused the message and with ClientClosed
        on close(). An error *result* (rejected, failed, expired) is a
        normal Result. Raises ValueError for an unusable request or a
        custom_id already waiting on this client; blocks only while the
        producer's local queue is full."""
        return self._submit(request, timeout, block=True)

    def _submit(self, request: RequestLike, timeout: Optional[float], block: bool) -> ResultFuture:
        if self._closed:
            raise ClientClosed("client is closed")
        req = self._prepare(request)
        value = encode_request(req, self.encoding)
        if timeout is None:
            timeout = self.default_timeout
        trace_id = secrets.token_hex(16)
        fut = ResultFuture()
        fut.custom_id = req.custom_id
        fut.trace_id = trace_id
        entry = _Pending(fut, trace_id, timeout)
        cid = req.custom_id
        with self._lock:
            if self._closed:
                raise ClientClosed("client is closed")
            if cid in self._pending:
                raise ValueError(f"custom_id {cid!r} is already waiting for a result on this "
                                 "client")
            self._pending[cid] = entry
            if entry.deadline is not None:
                heapq.heappush(self._expiry, (entry.deadline, next(self._seq), cid, entry))
        fut.add_done_callback(lambda _f: self._forget(cid, entry))
        headers: List[Tuple[str, Union[str, bytes, None]]] = [
            ("content-type", self._content_type),
            ("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01".encode())]

        def on_delivery(err: Optional[KafkaError], _msg: Any) -> None:
            if err is not None:
                self._bump("delivery_failed")
                if self._take(cid, entry):
                    _resolve(fut, exc=DeliveryError(cid, str(err)))

        try:
            while True:
                try:
                    self._producer.produce(self.request_topic, value=value,
                                           key=cid.encode("utf-8"), headers=headers,
                                           on_delivery=on_delivery)
                    break
                except BufferError:
                    if not block:
                        raise
                    self._producer.poll(0.01)  # queue full: let deliveries drain
        except BaseException:
            self._take(cid, entry)
            raise
        return fut

    def _take(self, cid: str, entry: _Pending) -> bool:
        """Removes entry from the pending map; True when it was still there."""
        with self._lock:
            if self._pending.get(cid) is entry:
                del self._pending[cid]
                return True
            return False

    def _forget(self, cid: str, entry: _Pending) -> None:
        self._take(cid, entry)

    # ------------------------------------------------------------- the thread --

    def _run(self) -> None:
        warned: Set[str] = set()
        while not self._stop.is_set():
            try:
                self._producer.poll(0)
                consumer = self._consumer
                if consumer is None:
                    break
                msgs = consumer.consume(num_messages=1000, timeout=self._poll_interval)
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF and str(err) not in warned:
                            warned.add(str(err))
                            log.warning("inferq: reply topic %s: %s", self.reply_topic, err)
                        continue
                    self._on_reply(m.value())
                self._expire()
            except Exception:  # never let the thread die: every future depends on it
                log.exception("inferq: reply loop error")
                self._stop.wait(self._poll_interval)

    def _on_reply(self, value: Optional[bytes]) -> None:
        try:
            d = decode_result_dict(value or b"")
        except DecodeError:
            self._bump("undecodable")
            return
        cid = d.get("custom_id")
        if not isinstance(cid, str):
            self._bump("undecodable")
            return
        with self._lock:
            entry = self._pending.get(cid)
            if entry is None:
                self._bump("ignored")
                return
            if self.match_trace_id:
                ext = d.get("inferq")
                tid = ext.get("trace_id") if isinstance(ext, dict) else None
                if isinstance(tid, str) and tid != entry.trace_id:
                    self._bump("ignored")  # someone else's request with our custom_id
                    return
            del self._pending[cid]
        try:
            result = Result.from_dict(d)
        except DecodeError as e:
            _resolve(entry.future, exc=e)
            return
        self._bump("received")
        _resolve(entry.future, result)

    def _expire(self) -> None:
        now = time.monotonic()
        expired = []
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                _, _, cid, entry = heapq.heappop(self._expiry)
                if self._pending.get(cid) is entry:
                    del self._pending[cid]
                    expired.append((cid, entry))
            # entries answered long before their deadline pile up: rebuild
            if len(self._expiry) > 2 * len(self._pending) + 1024:
                self._expiry = [e for e in self._expiry if self._pending.get(e[2]) is e[3]]
                heapq.heapify(self._expiry)
        for cid, entry in expired:
            self._bump("timed_out")
            _resolve(entry.future, exc=RequestTimeout(cid, entry.timeout or 0.0))

    # --------------------------------------------------------------- asyncio --

    async def infer(self, request: RequestLike, timeout: Optional[float] = None) -> Result:
        """Sends a request and awaits its Result without blocking the event
        loop. Raises RequestTimeout after ``timeout`` seconds (default: the
        client's default_timeout); cancelling the awaiting task stops the
        wait."""
        while True:
            try:
                fut = self._submit(request, timeout, block=False)
                break
            except BufferError:
                await asyncio.sleep(0.01)  # producer queue full: yield to the loop
        return await asyncio.wrap_future(fut)

    # ----------------------------------------------------------------- batch --

    def run_batch(self, requests: Iterable[RequestLike], max_in_flight: int = 1000,
                  timeout: Optional[float] = None) -> Iterator[Result]:
        """Sends requests (Requests or contract dicts, read lazily) keeping at
        most ``max_in_flight`` waiting, and yields each one's Result as it
        arrives, so memory stays bounded for inputs of any size.

        Every request yields exactly one Result. One that got no answer
        within ``timeout`` (default: the client's default_timeout) or that
        Kafka refused yields :meth:`Result.client_error` with code
        ``client_timeout`` or ``client_delivery_failed``. Closing the
        generator early stops waiting for the rest."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        done: "queue.SimpleQueue[ResultFuture]" = queue.SimpleQueue()
        waiting: Dict[int, ResultFuture] = {}
        it = iter(requests)
        exhausted = False
        try:
            while True:
                while not exhausted and len(waiting) < max_in_flight:
                    try:
                        r = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    fut = self.submit(r, timeout)
                    waiting[id(fut)] = fut
                    fut.add_done_callback(lambda f: done.put(f))  # type: ignore[arg-type]
                if not waiting:
                    return
                fut = done.get()
                del waiting[id(fut)]
                yield self._batch_outcome(fut)
        finally:
            for f in waiting.values():
                f.cancel()

    @staticmethod
    def _batch_outcome(fut: ResultFuture) -> Result:
        if fut.cancelled():
            raise ClientClosed(f"the wait for {fut.custom_id!r} was cancelled")
        exc = fut.exception()
        if exc is None:
            return fut.result()
        if isinstance(exc, RequestTimeout):
            return Result.client_error(fut.custom_id, "client_timeout", str(exc))
        if isinstance(exc, DeliveryError):
            return Result.client_error(fut.custom_id, "client_delivery_failed", str(exc))
        raise exc
