"""Run an OpenAI Batch API input file through inferq and write the output
file as results arrive (bounded memory, any file size).

    python3 batch_file.py IN.jsonl OUT.jsonl [--bootstrap HOST:PORT]
        [--encoding json|avro] [--max-in-flight N] [--timeout S] [--prefix inferq]
"""
import argparse
import json
import sys
import time

from inferq import Client, Request


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--bootstrap", default="localhost:9092")
    ap.add_argument("--encoding", default="json", choices=["json", "avro"])
    ap.add_argument("--max-in-flight", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=None)
    ap.add_argument("--prefix", default="inferq")
    a = ap.parse_args()

    def requests(f):
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield Request.from_dict(json.loads(line))
                except ValueError as e:
                    sys.exit(f"{a.input}:{n}: {e}")

    t0 = time.monotonic()
    ok = failed = 0
    with open(a.input, encoding="utf-8") as fin, open(a.output, "w", encoding="utf-8") as fout, \
            Client(a.bootstrap, encoding=a.encoding, topic_prefix=a.prefix) as client:
        for r in client.run_batch(requests(fin), max_in_flight=a.max_in_flight, timeout=a.timeout):
            fout.write(json.dumps(r.raw, ensure_ascii=False) + "\n")
            ok, failed = (ok + 1, failed) if r.ok else (ok, failed + 1)
    took = time.monotonic() - t0
    print(f"{ok + failed} results ({failed} not succeeded) in {took:.1f}s, "
          f"{(ok + failed) / took:.0f}/s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
