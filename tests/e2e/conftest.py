"""
Fixtures of inferq's end-to-end suite.

The suite runs against a stack started with `deploy/local/stack.sh up`
(tests/run.sh does that with real Apache Kafka). It reads the stack's
addresses from deploy/local/.run/env (INFERQ_E2E_ENV names another env file
in the same KEY=VALUE format). When the file is missing the suite is skipped,
unless INFERQ_E2E_REQUIRED is set: then every test fails.

Apart from test_smoke_stack.py, every module runs its own inferq-broker and
inferq-worker (from $INFERQ_BUILD_DIR/bin, else the env file's
INFERQ_BUILD_DIR, else build/bin) with a unique topic prefix and group ids;
see ifq_e2e.Gateway. Their logs go to pytest's tmp dir and the tails of the
module's logs are attached to every failure report.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import ifq_e2e
from ifq_e2e import ALL_PROCS, ROOT, FakeModel, Gateway, env_file_path, load_stack_env


@pytest.fixture(scope="session")
def stack_env():
    path = env_file_path()
    env = load_stack_env()
    if env is None:
        msg = (f"{path} not found: start the stack first "
               "(deploy/local/stack.sh up --kafka real), or run tests/run.sh")
        if os.environ.get("INFERQ_E2E_REQUIRED"):
            pytest.fail(f"INFERQ_E2E_REQUIRED is set but {msg}", pytrace=False)
        pytest.skip(msg)
    for b in ("inferq-broker", "inferq-worker", "inferq", "inferq-fake-model"):
        if not Path(env.bin(b)).is_file():
            pytest.fail(f"{env.bin(b)} not found: build first (INFERQ_BUILD_DIR={env.build_dir})",
                        pytrace=False)
    return env


@pytest.fixture(scope="module")
def workdir(request, tmp_path_factory):
    return tmp_path_factory.mktemp(request.module.__name__.replace("test_", ""))


@pytest.fixture(scope="module")
def fake(request, stack_env, workdir):
    """A module's own fake model server (its log: <workdir>/fake.log)."""
    f = FakeModel(stack_env, workdir, "fake", group=request.module.__name__)
    yield f
    f.stop()


@pytest.fixture(scope="module")
def make_gateway(request, stack_env, workdir):
    """make_gateway(**Gateway kwargs) starts a module's own inferq-broker (the
    test starts workers). At the module's end every program gets SIGTERM and
    must exit 0."""
    made: list[Gateway] = []

    def make(**kw) -> Gateway:
        gw = Gateway(stack_env, workdir / f"gw{len(made)}", group=request.module.__name__, **kw)
        made.append(gw)
        gw.start_broker()
        return gw

    yield make
    bad = {}
    for gw in made:
        # programs that died on their own before the end (a test has already
        # failed for that, this makes sure it is not missed)
        early = {p.name for p in [gw.broker, *gw.workers]
                 if p is not None and p.exit_code is None and p.returncode is not None}
        for name, rc in gw.stop().items():
            if rc != 0:
                how = "had exited by itself before teardown with" if name in early else \
                    "exited after SIGTERM with"
                bad[name] = (f"{name} {how} {rc}", gw.workdir / f"{name}.log")
    assert not bad, ("; ".join(m for m, _ in bad.values()) + "\n" +
                     "\n".join(f"--- {n}\n{ifq_e2e.tail(log, 30)}" for n, (_, log) in bad.items()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    group = item.module.__name__ if item.module else ""
    shown = 0
    for p in ALL_PROCS:
        if p.group == group and shown < 8:
            rep.sections.append((f"tail of {p.name} log ({p.log}), exit {p.returncode}",
                                 p.tail(30)))
            shown += 1
    if group == "test_smoke_stack":
        run = ROOT / "deploy" / "local" / ".run"
        for name in ("broker.log", "worker.log", "fake-model.log"):
            f = run / name
            if f.is_file():
                rep.sections.append((f"tail of stack {f}", ifq_e2e.tail(f, 30)))
