"""What attachments cost: end to end with a 100 KiB file against plain emails in the same run,
the sender's CPU per MB rendered, and the memory one large email takes.

    python -m benchmarks.attachments --emails 2000 --runs 3

1. End to end: ``--emails`` POSTs, 64 at a time, through one ``mailpool intake`` and one
   ``mailpool sender`` (on the embedded engine) to an SMTP sink process: plain emails and
   emails with one ``--kib`` KiB PDF, alternating which goes first. Emails/s from the first
   POST until the pool is empty, MB/s of messages delivered, and the ratio attached/plain.
2. Rendering, in this process: CPU per MB of message rendered (``sender.mime.render``) and
   per email, plain and with the attachment.
3. Memory: the Python heap's peak (tracemalloc) while a sender decodes and renders an email
   of ``--large-mib`` MiB of attachments, and while its SMTP provider sends it to the sink
   (aiosmtplib copies the message as it normalises line endings and dot-stuffs), as
   multiples of the email's size as queued.
"""

import argparse
import asyncio
import base64
import os
import statistics
import time
import tracemalloc
import uuid
from typing import Any

import aiohttp

from benchmarks.e2e import wait_empty
from benchmarks.engines import engine_process, free_port
from benchmarks.processes import child, local_credentials, mailpool_env, tree_cpu_seconds
from core.envelope import Envelope
from intake.validation import parse_email
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from sender.mime import render
from sender.providers.smtp import SmtpConfig, SmtpProvider

CONCURRENCY = 64
PLAIN = {
    "from": "bench@example.test",
    "to": "sink@example.test",
    "subject": "Your invoice",
    "text": "Please find your invoice attached.\n" * 5,
}


def attached(kib: int) -> dict[str, Any]:
    """``PLAIN`` with one PDF of ``kib`` KiB of random bytes (incompressible, as PDFs are)."""
    content = base64.b64encode(os.urandom(kib * 1024)).decode()
    return {**PLAIN, "attachments": [{"filename": "invoice.pdf", "content": content}]}


async def _post_all(url: str, doc: dict[str, Any], count: int) -> int:
    """POST ``doc`` ``count`` times; a 503 is retried after its Retry-After, as a producer
    does. Returns how many 503s came back."""
    numbers = iter(range(count))
    refused = 0
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            nonlocal refused
            for _ in numbers:
                while True:
                    async with http.post(f"{url}/v1/emails", json=doc) as response:
                        if response.status == 202:
                            break
                        assert response.status == 503, await response.text()
                        refused += 1
                        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return refused


async def _provision(config: PoolConfig) -> None:
    async with SqsClient.from_config(config) as sqs:
        await provision(sqs, config)


def end_to_end(
    endpoint: str, sink_port: int, doc: dict[str, Any], count: int
) -> tuple[float, int, float]:
    """Emails/s from the first POST of ``count`` to the last delivery; 503s on the way; the
    sender process's CPU seconds."""
    config = PoolConfig(
        prefix=f"a{uuid.uuid4().hex[:6]}",
        shards=4,
        endpoint_url=endpoint,
        region="us-east-1",
        events=False,
    )
    asyncio.run(_provision(config))
    port = free_port()
    common = mailpool_env(endpoint, config.prefix, 4, MAILPOOL_EVENTS="off", MAILPOOL_STATE="off")
    sender = {
        **common,
        "MAILPOOL_SMTP_PORT": str(sink_port),
        "MAILPOOL_CONCURRENCY": "64",
        "MAILPOOL_METRICS_PORT": "0",
        "MAILPOOL_WAIT_TIME": "1",
    }
    with (
        child("mailpool", "sender", env=sender) as sending,
        child("mailpool", "intake", env={**common, "MAILPOOL_HTTP_PORT": str(port)}),
    ):
        cpu = tree_cpu_seconds(sending.pid)
        started = time.monotonic()
        refused = asyncio.run(_post_all(f"http://127.0.0.1:{port}", doc, count))
        asyncio.run(wait_empty(config))
        took = time.monotonic() - started
        return count / took, refused, tree_cpu_seconds(sending.pid) - cpu


def envelope_of(doc: dict[str, Any]) -> Envelope:
    return Envelope(id=uuid.uuid4().hex, group="g", accepted_at=time.time(), email=parse_email(doc))


def render_cost(doc: dict[str, Any], count: int) -> tuple[float, float, int]:
    """(CPU-ms per MB rendered, CPU-µs per email, bytes per message) of rendering ``doc``."""
    envelope = envelope_of(doc)
    size = len(render(envelope))
    started = time.process_time()
    for _ in range(count):
        render(envelope)
    cpu = time.process_time() - started
    return cpu / (count * size / 1e6) * 1e3, cpu / count * 1e6, size


