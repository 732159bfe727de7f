"""Retry storms on Idempotency-Keys: what duplicates cost everybody else.

    python -m benchmarks.contention --rate 200 --seconds 10 --runs 3

Two ``mailpool intake`` processes share one state table on the embedded engine. Requests
with keys of their own arrive open-loop at ``--rate`` per second (alternating between the
intakes; each latency counted from its scheduled time, so a stall cannot hide), while
bursts of ``--burst`` concurrent requests with one key and one body (a producer's retry
storm) make up 0 %, 10 % and 50 % of all requests. Reported per mix, medians of ``--runs``
(the mixes alternate their order): the unrelated keys' accepted/s and p50/p99 accept
latency, their ratio to the 0 % mix (target: within 10 %), and whether every request of a
burst got 202 with one id.
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field

import aiohttp

from benchmarks.engines import engine_process, free_port
from benchmarks.processes import child, local_credentials, mailpool_env
from benchmarks.state import EMAIL, _state_env, fresh_stack

MIXES = (0.0, 0.1, 0.5)


@dataclass
class Mix:
    """What one mix of unrelated requests and bursts came to."""

    latencies: list[float] = field(default_factory=list)
    refused: int = 0
    burst_refused: int = 0
    burst_ids_split: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _drive(urls: list[str], rate: float, seconds: float, share: float, burst: int) -> Mix:
    mix = Mix()
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    tag = uuid.uuid4().hex[:8]
    started = time.monotonic()

    async def one(number: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        headers = {"Idempotency-Key": f"own-{tag}-{number}"}
        async with http.post(f"{urls[number % 2]}/v1/emails", json=EMAIL, headers=headers) as r:
            await r.read()
            if r.status == 202:
                mix.latencies.append(time.monotonic() - at)
            else:
                mix.refused += 1

    async def storm(number: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        headers = {"Idempotency-Key": f"hot-{tag}-{number}"}

        async def post(i: int) -> tuple[int, str]:
            async with http.post(f"{urls[i % 2]}/v1/emails", json=EMAIL, headers=headers) as r:
                return r.status, str((await r.json()).get("id"))

        answers = await asyncio.gather(*(post(i) for i in range(burst)))
        mix.burst_refused += sum(status != 202 for status, _ in answers)
        mix.burst_ids_split += len({email_id for status, email_id in answers if status == 202}) > 1

    try:
        tasks = [one(n, started + n / rate) for n in range(int(rate * seconds))]
        if share:
            bursts_per_s = rate * share / (1 - share) / burst
            count = int(bursts_per_s * seconds)
            tasks += [storm(n, started + (n + 0.5) / bursts_per_s) for n in range(count)]
        await asyncio.gather(*tasks)
        mix.seconds = time.monotonic() - started
    finally:
        await http.close()
    return mix


def measure(endpoint: str, args: argparse.Namespace, share: float) -> Mix:
    """One mix on two fresh intakes over a fresh pool and table."""
    config = fresh_stack(endpoint, "c")
    ports = [free_port(), free_port()]
    state = _state_env(True, config.prefix)
    common = mailpool_env(endpoint, config.prefix, 4, MAILPOOL_EVENTS="off", **state)
    with (
        child("mailpool", "intake", env={**common, "MAILPOOL_HTTP_PORT": str(ports[0])}),
        child("mailpool", "intake", env={**common, "MAILPOOL_HTTP_PORT": str(ports[1])}),
    ):
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        return asyncio.run(_drive(urls, args.rate, args.seconds, share, args.burst))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="unrelated requests/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=20, help="requests per retry storm")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    local_credentials()
    os.environ.setdefault("AWS_REGION", "us-east-1")
    results: dict[float, list[Mix]] = {share: [] for share in MIXES}
    with engine_process("localsqs", None) as (endpoint, _):
        for run in range(args.runs):
            order = MIXES if run % 2 == 0 else tuple(reversed(MIXES))
            for share in order:
                mix = measure(endpoint, args, share)
                results[share].append(mix)
                print(
                    f"run {run + 1}: {share:.0%} duplicates: unrelated {mix.rate:.0f} accepted/s, "
                    f"{mix.refused} refused, p50 {mix.percentile(0.5) * 1000:.1f} ms, p99 "
                    f"{mix.percentile(0.99) * 1000:.1f} ms; bursts: {mix.burst_refused} refused, "
                    f"{mix.burst_ids_split} with more than one id",
                    flush=True,
                )
    median = statistics.median
    base_rate = median(m.rate for m in results[0.0])
    base_p99 = median(m.percentile(0.99) for m in results[0.0])
    print(f"\nmedians of {args.runs} runs (unrelated keys at {args.rate:.0f}/s offered):")
    for share, mixes in results.items():
        rate = median(m.rate for m in mixes)
        p50 = median(m.percentile(0.5) for m in mixes)
        p99 = median(m.percentile(0.99) for m in mixes)
        refused = sum(m.refused + m.burst_refused for m in mixes)
        split = sum(m.burst_ids_split for m in mixes)
        print(
            f"{share:>4.0%} duplicates: {rate:.0f} accepted/s ({rate / base_rate:.2f} of 0 %), "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms ({p99 / base_p99:.2f} of 0 %); "
            f"{refused} refused in all, {split} bursts with more than one id"
        )


if __name__ == "__main__":
    main()
