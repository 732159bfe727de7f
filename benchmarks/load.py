"""Closed-loop HTTP load on the intake: accepted/s and accept latency percentiles.

python -m benchmarks.load --url http://127.0.0.1:8080 --concurrency 32 --seconds 10
"""

import argparse
import asyncio
import statistics
import time

import aiohttp

EMAIL = {
    "from": "Load Test <load@example.test>",
    "to": "sink@example.test",
    "subject": "load",
    "text": "x" * 512,
}


async def _worker(
    http: aiohttp.ClientSession,
    url: str,
    until: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        async with http.post(f"{url}/v1/emails", json=EMAIL) as response:
            await response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 202:
                latencies.append(time.perf_counter() - started)


async def run(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Drive the intake for ``seconds``; accepted/s and latency percentiles (ms)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *(_worker(http, url, until, latencies, statuses) for _ in range(concurrency))
        )
        elapsed = time.monotonic() - started
    return summarise(latencies, statuses, elapsed)


def summarise(latencies: list[float], statuses: dict[int, int], elapsed: float) -> dict[str, float]:
    """Accepted/s, refusals and latency percentiles (ms) of one load run."""
    quantiles = statistics.quantiles(latencies, n=1000) if len(latencies) > 1 else [0.0] * 999
    return {
        "accepted_per_s": len(latencies) / elapsed,
        "non_202": float(sum(n for s, n in statuses.items() if s != 202)),
        "p50_ms": quantiles[499] * 1e3,
        "p99_ms": quantiles[989] * 1e3,
        "p999_ms": quantiles[998] * 1e3,
    }


async def open_loop(url: str, rate: float, seconds: float) -> dict[str, float]:
    """Offer ``rate`` requests/s on a fixed schedule, whether or not answers keep up."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(due: float) -> None:
            try:
                async with http.post(f"{url}/v1/emails", json=EMAIL) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 202:
                        # Measured from when it was due, so queueing in the client counts too.
                        latencies.append(time.perf_counter() - due)
            except aiohttp.ClientError:
                statuses[0] = statuses.get(0, 0) + 1

        started = time.perf_counter()
        total = int(rate * seconds)
        async with asyncio.TaskGroup() as tasks:
            for n in range(total):
                due = started + n / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.create_task(one(due))
        elapsed = time.perf_counter() - started
    return summarise(latencies, statuses, elapsed)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.concurrency, args.seconds))
    print(" ".join(f"{k}={v:.1f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