async def _send_traced(body: bytes, sink_port: int) -> tuple[float, float]:
    """(peak heap while decoding and rendering, peak while sending over SMTP) for ``body``."""
    provider = SmtpProvider(SmtpConfig(port=sink_port))
    try:
        await provider.send(envelope_of(PLAIN))  # connect first: the pool is not measured
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        envelope = Envelope.decode(body)
        render(envelope)
        rendering = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        await provider.send(envelope)
        sending = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    finally:
        await provider.aclose()
    return rendering, sending


def memory(mib: int, sink_port: int) -> tuple[int, float, float]:
    """(the envelope's bytes, the heap's peak while decoding and rendering it, and while it
    is rendered and sent over SMTP) for an email of ``mib`` MiB of attachments; the peaks
    as multiples of the envelope."""
    doc = attached(mib * 1024 - 64)  # within MAILPOOL_MAX_EMAIL_BYTES beside the text
    body = envelope_of(doc).encode()
    del doc
    rendering, sending = asyncio.run(_send_traced(body, sink_port))
    return len(body), rendering / len(body), sending / len(body)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--emails", type=int, default=2_000)
    parser.add_argument("--kib", type=int, default=100, help="the attachment's size")
    parser.add_argument("--renders", type=int, default=300)
    parser.add_argument("--large-mib", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    local_credentials()
    os.environ.setdefault("AWS_REGION", "us-east-1")
    sink_port = free_port()
    docs = {"plain": PLAIN, "attached": attached(args.kib)}
    sizes = {kind: len(render(envelope_of(doc))) for kind, doc in docs.items()}
    rates: dict[str, list[float]] = {"plain": [], "attached": []}
    ratios = []
    sender_ms: dict[str, list[float]] = {"plain": [], "attached": []}
    with (
        engine_process("localsqs", None) as (endpoint, _),
        child("benchmarks.sink", "--port", str(sink_port)),
    ):
        for run in range(args.runs):
            order = ("plain", "attached") if run % 2 == 0 else ("attached", "plain")
            runs = {
                kind: end_to_end(endpoint, sink_port, docs[kind], args.emails) for kind in order
            }
            got = {kind: rate for kind, (rate, _, _) in runs.items()}
            for kind, rate in got.items():
                rates[kind].append(rate)
            for kind, (_, _, cpu) in runs.items():  # the sender's CPU-ms per MB delivered
                sender_ms[kind].append(cpu / (args.emails * sizes[kind] / 1e6) * 1e3)
            ratios.append(got["attached"] / got["plain"])
            print(
                f"run {run + 1}: plain {got['plain']:.0f} emails/s, with a {args.kib} KiB "
                f"attachment {got['attached']:.0f} emails/s "
                f"({got['attached'] * sizes['attached'] / 1e6:.1f} MB/s), ratio {ratios[-1]:.2f}; "
                f"503s retried: plain {runs['plain'][1]}, attached {runs['attached'][1]}",
                flush=True,
            )
        size, peak, sending = memory(args.large_mib, sink_port)
    plain_ms, plain_us, _ = render_cost(PLAIN, args.renders * 10)
    file_ms, file_us, _ = render_cost(docs["attached"], args.renders)
    median = statistics.median
    attached_rate = median(rates["attached"])
    print(
        f"\nmedians of {args.runs} runs: end to end plain {median(rates['plain']):.0f} emails/s "
        f"({median(rates['plain']) * sizes['plain'] / 1e6:.2f} MB/s), with a {args.kib} KiB "
        f"attachment {attached_rate:.0f} emails/s "
        f"({attached_rate * sizes['attached'] / 1e6:.1f} MB/s), ratio {median(ratios):.2f}"
    )
    print(
        f"sender process: {median(sender_ms['attached']):.0f} CPU-ms per MB delivered with "
        f"the attachment, {median(sender_ms['plain']):.0f} plain"
    )
    print(
        f"render: {file_ms:.1f} CPU-ms per MB with the attachment ({file_us:.0f} µs per "
        f"{sizes['attached'] / 1e3:.0f} kB email), {plain_ms:.1f} CPU-ms per MB plain "
        f"({plain_us:.0f} µs per {sizes['plain']} B email)"
    )
    print(
        f"memory: a {args.large_mib} MiB email ({size / 1e6:.1f} MB as queued): peak "
        f"{peak:.1f}x while decoding and rendering, {sending:.1f}x while it is sent over SMTP"
    )


if __name__ == "__main__":
    main()
