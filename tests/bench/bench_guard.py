#!/usr/bin/env python3
"""bench_guard.py - guardrail scan throughput, and Presidio on the same text
in the same run.

Corpora (built from the shared guardrail data, written to --work):
  prose  the benign prompts of jailbreak_train.csv: ordinary requests, no
         PII to speak of
  dense  the sentences of pii_synth_dataset_v2.json: PII in almost every line

Both are cut into messages of --msg-bytes (default 2048) at whitespace and
scanned one message at a time, as the broker would. `inferq guard bench`
reports MB/s per core (thread CPU time) with the chosen policy (default: the
built-in default policy, which runs every detector and the injection model).

With --presidio-python (a Python with presidio-analyzer installed), the same
messages go through Presidio's pattern recognizers (credit card, email,
IBAN, IP, US SSN, crypto, MAC, and the phonenumbers-based phone recognizer;
no NLP model) and the ratio is printed. Example:

  python3 -m venv /tmp/presidio && /tmp/presidio/bin/pip install presidio-analyzer
  tests/bench/bench_guard.py --inferq build/bin/inferq --presidio-python /tmp/presidio/bin/python
"""
import argparse
import csv
import json
import os
import subprocess
import sys

PRESIDIO_RUNNER = r'''
import sys, time, json
from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer,
    IbanRecognizer, IpRecognizer, UsSsnRecognizer, CryptoRecognizer, PhoneRecognizer)
recs = [CreditCardRecognizer(), EmailRecognizer(), IbanRecognizer(), IpRecognizer(),
        UsSsnRecognizer(), CryptoRecognizer(), PhoneRecognizer()]
try:
    from presidio_analyzer.predefined_recognizers import MacAddressRecognizer
    recs.append(MacAddressRecognizer())
except ImportError:
    pass
msgs = json.load(open(sys.argv[1]))
seconds = float(sys.argv[2])
total = 0
found = 0
t0 = time.thread_time()
passes = 0
while True:
    for m in msgs:
        for r in recs:
            found += len(r.analyze(m, r.supported_entities, None))
        total += len(m.encode())
    passes += 1
    el = time.thread_time() - t0
    if el >= seconds:
        break
print(json.dumps({"mb_per_s": total / el / 1e6, "cpu_s": el, "passes": passes,
                  "findings_per_pass": found // passes, "recognizers": len(recs)}))
'''


def split_messages(text, n):
    out = []
    s = 0
    while s < len(text):
        e = min(s + n, len(text))
        while e < len(text) and e < s + n + 256 and text[e] not in " \n":
            e += 1
        out.append(text[s:e])
        s = e
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inferq", default="build/bin/inferq")
    ap.add_argument("--config", help="inferq config with guardrails policies")
    ap.add_argument("--policy", help="policy name (default: default)")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                   "shared", "data", "guardrails"))
    ap.add_argument("--work", default="/tmp/inferq-bench-guard")
    ap.add_argument("--msg-bytes", type=int, default=2048)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--presidio-python", help="python with presidio-analyzer installed")
    ap.add_argument("--presidio-seconds", type=float, default=5)
    args = ap.parse_args()

    os.makedirs(args.work, exist_ok=True)
    rows = list(csv.DictReader(open(os.path.join(args.data, "jailbreak_train.csv"),
                                    encoding="utf-8")))
    prose = "\n\n".join(r["prompt"] for r in rows if r["type"] == "benign")
    pii = json.load(open(os.path.join(args.data, "pii_synth_dataset_v2.json"), encoding="utf-8"))
    dense = "\n".join(r["full_text"] for r in pii)
    corpora = {"prose": prose, "dense": dense}
    results = {"msg_bytes": args.msg_bytes, "corpora": {}}
    for name, text in corpora.items():
        path = os.path.join(args.work, name + ".txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        cmd = [args.inferq]
        if args.config:
            cmd += ["--config", args.config]
        cmd += ["guard", "bench", "--seconds", str(args.seconds), "--msg-bytes",
                str(args.msg_bytes)]
        if args.policy:
            cmd += ["--policy", args.policy]
        cmd.append(path)
        out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout.decode()
        r = {"bytes": len(text.encode()), "inferq": json.loads(out.strip().splitlines()[-1])}
        if args.presidio_python:
            mpath = os.path.join(args.work, name + ".messages.json")
            with open(mpath, "w", encoding="utf-8") as f:
                json.dump(split_messages(text, args.msg_bytes), f)
            rpath = os.path.join(args.work, "presidio_runner.py")
            with open(rpath, "w") as f:
                f.write(PRESIDIO_RUNNER)
            p = subprocess.run([args.presidio_python, rpath, mpath, str(args.presidio_seconds)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode == 0:
                r["presidio"] = json.loads(p.stdout.decode().strip().splitlines()[-1])
                r["speedup"] = round(r["inferq"]["mb_per_s"] / r["presidio"]["mb_per_s"], 1)
            else:
                r["presidio_error"] = p.stderr.decode()[-500:]
        results["corpora"][name] = r
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
