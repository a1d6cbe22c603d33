"""Send one chat request and wait for its result (a future).

    python3 submit.py [BOOTSTRAP] [TEXT]
"""
import sys

from inferq import Client, Request

bootstrap = sys.argv[1] if len(sys.argv) > 1 else "localhost:9092"
text = sys.argv[2] if len(sys.argv) > 2 else "Hello!"

with Client(bootstrap) as client:
    future = client.submit(Request.chat("chat-default", [{"role": "user", "content": text}],
                                        max_tokens=64), timeout=60)
    result = future.result()
    if result.ok:
        print(result.content)
        print(f"tokens {result.usage.total_tokens}, cost ${result.cost_usd}, "
              f"{result.timings_ms.get('total')} ms on {result.deployment}", file=sys.stderr)
    else:
        print(f"{result.status}: {result.error.code}: {result.error.message}", file=sys.stderr)
        sys.exit(1)
