"""
The broker's dashboard in a real browser: Debian's headless Chromium driven
over the DevTools protocol (websocket-client) against the module's own
gateway on real Kafka and Redis.

The test sends requests that succeed, one that is rejected and one with PII
under a redact policy, then waits (polling with a deadline) until the page
shows them: throughput > 0, a backlog row for the model, health rows, the
team's spend; types a custom_id into the search box and sees the request's
state and its waterfall (synthetic spans, tests/e2e/otlp_synth.py); opens a
deep link; saves a screenshot outside the repository's tracked files
(deploy/local/.run/, gitignored); and checks that the page made no request
to another origin. The JSON API is checked directly as well.
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import websocket

from ifq_e2e import (ROOT, Produce, ReplyCollector, chat, deployment, describe, free_port,
                     http_get, unique, wait_until)
from otlp_synth import request_state

CHROMIUM = "/usr/bin/chromium"
TEAM = "dash-team"
SCREENSHOT = ROOT / "deploy" / "local" / ".run" / "dashboard-e2e.png"


class Browser:
    """Headless Chromium and one page, over the DevTools protocol."""

    def __init__(self, workdir):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="ifq-chrome-", dir=workdir)
        self.log = open(os.path.join(workdir, "chromium.log"), "w")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={self.profile}", "--window-size=1400,1300",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--metrics-recording-only", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)

        def page_target():
            st, body = http_get(f"http://127.0.0.1:{self.port}/json/list", timeout=1)
            if st != 200:
                return None
            pages = [t for t in json.loads(body) if t.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        ws_url = wait_until(page_target, 60, "chromium's DevTools endpoint")
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.send("Page.enable")
        self.send("Network.enable")
        self.send("Runtime.enable")

    def send(self, method, params=None, timeout=30):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise AssertionError(f"{method}: no answer in {timeout}s")

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise AssertionError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, what, timeout=90):
        return wait_until(lambda: self.eval(expr), timeout, what, interval=0.25)

    def navigate(self, url):
        self.send("Page.navigate", {"url": url})

    def requested_urls(self):
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, path):
        r = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(r["data"]))

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def gw(make_gateway, stack_env):
    g = make_gateway(
        deployments={"fake-chat": deployment(stack_env.fake_url, price_input_per_mtok=1000,
                                             price_output_per_mtok=2000)},
        aliases={"chat-default": ["fake-chat"]},
        extra={"teams": {TEAM: {"models": ["*"], "guardrail_policy": "dash"}},
               "broker": {"default_team": TEAM},
               "guardrails": {"policies": {"dash": {"scope": "all",
                                                    "detectors": {"pii": "redact"}}}}})
    g.start_worker()
    return g


@pytest.fixture(scope="module")
def admin(gw):
    return f"http://127.0.0.1:{gw.broker.admin_port}"


@pytest.fixture(scope="module")
def traffic(gw):
    """Requests the page must show: 6 answered (one with an e-mail address
    under the redact policy), one rejected (unknown model). Returns their
    custom_ids by kind."""
    ok = [unique("dash-ok-") for _ in range(5)]
    pii = unique("dash-pii-")
    bad = unique("dash-bad-")
    reqs = [chat(c, "hello") for c in ok] + [chat(pii, "mail me at jane.doe@example.com"),
                                             chat(bad, "hello", model="no-such-model")]
    replies = ReplyCollector(gw.env.bootstrap, gw.replies)
    try:
        p = Produce(gw.env.bootstrap)
        for r in reqs:
            p.send(gw.requests, r, key=r["custom_id"])
        p.flush()
        res = replies.results([r["custom_id"] for r in reqs], timeout=90)
    finally:
        replies.close()
    for c in ok + [pii]:
        assert res[c]["inferq"]["status"] == "succeeded", describe(res[c])
    assert res[bad]["error"]["code"] == "model_not_found", describe(res[bad])
    return {"ok": ok, "pii": pii, "bad": bad}


@pytest.fixture(scope="module")
def browser(workdir):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (deploy/install-deps.sh installs it)")
    b = Browser(str(workdir))
    yield b
    b.close()


def api(admin, path):
    st, body = http_get(admin + path, timeout=30)
    return st, json.loads(body) if body else None


def test_the_api_answers_with_real_data(admin, traffic, gw):
    def overview():
        st, o = api(admin, "/api/overview")
        assert st == 200, o
        return o if o["throughput"]["total"]["n"] >= 7 else None

    o = wait_until(overview, 60, "the stats buckets to count 7 final states")
    tp = o["throughput"]["total"]
    assert tp["succeeded"] >= 6 and tp["rejected"] >= 1
    assert tp["lat_count"] >= 7 and tp["lat_avg_ms"] > 0 and tp["lat_p95_ms"] > 0
    assert o["prefix"] == gw.prefix
    assert [r["deployment"] for r in o["backlog"]] == ["fake-chat"]
    assert o["backlog"][0]["partitions"] == 3 * 4 and "error" not in o["backlog"][0]
    assert o["health"][0]["circuit"] == "closed" and o["health"][0]["aliases"] == ["chat-default"]
    team = {t["team"]: t for t in o["spend"]["teams"]}[TEAM]
    assert team["requests"] >= 6 and team["output_tokens"] > 0 and team["cost_usd"] > 0
    assert isinstance(o["guardrails"], list)

    st, r = api(admin, "/api/request?custom_id=" + urllib.parse.quote(traffic["bad"]))
    assert st == 200 and r["state"]["state"] == "rejected"
    assert r["state"]["error_code"] == "model_not_found"
    assert api(admin, "/api/request?custom_id=" + unique("nope-"))[0] == 404
    assert api(admin, "/api/request")[0] == 400
    assert api(admin, "/api/nothing")[0] == 404
    st, page = http_get(admin + "/dashboard")
    assert st == 200 and b"<title>inferq dashboard</title>" in page
    # self-contained: nothing is loaded from elsewhere
    for needle in (b"<script src", b"<link rel=\"stylesheet\"", b"@import", b"url(http"):
        assert needle not in page


def test_the_page_shows_the_gateway_and_finds_a_request(browser, admin, traffic, gw):
    cid = traffic["ok"][0]
    st = request_state(gw.env.redis_url, gw.prefix, cid)

    browser.navigate(admin + "/")
    browser.wait("document.readyState === 'complete'", "the page to load")
    n = browser.wait(
        "(() => { const n = parseInt(document.getElementById('throughput-total')"
        ".textContent.replace(/,/g, ''), 10); return n >= 7 ? n : null; })()",
        "throughput > 0 on the page")
    assert n >= 7
    browser.wait("document.querySelectorAll('#tp-chart rect').length > 0", "the throughput chart")
    browser.wait("document.querySelectorAll('#lat-chart circle').length > 0", "the latency chart")
    assert browser.wait(
        "(document.querySelector('#backlog-table tr[data-deployment=\"fake-chat\"]') || {})"
        ".textContent", "the model's backlog row").startswith("fake-chat")
    assert browser.wait(
        "(document.querySelector('#health-table tr[data-deployment=\"fake-chat\"] .pill') "
        "|| {}).textContent", "the model's health row") == "closed"
    requests = browser.wait(
        f"(() => {{ const r = document.querySelector('#spend-table tr[data-team=\"{TEAM}\"]');"
        " return r ? parseInt(r.children[1].textContent.replace(/,/g, ''), 10) : null; })()",
        "the team's spend row")
    assert requests >= 6
    assert browser.eval(
        f"document.querySelector('#spend-table tr[data-team=\"{TEAM}\"]').children[4]"
        ".textContent").startswith("$")
    # Guardrail findings come from the broker's own metrics: the requests
    # carried PII under a redact policy, so there is a row with a count.
    st_m, metrics = http_get(admin + "/metrics")
    assert b"inferq_guardrail_findings_total{" in metrics, "the broker exports no findings"
    browser.wait("document.querySelectorAll('#guardrails tbody tr').length > 0",
                 "a guardrail findings row")
    n = browser.eval("Array.from(document.querySelectorAll('#guardrails tbody tr'))"
                     ".map(r => parseInt(r.children[3].textContent.replace(/,/g, ''), 10))"
                     ".reduce((a, b) => a + b, 0)")
    assert n >= 1, n

    # The search box: type the custom_id and press Enter.
    browser.eval("document.getElementById('search-input').focus()")
    browser.send("Input.insertText", {"text": cid})
    for kind in ("keyDown", "keyUp"):
        browser.send("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                "windowsVirtualKeyCode": 13, "text": "\r"})
    state = browser.wait(
        "(document.querySelector('#request-state [data-state]') || {dataset: {}}).dataset.state",
        "the request's state in the search panel")
    assert state == "succeeded"
    assert browser.eval("location.hash") == "#/request/" + cid
    assert browser.eval("document.getElementById('request-state').textContent").count(
        st["trace_id"]) == 1
    # The waterfall of the spans the broker and the worker really wrote: one
    # tree, the broker's root first, the queue wait, the worker and one
    # GenAI span for its single provider attempt, with its token counts.
    names = browser.wait(
        "(() => { const r = [...document.querySelectorAll('#waterfall .wf-row.span .wf-name')];"
        " const n = r.map(x => x.textContent);"
        " return n.includes('worker.request') && n.some(x => x.startsWith('chat ')) ? n : null;"
        " })()", "the waterfall", timeout=60)
    assert names[0] == "broker.request", names
    for stage in ("queue.wait", "worker.request"):
        assert names.count(stage) == 1, names
    assert sum(1 for n in names if n.startswith("chat ")) == 1, names
    assert browser.eval("document.querySelectorAll('#waterfall .wf-bar.error').length") == 0
    assert "gen_ai.usage.output_tokens=" in browser.eval(
        "document.getElementById('waterfall').textContent")
    browser.screenshot(SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 10_000

    # A deep link to the rejected request.
    browser.navigate(admin + "/#/request/" + urllib.parse.quote(traffic["bad"]))
    state = browser.wait(
        "(() => { const e = document.querySelector('#request-state [data-state]');"
        " return e && document.getElementById('request-id').textContent === "
        f"{json.dumps(traffic['bad'])} ? e.dataset.state : null; }})()",
        "the deep-linked request's state")
    assert state == "rejected"
    # An unknown id says so.
    browser.eval("document.getElementById('search-input').value = 'no-such-request-xyz';"
                 "document.getElementById('search-form').requestSubmit()")
    assert browser.wait(
        "(document.querySelector('#request-state [data-state=\"unknown\"]') || {})"
        ".textContent", "the not-found message").startswith("no such request")

    # Every request the page made went to the admin port itself.
    browser.send("Runtime.evaluate", {"expression": "1"})  # drain pending events
    urls = browser.requested_urls()
    assert any(u.startswith(admin + "/api/overview") for u in urls), urls
    origin = admin + "/"
    foreign = [u for u in urls if not (u.startswith(origin) or u.startswith("data:"))]
    assert not foreign, foreign
