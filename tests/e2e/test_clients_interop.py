"""
Every client speaks the same contract: one OpenAI batch input file (OpenAI's
documented example lines, chat lines with different options, embeddings, a
legacy completion and a line for a model nobody serves) goes through kcat
(plain JSON lines on the request topic), the `inferq` CLI (JSON and Avro),
the C client library (its batch_file example) and the Python package (its
batch_file.py example). Each client gets its own gateway (topic prefix and
Redis keys), all of them the same fake model, and the five sets of results
must be equivalent: the same custom_ids, statuses, error codes, HTTP status,
answers and token usage.
"""
import json
import subprocess

import pytest

from ifq_e2e import ROOT, ReplyCollector, deployment

TIMEOUT_S = 120  # generous: CI runs this with the ASan build


def batch_lines() -> list[dict]:
    lines = [json.loads(l) for l in
             (ROOT / "tests/e2e/data/openai_batch_example.jsonl").read_text().splitlines() if l]
    for i in range(12):
        body = {"model": "chat-default",
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": f"question {i}: " + "why " * i}]}
        if i % 3 == 0:
            body["max_tokens"] = 16 + i
        if i % 4 == 1:
            body["temperature"] = 0.2
        lines.append({"custom_id": f"chat-{i}", "method": "POST",
                      "url": "/v1/chat/completions", "body": body})
    for i in range(3):
        lines.append({"custom_id": f"embed-{i}", "method": "POST", "url": "/v1/embeddings",
                      "body": {"model": "embed-default", "input": f"text number {i}"}})
    lines.append({"custom_id": "complete-0", "method": "POST", "url": "/v1/completions",
                  "body": {"model": "chat-default", "prompt": "Once upon a time"}})
    lines.append({"custom_id": "nobody-serves-it", "method": "POST",
                  "url": "/v1/chat/completions",
                  "body": {"model": "no-such-model",
                           "messages": [{"role": "user", "content": "hello?"}]}})
    return lines


def normalise(res: dict):
    """What must be equal whichever client carried the request."""
    resp = res.get("response") or {}
    body = resp.get("body") or {}
    answer = None
    if body.get("object") == "chat.completion":
        answer = body["choices"][0]["message"]["content"]
    elif body.get("object") == "text_completion":
        answer = body["choices"][0]["text"]
    elif body.get("object") == "list":
        answer = [round(x, 6) for x in body["data"][0]["embedding"]]
    usage = body.get("usage") or {}
    return {"status": res["inferq"]["status"],
            "error": (res.get("error") or {}).get("code"),
            "status_code": resp.get("status_code"),
            "model": body.get("model"),
            "answer": answer,
            "usage": (usage.get("prompt_tokens"), usage.get("completion_tokens"))}


def read_results(*paths) -> dict:
    out = {}
    for p in paths:
        if not p.exists():
            continue
        for line in p.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                assert r["custom_id"] not in out, f"{r['custom_id']} twice in {p}"
                out[r["custom_id"]] = r
    return out


@pytest.fixture(scope="module")
def input_file(workdir):
    p = workdir / "interop.jsonl"
    p.write_text("".join(json.dumps(l) + "\n" for l in batch_lines()))
    return p


@pytest.fixture(scope="module")
def gateway(make_gateway, fake):
    def make():
        g = make_gateway(
            deployments={"fake-chat": deployment(fake.base_url, "fake-chat"),
                         "fake-embed": deployment(fake.base_url, "fake-embed")},
            aliases={"gpt-3.5-turbo-0125": ["fake-chat"], "chat-default": ["fake-chat"],
                     "embed-default": ["fake-embed"]})
        g.start_worker()
        return g
    return make


def via_kcat(gw, src, tmp_path):
    ids = [l["custom_id"] for l in batch_lines()]
    replies = ReplyCollector(gw.env.bootstrap, gw.replies, watch=gw)
    try:
        with open(src, "rb") as f:
            subprocess.run(["kcat", "-P", "-b", gw.env.bootstrap, "-t", gw.requests],
                           stdin=f, check=True, timeout=60)
        return replies.results(ids, timeout=TIMEOUT_S)
    finally:
        replies.close()


def via_cli(gw, src, tmp_path, avro=False):
    out, err = tmp_path / "cli.out.jsonl", tmp_path / "cli.err.jsonl"
    argv = [gw.env.bin("inferq"), "--config", str(gw.cli_config), *(["--avro"] if avro else []),
            "batch", "run", str(src), "-o", str(out), "--errors", str(err),
            "--timeout", str(TIMEOUT_S)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S + 60,
                       env=gw.env.child_env())
    assert r.returncode == 1, f"exit {r.returncode} (one request must fail): {r.stderr}"
    return read_results(out, err)


def via_c(gw, src, tmp_path):
    out = tmp_path / "c.out.jsonl"
    argv = [gw.env.bin("inferq-example-batch_file"), "-b", gw.env.bootstrap, "-p", gw.prefix,
            "-t", str(TIMEOUT_S * 1000), str(src), str(out)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S + 60,
                       env=gw.env.child_env())
    assert r.returncode == 1, f"exit {r.returncode} (one request must fail): {r.stderr}"
    return read_results(out)


def via_python(gw, src, tmp_path):
    out = tmp_path / "py.out.jsonl"
    env = gw.env.child_env({"PYTHONPATH": str(ROOT / "clients/python/src")})
    argv = ["python3", str(ROOT / "clients/python/examples/batch_file.py"), str(src), str(out),
            "--bootstrap", gw.env.bootstrap, "--prefix", gw.prefix, "--timeout", str(TIMEOUT_S)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S + 60, env=env)
    assert r.returncode == 1, f"exit {r.returncode} (one request must fail): {r.stderr}"
    return read_results(out)


def test_every_client_gets_equivalent_results(gateway, input_file, tmp_path_factory):
    ids = {l["custom_id"] for l in batch_lines()}
    clients = {"kcat": via_kcat, "cli": via_cli,
               "cli-avro": lambda g, s, t: via_cli(g, s, t, avro=True),
               "c": via_c, "python": via_python}
    seen = {}
    for name, run in clients.items():
        gw = gateway()
        got = run(gw, input_file, tmp_path_factory.mktemp(name))
        assert set(got) == ids, f"{name}: missing {sorted(ids - set(got))}"
        seen[name] = {cid: normalise(r) for cid, r in got.items()}

    ref = seen["kcat"]
    assert ref["request-1"]["status"] == "succeeded" and ref["request-1"]["answer"] == \
        "echo: Hello world!", ref["request-1"]
    assert ref["nobody-serves-it"]["error"] == "model_not_found", ref["nobody-serves-it"]
    assert ref["embed-0"]["answer"] and ref["complete-0"]["answer"] == "echo: Once upon a time"
    assert sum(1 for v in ref.values() if v["status"] == "succeeded") == len(ids) - 1
    for name, results in seen.items():
        diff = {cid: (ref[cid], results[cid]) for cid in ids if results[cid] != ref[cid]}
        assert not diff, f"{name} differs from kcat: {json.dumps(diff, indent=1)[:3000]}"
