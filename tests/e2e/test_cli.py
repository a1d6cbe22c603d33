"""
The inferq CLI against a private broker and worker: submit (JSON and Avro),
status, an unknown model, and `batch run` of a 1,000-line batch file, checked
against the fake model's own request counts.
"""
import json
import subprocess
import time

import pytest

from ifq_e2e import (TopicReader, chat, content_of, deployment, describe, embed, unique,
                     wait_until)


@pytest.fixture(scope="module")
def gw(make_gateway, fake):
    g = make_gateway(
        deployments={"fake-chat": deployment(fake.base_url, "fake-chat"),
                     "fake-embed": deployment(fake.base_url, "fake-embed")},
        aliases={"chat-default": ["fake-chat"], "embed-default": ["fake-embed"]},
        worker={"max_inflight": 256})
    g.start_worker()
    return g


def cli(gw, *args, timeout=120, stdin=None):
    argv = [gw.env.bin("inferq"), "--config", str(gw.cli_config), *args]
    p = subprocess.run(argv, capture_output=True, timeout=timeout, env=gw.env.child_env(),
                       input=stdin)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def test_submit_prints_result_and_status_shows_it(gw):
    cid = unique("cli-")
    t0 = int(time.time() * 1000)
    rc, out, err = cli(gw, "submit", "--message", "hi", "--custom-id", cid, "--timeout", "60")
    assert rc == 0, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    res = json.loads(out)
    assert res["custom_id"] == cid
    assert res["error"] is None, describe(res)
    assert res["inferq"]["status"] == "succeeded"
    assert content_of(res) == "echo: hi"

    # The final state is written to Redis after the result is durable, so it
    # may land a moment after the CLI has printed the result.
    def status():
        rc, out, err = cli(gw, "status", cid, timeout=30)
        if rc != 0:
            return None
        st = json.loads(out)
        return st if st.get("state") == "succeeded" else None

    st = wait_until(status, 20, f"inferq status {cid} to say succeeded", 0.2)
    assert st["id"] == res["id"]
    now = int(time.time() * 1000) + 1000
    for k in ("routed_ms", "running_ms", "succeeded_ms"):
        assert isinstance(st.get(k), int), f"{k} missing in {st}"
        assert t0 - 1000 <= st[k] <= now, f"{k}={st[k]} not within the test's time"
    assert st["routed_ms"] <= st["running_ms"] <= st["succeeded_ms"], st


def test_submit_unknown_model_fails_with_model_not_found(gw):
    cid = unique("cli-nomodel-")
    rc, out, err = cli(gw, "submit", "--model", "no-such-model", "--message", "hi",
                       "--custom-id", cid, "--timeout", "60")
    assert rc == 1, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    res = json.loads(out)
    assert res["custom_id"] == cid
    assert res["response"] is None
    assert res["error"]["code"] == "model_not_found", describe(res)
    assert "no-such-model" in res["error"]["message"]


def test_submit_avro_travels_as_avro(gw):
    cid = unique("cli-avro-")
    reqs = TopicReader(gw.env.bootstrap, gw.requests, watch=gw)
    routed = TopicReader(gw.env.bootstrap, gw.topic("model.fake-chat"), watch=gw)
    try:
        rc, out, err = cli(gw, "submit", "--avro", "--message", "hello avro", "--custom-id", cid,
                           "--timeout", "60")
        assert rc == 0, f"exit {rc}\nstdout: {out}\nstderr: {err}"
        res = json.loads(out)
        assert res["inferq"]["status"] == "succeeded", describe(res)
        assert content_of(res) == "echo: hello avro"

        mine = reqs.wait(lambda: [r for r in reqs.records if r.key == cid.encode()], 30,
                         "the request on the requests topic")
        raw = mine[0].value
        # Avro single-object encoding (C3 01 + fingerprint) or Confluent framing (00 + id)
        assert raw[:2] == b"\xc3\x01" or raw[:1] == b"\x00", f"not Avro: {raw[:40]!r}"
        assert cid.encode() in raw
        # and the broker decoded it as Avro
        r = routed.wait(lambda: [r for r in routed.records
                                 if r.json and r.json.get("custom_id") == cid], 30,
                        "the routed request")
        assert r[0].json["inferq"]["encoding"] == "avro"
    finally:
        reqs.close()
        routed.close()


def test_batch_run_1000_lines(gw, fake, tmp_path):
    n_chat, n_embed = 700, 300
    tag = unique("b")
    lines, ids = [], []
    for i in range(n_chat + n_embed):
        cid = f"{tag}-{i:04d}"
        ids.append(cid)
        if i % 10 < 7:
            lines.append(chat(cid, f"line {i}"))
        else:
            lines.append(embed(cid, f"embed line {i}"))
    assert sum(1 for l in lines if l["url"] == "/v1/embeddings") == n_embed
    inp = tmp_path / "batch.jsonl"
    outp = tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(l) + "\n" for l in lines))
    fake.reset()
    rc, out, err = cli(gw, "batch", "run", str(inp), "-o", str(outp), "--timeout", "180",
                       timeout=240)
    assert rc == 0, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    text = outp.read_text()
    out_lines = text.splitlines()
    assert len(out_lines) == 1000, f"{len(out_lines)} lines in the output file"
    results = [json.loads(l) for l in out_lines]
    seen = {}
    for r in results:
        seen[r["custom_id"]] = seen.get(r["custom_id"], 0) + 1
    assert set(seen) == set(ids)
    assert all(v == 1 for v in seen.values()), {k: v for k, v in seen.items() if v != 1}
    bad = [describe(r) for r in results if r["error"] is not None or
           r["inferq"]["status"] != "succeeded"]
    assert not bad, f"{len(bad)} not succeeded, e.g. {bad[:3]}"
    for r in results:
        i = int(r["custom_id"].rsplit("-", 1)[1])
        body = r["response"]["body"]
        if i % 10 < 7:
            assert body["choices"][0]["message"]["content"] == f"echo: line {i}"
        else:
            assert body["object"] == "list" and body["data"][0]["object"] == "embedding"

    # Each request reached the model exactly once.
    st = wait_until(lambda: (lambda s: s if s["in_flight"] == 0 else None)(fake.stats()), 10,
                    "the fake model to be idle")
    assert st["requests"] == 1000, st
    assert st["by_path"].get("/v1/chat/completions") == n_chat, st["by_path"]
    assert st["by_path"].get("/v1/embeddings") == n_embed, st["by_path"]
