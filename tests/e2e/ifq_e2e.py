"""
ifq_e2e - helpers for inferq's end-to-end tests (tests/e2e) and benchmark
(tests/bench).

Everything here talks to real processes: the stack's Apache Kafka and Redis
(addresses from deploy/local/.run/env), and inferq programs started from the
build directory with a generated configuration whose topic prefix and group
ids are unique, so that a test never sees another test's messages.

Nothing here sleeps for a fixed time to "let things settle": every wait polls
a condition until a deadline.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENV_FILE = ROOT / "deploy" / "local" / ".run" / "env"

# Every started process, so that a failing test can print their log tails.
ALL_PROCS: list["Proc"] = []


# --------------------------------------------------------------------------
# the stack's environment


@dataclass
class StackEnv:
    values: dict
    path: Path

    @property
    def bootstrap(self) -> str:
        return self.values["KAFKA_BOOTSTRAP"]

    @property
    def redis_url(self) -> str:
        return self.values["REDIS_URL"]

    @property
    def fake_url(self) -> str:
        """base_url of the stack's fake model (ends with /v1)."""
        return self.values.get("INFERQ_FAKE_MODEL_URL", "http://127.0.0.1:18080/v1")

    @property
    def fake_api_key(self) -> str:
        return self.values.get("INFERQ_FAKE_API_KEY", "sk-inferq-e2e")

    @property
    def build_dir(self) -> Path:
        d = os.environ.get("INFERQ_BUILD_DIR") or self.values.get("INFERQ_BUILD_DIR") or "build"
        p = Path(d)
        return p if p.is_absolute() else ROOT / p

    def bin(self, name: str) -> str:
        return str(self.build_dir / "bin" / name)

    def child_env(self, extra: dict | None = None) -> dict:
        """Environment for an inferq program: the stack's addresses win over
        anything a config file says (INFERQ_* overrides), the fake's key is set."""
        env = dict(os.environ)
        env.pop("INFERQ_CONFIG", None)
        env["INFERQ_KAFKA_BOOTSTRAP"] = self.bootstrap
        env["INFERQ_REDIS_URL"] = self.redis_url
        env["INFERQ_FAKE_API_KEY"] = self.fake_api_key
        if extra:
            env.update(extra)
        return env


def env_file_path() -> Path:
    p = os.environ.get("INFERQ_E2E_ENV")
    return Path(p) if p else DEFAULT_ENV_FILE


def read_env_file(path: Path) -> dict:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        values[k.strip()] = v.strip().strip('"').strip("'")
    return values


def load_stack_env() -> StackEnv | None:
    path = env_file_path()
    if not path.is_file():
        return None
    values = read_env_file(path)
    missing = [k for k in ("KAFKA_BOOTSTRAP", "REDIS_URL") if not values.get(k)]
    if missing:
        raise RuntimeError(f"{path}: missing {', '.join(missing)}")
    return StackEnv(values, path)


# --------------------------------------------------------------------------
# small utilities


def unique(prefix: str = "e2e") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Polls cond() until it returns something truthy; returns that value or
    raises AssertionError naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0, headers: dict | None = None):
    """Returns (status, body bytes); status 0 when the connection failed."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def admin_metric(port: int, name: str) -> float | None:
    """The value of an unlabelled metric on a program's admin /metrics, or
    None when it is not there."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert status == 200, body
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def http_post(url: str, body: bytes = b"", timeout: float = 5.0):
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def tail(path: Path, lines: int = 40) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return f"({e})"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------
# processes


