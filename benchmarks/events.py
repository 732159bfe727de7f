"""The cost of events: end to end with events on vs off, and webhook deliveries/s.

    python -m benchmarks.events --messages 10000 --events 5000 --runs 3

1. The queue pool (localsqs) is filled with ``--messages`` envelopes and one ``mailpool
   sender`` delivers them to an SMTP sink process, once with events on (each outcome
   published to ``<prefix>-events`` before its message is deleted) and once with
   ``MAILPOOL_EVENTS=off``, alternating which goes first. Reported: messages/s, the
   sender's CPU-µs per message, and the ratios on/off (target >= 0.85). The engine, the
   sink and the sender share this machine's cores, so the engine's extra work (storing
   the events) slows the sender's wall-clock rate; the per-core ratio is the sender's own.
2. ``--events`` events are put on the events queue and one ``mailpool webhooks`` process
   POSTs them, signed, to a local receiver (in this process) that answers 204. Reported:
   deliveries/s and the dispatcher's CPU-µs per delivery.
"""

import argparse
import asyncio
import statistics
import time
import uuid

from aiohttp import web

from benchmarks.e2e import drain_rate
from benchmarks.engines import cpu_seconds, engine_process, free_port
from benchmarks.processes import child, local_credentials, mailpool_env
from core.events import Event, Recipient
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import QueuePool
from pool.provision import provision
from pool.sqs import SqsClient
from webhooks.signing import new_secret


async def _publish(config: PoolConfig, count: int) -> None:
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        for start in range(0, count, 500):
            batch = [
                Event(
                    type="email.sent",
                    email_id=uuid.uuid4().hex,
                    attempt=1,
                    recipients=(Recipient(0, "sink@example.test"),),
                    terminal=True,
                )
                for _ in range(min(500, count - start))
            ]
            await pool.publish([Outgoing(body=e.encode()) for e in batch])


async def _receive(port: int, count: int, until_s: float) -> float:
    """Serve a 204 receiver until ``count`` POSTs arrived; seconds from the first to last."""
    got = 0
    first = last = 0.0
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal got, first, last
        await request.read()
        got += 1
        last = time.monotonic()
        first = first or last
        if got >= count:
            done.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with asyncio.timeout(until_s):
            await done.wait()
    finally:
        await runner.cleanup()
    return last - first


def webhook_rate(endpoint: str, count: int) -> tuple[float, float]:
    """Deliveries/s and dispatcher CPU-µs per delivery for ``count`` queued events."""
    config = PoolConfig(
        prefix=f"w{uuid.uuid4().hex[:6]}", shards=1, endpoint_url=endpoint, region="us-east-1"
    )
    asyncio.run(_publish(config, count))
    port = free_port()
    env = mailpool_env(
        endpoint,
        config.prefix,
        1,
        MAILPOOL_WAIT_TIME="1",
        MAILPOOL_WEBHOOK_METRICS_PORT="0",
        MAILPOOL_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
        MAILPOOL_WEBHOOK_SECRET=new_secret(),
        MAILPOOL_WEBHOOK_ALLOW_PRIVATE="true",
    )
    with child("mailpool", "webhooks", env=env) as process:
        cpu0 = cpu_seconds(process.pid)
        took = asyncio.run(_receive(port, count, 600))
        cpu = cpu_seconds(process.pid) - cpu0
    return count / max(took, 1e-6), cpu / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    local_credentials()
    sink_port = free_port()
    ratios, on_rates, off_rates, hook_rates, hook_us, cpu_ratios = [], [], [], [], [], []
    with (
        engine_process("localsqs", None) as (endpoint, _),
        child("benchmarks.sink", "--port", str(sink_port)),
    ):
        for run in range(args.runs):
            order = (True, False) if run % 2 == 0 else (False, True)
            measured = {
                on: drain_rate(endpoint, sink_port, args.messages, events=on) for on in order
            }
            rates = {on: rate for on, (rate, _) in measured.items()}
            cpu_us = {on: us for on, (_, us) in measured.items()}
            rate, us = webhook_rate(endpoint, args.events)
            on_rates.append(rates[True])
            off_rates.append(rates[False])
            ratios.append(rates[True] / rates[False])
            # /proc's CPU moves in 10 ms ticks: a smoke run can read none.
            cpu_ratios.append(cpu_us[False] / cpu_us[True] if cpu_us[True] else float("nan"))
            hook_rates.append(rate)
            hook_us.append(us)
            print(
                f"run {run + 1}: events on {rates[True]:.0f}/s ({cpu_us[True]:.0f} CPU-µs/msg), "
                f"off {rates[False]:.0f}/s ({cpu_us[False]:.0f}), ratio {ratios[-1]:.2f}, per "
                f"core {cpu_ratios[-1]:.2f}; webhooks {rate:.0f} deliveries/s "
                f"({us:.0f} CPU-µs each)",
                flush=True,
            )
    median = statistics.median
    print(
        f"\nmedians of {args.runs} runs: end to end with events {median(on_rates):.0f}/s, "
        f"without {median(off_rates):.0f}/s, ratio {median(ratios):.2f}, per sender core "
        f"{median(cpu_ratios):.2f} (target >= 0.85); "
        f"one webhooks process {median(hook_rates):.0f} deliveries/s at "
        f"{median(hook_us):.0f} CPU-µs each"
    )


if __name__ == "__main__":
    main()
