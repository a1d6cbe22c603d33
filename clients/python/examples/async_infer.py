"""Ask many questions concurrently from asyncio.

    python3 async_infer.py [BOOTSTRAP]
"""
import asyncio
import sys

from inferq import Client, Request, RequestTimeout

QUESTIONS = ["What is Kafka?", "What is Avro?", "What is a dead-letter queue?"]


async def main(bootstrap: str) -> None:
    async with Client(bootstrap) as client:
        async def ask(q: str) -> str:
            try:
                req = Request.chat("chat-default", [{"role": "user", "content": q}])
                r = await client.infer(req, timeout=60)
            except RequestTimeout:
                return "(no answer in time)"
            return r.content if r.ok else f"({r.error.code})"

        for q, a in zip(QUESTIONS, await asyncio.gather(*(ask(q) for q in QUESTIONS))):
            print(f"{q}\n  {a}")


asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "localhost:9092"))
