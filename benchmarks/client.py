"""The Python client's cost against a bare aiohttp client: CPU of this process per
single-email request, both posting the same email to the same bare endpoint
(``benchmarks.bare_http``, in a process of its own), same run.

    python -m benchmarks.client --requests 5000 --concurrency 32 --runs 3

Target: the async client at most 1.5 times the bare aiohttp client's CPU per request.
"""

import argparse
import asyncio
import statistics
import time
import uuid

import aiohttp
import uvloop
from mailpool_client import AsyncClient, Email

from benchmarks.engines import free_port
from benchmarks.processes import child

DOC = {"from": "bench@example.test", "to": "sink@example.test", "subject": "s", "text": "x"}


async def bare(url: str, requests: int, concurrency: int) -> float:
    """CPU-µs per request of a bare aiohttp client (an Idempotency-Key each, like the client)."""
    numbers = iter(range(requests))
    async with aiohttp.ClientSession() as http:

        async def loop() -> None:
            for _ in numbers:
                headers = {"Idempotency-Key": uuid.uuid4().hex}
                async with http.post(f"{url}/v1/emails", json=DOC, headers=headers) as r:
                    await r.json()

        cpu = time.process_time()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return (time.process_time() - cpu) / requests * 1e6


async def client(url: str, requests: int, concurrency: int) -> float:
    """CPU-µs per request of ``mailpool_client.AsyncClient.send``."""
    numbers = iter(range(requests))
    email = Email(sender=DOC["from"], to=DOC["to"], subject=DOC["subject"], text=DOC["text"])
    async with AsyncClient(url) as mail:

        async def loop() -> None:
            for _ in numbers:
                await mail.send(email)

        cpu = time.process_time()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return (time.process_time() - cpu) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    costs: dict[str, list[float]] = {"bare aiohttp": [], "mailpool_client": []}
    with child("benchmarks.bare_http", "--port", str(port)):
        for run in range(args.runs):
            order = [bare, client] if run % 2 == 0 else [client, bare]
            for measure in order:
                us = uvloop.run(measure(url, args.requests, args.concurrency))
                costs["bare aiohttp" if measure is bare else "mailpool_client"].append(us)
    b = statistics.median(costs["bare aiohttp"])
    c = statistics.median(costs["mailpool_client"])
    print(
        f"medians of {args.runs} runs: bare aiohttp {b:.0f} CPU-µs per request, "
        f"mailpool_client {c:.0f}; ratio {c / b:.2f} (target <= 1.5)"
    )


if __name__ == "__main__":
    main()