class Proc:
    """A started program with its stdout and stderr captured in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict, group: str = ""):
        self.name = name
        self.argv = argv
        self.log = log
        self.group = group  # the test module that owns it (for log tails)
        self.exit_code: int | None = None  # set once reaped
        self.admin_port: int | None = None  # set by Gateway for the broker and workers
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._logf = open(log, "ab")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._logf,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pid = self.p.pid
        ALL_PROCS.append(self)

    def alive(self) -> bool:
        return self.p.poll() is None

    @property
    def returncode(self):
        return self.p.poll()

    def _reaped(self, rc: int) -> int:
        self.exit_code = rc
        if not self._logf.closed:
            self._logf.close()
        return rc

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then waits up to timeout; after that SIGKILL and an
        AssertionError. Returns the exit code (negative: killed by a signal)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self._reaped(self.p.wait(10))
                raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within "
                                     f"{timeout}s of SIGTERM; killed. Log tail:\n{tail(self.log)}")
        return self._reaped(self.p.returncode)

    def kill(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        return self._reaped(self.p.wait(10))

    def wait_exit(self, timeout: float) -> int:
        return self._reaped(self.p.wait(timeout))

    def tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)


def wait_ready(proc: Proc, port: int, timeout: float = 90.0):
    """Polls GET /readyz of an inferq program until 200; fails at once when
    the process exits."""
    url = f"http://127.0.0.1:{port}/readyz"
    deadline = time.monotonic() + timeout
    last = b""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited with {proc.returncode} before it was ready;"
                                 f" log tail:\n{proc.tail()}")
        status, body = http_get(url, timeout=1.0)
        if status == 200:
            return
        last = body
        time.sleep(0.1)
    raise AssertionError(f"{proc.name} not ready after {timeout}s ({last!r}); log tail:\n{proc.tail()}")


class FakeModel:
    """An own inferq-fake-model (--port 0 --port-file F)."""

    def __init__(self, env: StackEnv, workdir: Path, name: str = "fake", args: Iterable[str] = (),
                 group: str = ""):
        workdir.mkdir(parents=True, exist_ok=True)
        self.port_file = workdir / f"{name}.port"
        if self.port_file.exists():
            self.port_file.unlink()
        argv = [env.bin("inferq-fake-model"), "--port", "0", "--port-file", str(self.port_file),
                "--quiet", *args]
        self.proc = Proc(name, argv, workdir / f"{name}.log", env.child_env(), group)

        def port():
            if not self.proc.alive():
                raise AssertionError(f"{name} exited: {self.proc.tail()}")
            try:
                t = self.port_file.read_text().strip()
                return int(t) if t else None
            except (OSError, ValueError):
                return None

        self.port = wait_until(port, 30, f"{name} to write its port file")
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        wait_until(lambda: http_get(f"http://127.0.0.1:{self.port}/_fake/health")[0] == 200, 30,
                   f"{name} to answer /_fake/health")

    def stats(self) -> dict:
        return fake_stats(f"http://127.0.0.1:{self.port}")

    def reset(self):
        status, body = http_post(f"http://127.0.0.1:{self.port}/_fake/reset")
        assert status == 200, body

    def stop(self):
        rc = self.proc.stop(15)
        assert rc == 0, f"fake model exited {rc}: {self.proc.tail()}"


def fake_stats(root_url: str) -> dict:
    """root_url: http://host:port (no /v1)."""
    status, body = http_get(root_url.rstrip("/") + "/_fake/stats", timeout=5)
    assert status == 200, f"GET {root_url}/_fake/stats: {status} {body!r}"
    return json.loads(body)


def fake_root(base_url: str) -> str:
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


# --------------------------------------------------------------------------
# configuration and the gateway (broker + worker) of one test module


def deployment(base_url: str, model: str = "fake-chat", **kw) -> dict:
    d = {"provider": "openai", "base_url": base_url, "model": model,
         "api_key_env": "INFERQ_FAKE_API_KEY"}
    d.update(kw)
    return d


