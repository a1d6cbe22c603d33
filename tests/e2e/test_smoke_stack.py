"""
Smoke test of the stack's own broker and worker: a plain OpenAI batch line
piped into inferq.requests with kcat (no headers, no key) comes back as a
result line on inferq.replies.
"""
import json
import shutil
import subprocess

import pytest

from ifq_e2e import ReplyCollector, chat, content_of, describe, unique


def test_kcat_batch_line_gets_a_result(stack_env):
    if stack_env.values.get("INFERQ_PROGRAMS") == "0":
        pytest.skip("the stack runs without its broker and worker (--no-programs)")
    kcat = shutil.which("kcat")
    assert kcat, "kcat not installed (deploy/install-deps.sh)"
    cid = unique("smoke-")
    text = f"hello from the smoke test {cid}"
    line = json.dumps(chat(cid, text))
    replies = ReplyCollector(stack_env.bootstrap, "inferq.replies")
    try:
        p = subprocess.run([kcat, "-P", "-b", stack_env.bootstrap, "-t", "inferq.requests"],
                           input=(line + "\n").encode(), capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        res = replies.results([cid], timeout=60)[cid]
    finally:
        replies.close()
    assert res["error"] is None, describe(res)
    assert res["response"]["status_code"] == 200, describe(res)
    assert content_of(res) == f"echo: {text}"
    assert res["inferq"]["status"] == "succeeded"
    assert res["id"].startswith("ifq_")
