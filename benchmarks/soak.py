"""Soak: intake and sender RSS under steady load must stay flat.

    python -m benchmarks.soak --seconds 300 --rate 200

localsqs, an SMTP sink, ``mailpool intake`` and ``mailpool sender`` run as processes; an
open-loop load offers ``--rate`` emails/s for ``--seconds``. RSS of intake and sender is
sampled every ``--every`` seconds; after a warm-up (the first fifth of the run), the last
sample is compared with the first (target: within ±10 %).
"""

import argparse
import asyncio
import time
import uuid

from benchmarks.engines import engine_process, free_port, rss_mib
from benchmarks.intake import provision_pool
from benchmarks.load import open_loop
from benchmarks.processes import child, local_credentials, mailpool_env


async def sample(pids: dict[str, int], seconds: float, every: float) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {name: [] for name in pids}
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for name, pid in pids.items():
            series[name].append(rss_mib(pid))
        await asyncio.sleep(every)
    return series


async def soak(url: str, pids: dict[str, int], args: argparse.Namespace) -> dict[str, list[float]]:
    load = asyncio.create_task(open_loop(url, args.rate, args.seconds))
    series = await sample(pids, args.seconds, args.every)
    result = await load
    print(
        f"load: {result['accepted_per_s']:.0f} accepted/s, non-202 {result['non_202']:.0f}, "
        f"p99 {result['p99_ms']:.1f} ms"
    )
    return series


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=200.0, help="emails/s offered")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between RSS samples")
    args = parser.parse_args()
    local_credentials()
    prefix = f"k{uuid.uuid4().hex[:6]}"
    intake_port, sink_port = free_port(), free_port()
    with engine_process("localsqs", None) as (endpoint, _):
        asyncio.run(provision_pool(endpoint, prefix))
        env = mailpool_env(
            endpoint,
            prefix,
            4,
            MAILPOOL_HTTP_PORT=str(intake_port),
            MAILPOOL_METRICS_PORT="0",
            MAILPOOL_SMTP_PORT=str(sink_port),
            MAILPOOL_WAIT_TIME="1",
        )
        with (
            child("benchmarks.sink", "--port", str(sink_port)),
            child("mailpool", "intake", env=env) as intake,
            child("mailpool", "sender", env=env) as sender,
        ):
            pids = {"intake": intake.pid, "sender": sender.pid}
            series = asyncio.run(soak(f"http://127.0.0.1:{intake_port}", pids, args))
    warm = max(1, len(next(iter(series.values()))) // 5)
    for name, values in series.items():
        steady = values[warm:] or values
        change = (steady[-1] - steady[0]) / steady[0] * 100
        print(
            f"{name:>7} RSS MiB: start {values[0]:.1f}, after warm-up {steady[0]:.1f}, "
            f"end {steady[-1]:.1f}, max {max(steady):.1f}; change {change:+.1f} % "
            f"(target within ±10 %)"
        )


if __name__ == "__main__":
    main()
