"""Where an email's CPU goes, per step, on each wire: py-spy samples a ``mailpool intake``
(keyed requests, state on, events on) and a ``mailpool sender`` (state and events on, an
SMTP sink), and each sample is put down to the step of the email's path its stack is in.

    python -m benchmarks.steps --emails 6000 --requests 4000 --runs 3

Needs py-spy (``make bench`` installs it). The process's CPU per email (/proc) is split in
the proportions of the samples; "event loop and the rest" is what no step's frames are
on: the loop itself, socket writes and reads it makes for every step, task switching.
"""

import argparse
import collections
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from aws.wire import WIRES
from benchmarks.engines import engine_process, free_port
from benchmarks.processes import child, local_credentials
from benchmarks.wire import Watch, intake_cost, sender_cost

#: (step, the frames that are in it), in the order of the email's path.
INTAKE_STEPS = [
    ("HTTP (aiohttp server)", ["aiohttp/web_protocol", "aiohttp/web_response", "http_parser"]),
    ("validation", ["parse_email", "intake/schemas", "core/addresses", "core/attachments"]),
    ("idempotency claim", ["state/idempotency", "_transact_puts", "StateTable.claim"]),
    ("idempotency mark (BatchWriteItem)", ["_batch_write"]),
    ("queue call (SendMessageBatch)", ["SqsClient.send_batch", "QueuePool.send"]),
    ("event", ["publish", "core/events"]),
    ("metrics", ["prometheus_client"]),
]
SENDER_STEPS = [
    ("receive (ReceiveMessage)", ["SqsClient.receive", "QueuePool.receive", "Sender._poll"]),
    ("suppression lookup", ["_batch_get", "Suppressions.suppressed", "_drop_suppressed"]),
    ("render (MIME)", ["sender/mime"]),
    ("SMTP", ["SmtpProvider.send", "aiosmtplib"]),
    ("event (SendMessageBatch)", ["SqsClient.send_batch", "Sender._publish"]),
    ("status record (BatchWriteItem)", ["_batch_write", "Sender._record"]),
    ("settle (DeleteMessageBatch)", ["SqsClient.delete_batch", "QueuePool.delete"]),
    ("decode envelope", ["Envelope.decode", "core/sealing"]),
    ("metrics", ["prometheus_client"]),
]
REST = "event loop and the rest"


def py_spy() -> str:
    """The py-spy command next to this Python, or on PATH."""
    found = Path(sys.executable).with_name("py-spy")
    if found.exists():
        return str(found)
    on_path = shutil.which("py-spy")
    if on_path is None:
        raise SystemExit("py-spy is needed: .venv/bin/pip install py-spy (make bench does)")
    return on_path


def step_of(frames: list[str], steps: list[tuple[str, list[str]]]) -> str:
    """The step of the innermost frame any step names (the request handler's frames sit
    under the HTTP server's, an SMTP send's under the delivery's)."""
    for frame in reversed(frames):
        for name, keys in steps:
            if any(key in frame for key in keys):
                return name
    return REST


def shares(samples: Path, steps: list[tuple[str, list[str]]]) -> dict[str, float]:
    """Each step's share of the samples."""
    counted: collections.Counter[str] = collections.Counter()
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        counted[step_of(stack.split(";"), steps)] += int(count)
    total = sum(counted.values()) or 1
    return {name: counted[name] / total for name in [*(s for s, _ in steps), REST]}


def sampled(out: Path) -> Watch:
    """A watch that has py-spy sample the watched process into ``out`` while it runs."""

    @contextlib.contextmanager
    def watch(pid: int) -> Iterator[None]:
        command = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "-o", str(out)]
        spy = subprocess.Popen(
            [*command, "--rate", "250", "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait()

    return watch


def sender(endpoint: str, sink: tuple[int, int], wire: str, emails: int, out: Path) -> float:
    """The sender's CPU-µs per email (state and events on, SMTP); its samples in ``out``."""
    return sender_cost(endpoint, None, sink, wire, emails, "smtp", watch=sampled(out))


def intake(endpoint: str, wire: str, requests: int, out: Path) -> float:
    """Keyed intake's CPU-µs per accepted email; its samples in ``out``."""
    return intake_cost(endpoint, wire, requests, True, watch=sampled(out))[0]


def table(
    title: str, steps: list[tuple[str, list[str]]], runs: dict[str, list[dict[str, float]]]
) -> None:
    """Medians over the runs of each step's CPU-µs per email, on each wire."""
    med = statistics.median
    print(f"\n{title}: CPU-µs per email by step, medians of {len(runs['lean'])} runs")
    print(f"{'step':<34}{'botocore':>10}{'lean':>10}")
    for name in [*(s for s, _ in steps), REST, "total"]:
        b, lean = (med(run[name] for run in runs[w]) for w in ("botocore", "lean"))
        print(
            f"{name:<34}{b:>10.0f}{lean:>10.0f}" + (f"   {lean / b:.2f}" if name == "total" else "")
        )


def by_step(cost_us: float, split: dict[str, float]) -> dict[str, float]:
    return {**{name: cost_us * share for name, share in split.items()}, "total": cost_us}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--emails", type=int, default=6000, help="emails the sender delivers")
    parser.add_argument("--requests", type=int, default=4000, help="keyed POSTs to intake")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    local_credentials()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    folder = Path(tempfile.mkdtemp(prefix="steps-"))
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        kind: {w: [] for w in WIRES} for kind in ("sender", "intake")
    }
    smtp_port, count_port = free_port(), free_port()
    with (
        engine_process("localsqs", None) as (endpoint, _),
        child("benchmarks.sink", "--port", str(smtp_port), "--count-port", str(count_port)),
    ):
        for run in range(args.runs):
            for wire in WIRES if run % 2 == 0 else WIRES[::-1]:
                out = folder / f"sender-{wire}-{run}.txt"
                cost = sender(endpoint, (smtp_port, count_port), wire, args.emails, out)
                runs["sender"][wire].append(by_step(cost, shares(out, SENDER_STEPS)))
                out = folder / f"intake-{wire}-{run}.txt"
                cost = intake(endpoint, wire, args.requests, out)
                runs["intake"][wire].append(by_step(cost, shares(out, INTAKE_STEPS)))
    table("intake (keyed, state on)", INTAKE_STEPS, runs["intake"])
    table("sender (state and events on, SMTP)", SENDER_STEPS, runs["sender"])
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