class Gateway:
    """A private inferq: its own topic prefix, broker group and worker group
    prefix, the stack's Kafka and Redis, and the deployments it is given.
    Each program start writes its own config file (with a fresh admin port)."""

    def __init__(self, env: StackEnv, workdir: Path, deployments: dict, aliases: dict | None = None,
                 worker: dict | None = None, broker: dict | None = None, partitions: int = 4,
                 kafka_properties: dict | None = None, group: str = "", extra: dict | None = None):
        self.env = env
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.prefix = unique("e2e")
        self.group = group
        self.deployments = deployments
        self.aliases = aliases or {}
        self.worker_cfg = {"deployments": ["*"], "group_id_prefix": f"{self.prefix}-worker",
                           "backoff_base_ms": 50, "backoff_max_ms": 200}
        self.worker_cfg.update(worker or {})
        self.broker_cfg = {"group_id": f"{self.prefix}-broker"}
        self.broker_cfg.update(broker or {})
        self.partitions = partitions
        # A killed worker's group membership must expire quickly, so that a
        # restarted one gets the partitions within seconds (Kafka's minimum
        # group.min.session.timeout.ms is 6 s).
        self.kafka_properties = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}
        self.kafka_properties.update(kafka_properties or {})
        # Further config sections (teams, guardrails, cache, routing); a
        # "broker" entry is merged into the broker section.
        self.extra = extra or {}
        self.broker: Proc | None = None
        self.workers: list[Proc] = []
        self._n = 0

    # topics
    def topic(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    @property
    def requests(self) -> str:
        return self.topic("requests")

    @property
    def replies(self) -> str:
        return self.topic("replies")

    @property
    def dlq(self) -> str:
        return self.topic("dlq")

    def config(self, broker_port: int = 0, worker_port: int = 0, worker: dict | None = None,
               kafka_properties: dict | None = None) -> dict:
        """kafka_properties: more librdkafka properties for this program only."""
        w = dict(self.worker_cfg)
        w.update(worker or {})
        w["admin_port"] = worker_port
        b = dict(self.broker_cfg)
        b["admin_port"] = broker_port
        return {
            "kafka": {"bootstrap_servers": self.env.bootstrap, "topic_prefix": self.prefix,
                      "partitions": self.partitions,
                      "properties": {**self.kafka_properties, **(kafka_properties or {})}},
            "redis": {"url": self.env.redis_url, "state_ttl_s": 3600},
            "broker": b,
            "worker": w,
            "deployments": self.deployments,
            "aliases": self.aliases,
            **{k: v for k, v in self.extra.items() if k != "broker"},
        } | {"broker": {**b, **self.extra.get("broker", {})}}

    def write_config(self, name: str, **kw) -> Path:
        path = self.workdir / f"{name}.yaml"
        path.write_text(json.dumps(self.config(**kw), indent=1))  # JSON is YAML
        return path

    @property
    def cli_config(self) -> Path:
        """A config for the CLI (admin ports off)."""
        p = self.workdir / "cli.yaml"
        if not p.exists():
            self.write_config("cli")
        return p

    def _start(self, kind: str, binary: str, extra_args=(), worker: dict | None = None,
               ready_timeout: float = 90.0, kafka_properties: dict | None = None) -> Proc:
        for attempt in range(3):
            self._n += 1
            port = free_port()
            name = f"{kind}{self._n}"
            kw = {"broker_port": port} if kind == "broker" else {"worker_port": port,
                                                                  "worker": worker}
            cfg = self.write_config(name, kafka_properties=kafka_properties, **kw)
            proc = Proc(name, [self.env.bin(binary), "--config", str(cfg), *extra_args],
                        self.workdir / f"{name}.log", self.env.child_env(), self.group)
            proc.admin_port = port
            try:
                wait_ready(proc, port, ready_timeout)
                return proc
            except AssertionError:
                # another program may have taken the port between our probe
                # and the bind: try a new one; anything else is a failure
                if not proc.alive() and "cannot listen" in proc.tail() and attempt < 2:
                    continue
                if proc.alive():
                    proc.kill()
                raise
        raise AssertionError("unreachable")

    def start_broker(self) -> Proc:
        self.broker = self._start("broker", "inferq-broker")
        return self.broker

    def start_worker(self, worker: dict | None = None, kafka_properties: dict | None = None) -> Proc:
        w = self._start("worker", "inferq-worker", worker=worker,
                        kafka_properties=kafka_properties)
        self.workers.append(w)
        return w

    def start(self):
        self.start_broker()
        self.start_worker()
        return self

    def check_alive(self, when: str = ""):
        """Raises when the broker or a worker that nobody stopped has exited."""
        for p in [self.broker, *self.workers]:
            if p is not None and p.exit_code is None and p.returncode is not None:
                raise AssertionError(f"{p.name} ({Path(p.argv[0]).name}) exited with "
                                     f"{p.returncode} {when}; log tail:\n{p.tail(25)}")

    def stop(self) -> dict:
        """Stops everything with SIGTERM; returns {name: exit code}."""
        codes = {}
        for p in [*self.workers, self.broker]:
            if p is not None and p.exit_code is None:
                codes[p.name] = p.stop(60)
        return codes


# --------------------------------------------------------------------------
# Kafka: producing and reading


@dataclass
class Delivered:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class Produce:
    """A confluent_kafka.Producer that remembers where each message landed."""

    def __init__(self, bootstrap: str, **conf):
        c = {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
             "message.max.bytes": 16 * 1024 * 1024, "compression.type": "none"}
        c.update(conf)
        self.p = Producer(c)
        self.errors: list[str] = []

    def send(self, topic: str, value, key=None, headers=None) -> list:
        """Queues one message; returns a one-element list filled with a
        Delivered after flush()."""
        if isinstance(value, (dict, list)):
            value = json.dumps(value).encode()
        elif isinstance(value, str):
            value = value.encode()
        if isinstance(key, str):
            key = key.encode()
        slot: list = []

        def cb(err, msg, slot=slot, value=value, key=key):
            if err is not None:
                self.errors.append(str(err))
                slot.append(err)
            else:
                ts = msg.timestamp()[1]
                slot.append(Delivered(msg.topic(), msg.partition(), msg.offset(), ts, key, value))

        while True:
            try:
                self.p.produce(topic, value=value, key=key, headers=headers, on_delivery=cb)
                break
            except BufferError:
                self.p.poll(0.05)
        self.p.poll(0)
        return slot

    def flush(self, timeout: float = 60.0):
        left = self.p.flush(timeout)
        assert left == 0, f"{left} message(s) not delivered within {timeout}s"
        assert not self.errors, f"delivery failed: {self.errors[:5]}"


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict
    timestamp: int
    received_mono: float
    _json: object = field(default=None, repr=False)

    @property
    def json(self):
        if self._json is None and self.value:
            try:
                self._json = json.loads(self.value)
            except ValueError:
                self._json = False
        return self._json or None

    def header(self, name: str) -> str | None:
        v = self.headers.get(name)
        return v.decode("utf-8", "replace") if v is not None else None


def ensure_topic(bootstrap: str, topic: str, partitions: int = 4, timeout: float = 30.0):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                             operation_timeout=timeout)
    for _, f in fs.items():
        try:
            f.result(timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def serve_teams(g: "Gateway", teams: Iterable[str]):
    """For a module fixture: creates the request topics of teams, starts g's
    broker and one worker, yields g, and stops it at the end, where every
    program must exit 0."""
    for team in teams:
        ensure_topic(g.env.bootstrap, f"{g.requests}.{team}", 4)
    g.start_broker()
    g.start_worker()
    yield g
    codes = g.stop()
    assert all(rc == 0 for rc in codes.values()), codes


class TopicReader:
    """Reads one or more topics from their high watermarks as they were when
    the reader was created (assign, no group). Create it BEFORE producing:
    nothing produced afterwards can be missed."""

    def __init__(self, bootstrap: str, topics: str | list[str], timeout: float = 60.0,
                 watch: "Gateway | None" = None):
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.watch = watch  # fail at once when its broker or a worker dies
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("e2e-reader-"),
                           "enable.auto.commit": False, "enable.partition.eof": False,
                           "fetch.wait.max.ms": 20, "fetch.min.bytes": 1,
                           "receive.message.max.bytes": 200 * 1024 * 1024,
                           "isolation.level": "read_committed"})
        self.records: list[Record] = []
        tps = []
        for topic in self.topics:
            def partitions():
                md = self.c.list_topics(topic, timeout=5)
                t = md.topics.get(topic)
                if t is None or t.error is not None or not t.partitions:
                    return None
                if any(p.leader < 0 for p in t.partitions.values()):
                    return None
                return sorted(t.partitions)

            parts = wait_until(partitions, timeout, f"topic {topic} to exist", 0.2)
            for p in parts:
                def hw(p=p):
                    try:
                        return self.c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                    except KafkaException:
                        return None

                lo, hi = wait_until(hw, timeout, f"watermarks of {topic}[{p}]", 0.2)
                tps.append(TopicPartition(topic, p, hi))
        self.start_offsets = {(tp.topic, tp.partition): tp.offset for tp in tps}
        self.c.assign(tps)

    def poll(self, timeout: float = 0.2) -> int:
        msgs = self.c.consume(num_messages=5000, timeout=timeout)
        n = 0
        t = time.monotonic()
        for m in msgs:
            if m.error():
                continue
            self.records.append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                                       {k: v for k, v in (m.headers() or [])},
                                       m.timestamp()[1], t))
            n += 1
        return n

    def wait(self, cond: Callable[[], object], timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            self.poll(0.1)
            if self.watch is not None:
                self.watch.check_alive(f"while waiting for {what}")
            v = cond()
            if v:
                return v
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def close(self):
        self.c.close()


class ReplyCollector(TopicReader):
    """Collects result lines by custom_id."""

    def by_id(self) -> dict:
        out: dict = {}
        for r in self.records:
            j = r.json
            if isinstance(j, dict) and isinstance(j.get("custom_id"), str):
                out.setdefault(j["custom_id"], []).append(r)
        return out

    def results(self, custom_ids: Iterable[str], timeout: float = 60.0) -> dict:
        """Waits until every custom_id has a result; returns {custom_id:
        result dict} (the first result of each)."""
        want = set(custom_ids)

        def done():
            got = self.by_id()
            return want.issubset(got.keys())

        try:
            self.wait(done, timeout, f"{len(want)} result(s)")
        except AssertionError:
            got = self.by_id()
            missing = sorted(want - got.keys())
            raise AssertionError(f"no result within {timeout:.0f}s for {len(missing)} of "
                                 f"{len(want)} request(s), e.g. {missing[:10]}") from None
        got = self.by_id()
        return {cid: got[cid][0].json for cid in want}

    def counts(self, custom_ids: Iterable[str]) -> dict:
        got = self.by_id()
        return {cid: len(got.get(cid, [])) for cid in custom_ids}


# --------------------------------------------------------------------------
# requests


def chat(custom_id: str, text: str, model: str = "chat-default", **extra) -> dict:
    r = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": model, "messages": [{"role": "user", "content": text}],
                  "max_tokens": 16}}
    r.update(extra)
    return r


def embed(custom_id: str, text: str, model: str = "embed-default", **extra) -> dict:
    r = {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
         "body": {"model": model, "input": text}}
    r.update(extra)
    return r


def send_chats(gw: "Gateway", ids: Iterable[str], text: str = "hello"):
    """Produces one chat request per custom_id in ids to gw's request topic,
    keyed by it, whose message is text and the id."""
    p = Produce(gw.env.bootstrap)
    for cid in ids:
        p.send(gw.requests, chat(cid, f"{text} {cid}"), key=cid)
    p.flush()


def content_of(result: dict) -> str:
    return result["response"]["body"]["choices"][0]["message"]["content"]


def describe(result: dict) -> str:
    """Short text of a result for assertion messages."""
    if not isinstance(result, dict):
        return repr(result)
    ext = result.get("inferq") or {}
    return json.dumps({"custom_id": result.get("custom_id"), "status": ext.get("status"),
                       "error": result.get("error"), "attempts": ext.get("attempts")})[:1500]
