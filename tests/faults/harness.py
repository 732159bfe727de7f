"""Real processes for fault scenarios: localsqs, intake and sender as children of the test,
a fault proxy between them and the engine, an SMTP sink, producers that retry, and the
reconciliation every scenario ends with."""

import asyncio
import contextlib
import os
import pathlib
import signal
import socket
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from state.config import new_secret
from tests.support.answers import AnswerProxy
from tests.support.proxy import FaultProxy
from tests.support.smtp_sink import SmtpSink


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Child:
    """One `python -m mailpool ...` process, restartable with the same arguments."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log: pathlib.Path):
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailpool", *self.args,
            env=self.env, stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
        log.close()
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited at start; see {self.log}")

    def pause(self) -> None:
        """SIGSTOP: the process holds everything and answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    async def signal(self, sig: int) -> int:
        """Send ``sig`` and wait for the exit; the exit code."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        async with asyncio.timeout(60):
            await self.process.wait()
        return int(self.process.returncode or 0)

    async def ensure_stopped(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.signal(signal.SIGKILL)


@dataclass
class Ledger:
    """What producers were told and what the SMTP server got."""

    accepted: dict[str, str] = field(default_factory=dict)  # id -> group
    order: dict[str, list[str]] = field(default_factory=dict)  # group -> ids by 202
    attempts: int = 0
    refusals: dict[int, int] = field(default_factory=dict)  # status -> count (0: no answer)

    def accept(self, message_id: str, group: str) -> None:
        if message_id not in self.accepted:
            self.accepted[message_id] = group
            self.order.setdefault(group, []).append(message_id)


@dataclass
class Reconciliation:
    accepted: int
    delivered: int
    duplicates: int
    lost: list[str]
    out_of_order: list[str]
    unexpected: list[str]

    def line(self, scenario: str) -> str:
        return (
            f"[{scenario}] accepted={self.accepted} delivered={self.delivered} "
            f"duplicates={self.duplicates} lost={len(self.lost)} "
            f"out_of_order_groups={len(self.out_of_order)} unexpected={len(self.unexpected)}"
        )


@dataclass
class Endings:
    """Terminal events per accepted email, from what the webhook endpoint received."""

    missing: list[str]
    several: list[str]
    repeats: int


def endings(ledger: Ledger, events: Sequence[Mapping[str, Any]], repeats: int) -> Endings:
    """Every 202 must have exactly one terminal event (repeats only with the same id)."""
    terminal: dict[str, set[str]] = {}
    for event in events:
        if event["data"]["terminal"]:
            terminal.setdefault(event["data"]["email_id"], set()).add(event["id"])
    return Endings(
        missing=[i for i in ledger.accepted if i not in terminal],
        several=[i for i, ids in terminal.items() if len(ids) > 1],
        repeats=repeats,
    )


async def status_mismatches(
    url: str, ledger: Ledger, events: Sequence[Mapping[str, Any]] | None
) -> list[str]:
    """Ids whose status disagrees with their terminal event (without events: is not
    ``sent``); the state store must be on."""
    expected = {"email.sent": {"sent", "delivered", "bounced"}, "email.bounced": {"bounced"},
                "email.failed": {"failed"}, "email.suppressed": {"suppressed"}}  # fmt: skip
    if events is None:
        ending = dict.fromkeys(ledger.accepted, "email.sent")
    else:
        ending = {e["data"]["email_id"]: e["type"] for e in events if e["data"]["terminal"]}
    wrong = []
    async with aiohttp.ClientSession() as http:
        for email_id in ledger.accepted:
            async with http.get(f"{url}/v1/emails/{email_id}") as response:
                doc = await response.json() if response.status == 200 else {}
            if (
                doc.get("state") not in expected.get(ending.get(email_id, ""), set())
                or doc["attempts"] < 1
            ):
                wrong.append(email_id)
    return wrong


def reconcile(
    ledger: Ledger, sink: SmtpSink, *, dead: frozenset[str] = frozenset()
) -> Reconciliation:
    """Every 202 delivered (or dead-lettered as intended); group order held; duplicates counted."""
    delivered = [d.mailpool_id for d in sink.deliveries]
    unique = set(delivered)
    first_seen: dict[str, int] = {}
    for position, message_id in enumerate(delivered):
        first_seen.setdefault(message_id, position)
    out_of_order = [
        group
        for group, ids in ledger.order.items()
        if [i for i in sorted(ids, key=lambda i: first_seen.get(i, -1)) if i in first_seen]
        != [i for i in ids if i in first_seen]
    ]
    return Reconciliation(
        accepted=len(ledger.accepted),
        delivered=len(unique),
        duplicates=len(delivered) - len(unique),
        lost=[i for i in ledger.accepted if i not in unique and i not in dead],
        out_of_order=out_of_order,
        unexpected=[i for i in unique if i not in ledger.accepted],
    )


class Stack:
    """The parts of mailpool as separate processes, and the knobs to break them."""

    def __init__(self, root: pathlib.Path, sink: SmtpSink, *, shards: int = 2,
                 visibility_s: int = 3, engine_args: tuple[str, ...] = (),
                 sender_env: Mapping[str, str] | None = None,
                 intake_env: Mapping[str, str] | None = None,
                 engine_dir: pathlib.Path | None = None,
                 answers: bool = False,
                 hooks_env: Mapping[str, str] | None = None,
                 state: bool = False, worker: str = "sender",
                 streams: str | None = None) -> None:  # fmt: skip
        self.root = root
        self.sink = sink
        self.engine_port = free_port()
        self.intake_port = free_port()
        self.proxy = FaultProxy("127.0.0.1", self.engine_port)
        #: With ``answers``: intake and sender reach the engine through this instead of
        #: ``proxy``, and it can answer their calls with malformed 200s.
        self.answers = AnswerProxy(f"http://127.0.0.1:{self.engine_port}") if answers else None
        base = {
            **os.environ,
            "MAILPOOL_LOG_LEVEL": "INFO",
            "AWS_ACCESS_KEY_ID": "faults",
            "AWS_SECRET_ACCESS_KEY": "faults",
            "AWS_REGION": "us-east-1",
            "MAILPOOL_QUEUE_PREFIX": f"f{uuid.uuid4().hex[:8]}",
            "MAILPOOL_SHARDS": str(shards),
            "MAILPOOL_VISIBILITY_TIMEOUT": str(visibility_s),
            "MAILPOOL_SEND_DEADLINE": "2",
            # The state store (status, suppressions, 24-hour idempotency) in the engine.
            "MAILPOOL_STATE": "on" if state else "off",
            "MAILPOOL_STATE_SECRET": new_secret(),
            # With streams: the pool's streams, and a second sender dedicated to "bulk"
            # (``bulk``) beside the first, which then serves the first stream only.
            **({"MAILPOOL_STREAMS": streams} if streams else {}),
        }
        self.base_env = base
        self.engine = Child(
            "localsqs",
            ["localsqs", "--port", str(self.engine_port), "--data-dir",
             str(engine_dir or root / "sqs"), *engine_args],
            base, root / "localsqs.log",
        )  # fmt: skip
        self.intake = Child("intake", ["intake"], self._via_proxy(MAILPOOL_HTTP_PORT=str(
            self.intake_port), **(intake_env or {})), root / "intake.log")  # fmt: skip
        #: ``mailpool sender``, or with ``worker="lambda"`` the Lambda worker under a local
        #: event source (``mailpool lambda-source``): the same knobs break either.
        self.sender = Child(
            "sender",
            ["sender" if worker == "sender" else "lambda-source"],
            self._via_proxy(
                MAILPOOL_METRICS_PORT="0", MAILPOOL_SMTP_PORT=str(sink.port),
                MAILPOOL_WAIT_TIME="1", MAILPOOL_BACKOFF="1", MAILPOOL_MAX_BACKOFF="2",
                MAILPOOL_GRACE="5", MAILPOOL_SMTP_TIMEOUT="5", **(sender_env or {}),
            ),
            root / "sender.log",
        )  # fmt: skip

        self.bulk = None
        if streams:
            first = streams.split(":", 1)[0]
            self.sender.env["MAILPOOL_SENDER_STREAMS"] = first
            self.bulk = Child("sender-bulk", ["sender"],
                              {**self.sender.env, "MAILPOOL_SENDER_STREAMS": "bulk"},
                              root / "sender-bulk.log")  # fmt: skip

        #: ``mailpool webhooks``, when ``hooks_env`` says where to (MAILPOOL_WEBHOOK_URL …).
        self.webhooks = None if hooks_env is None else Child(
            "webhooks", ["webhooks"],
            self._via_proxy(MAILPOOL_WEBHOOK_METRICS_PORT="0", MAILPOOL_WAIT_TIME="1",
                            MAILPOOL_WEBHOOK_SCHEDULE="1,1,2,2,3", **hooks_env),
            root / "webhooks.log",
        )  # fmt: skip

    @property
    def children(self) -> list[Child]:
        """The mailpool processes of the stack (the engine last)."""
        hooks = [] if self.webhooks is None else [self.webhooks]
        bulk = [] if self.bulk is None else [self.bulk]
        return [self.intake, self.sender, *bulk, *hooks, self.engine]

    def _via_proxy(self, **extra: str) -> dict[str, str]:
        return {**self.base_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:0", **extra}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.intake_port}"

    async def __aenter__(self) -> "Stack":
        await self.proxy.__aenter__()
        via = self.proxy.url
        if self.answers is not None:
            await self.answers.__aenter__()
            via = self.answers.url
        for child in self.children[:-1]:
            child.env["AWS_ENDPOINT_URL"] = via
        await self.engine.start()
        create = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailpool", "queues", "create",
            "--endpoint-url", f"http://127.0.0.1:{self.engine_port}",
            env=self.base_env, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await create.wait() == 0
        await self.intake.start()
        await self.sender.start()
        if self.bulk is not None:
            await self.bulk.start()
        if self.webhooks is not None:
            await self.webhooks.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for child in self.children:
            await child.ensure_stopped()
        await self.proxy.__aexit__()
        if self.answers is not None:
            await self.answers.__aexit__()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.root.glob("*.log")))


class Producers:
    """HTTP clients that retry, with the same Idempotency-Key, until they get a 202."""

    def __init__(
        self,
        url: str,
        ledger: Ledger,
        *,
        deadline_s: float = 60.0,
        to: Sequence[str] = ("sink@example.test",),
        stream: str | None = None,
    ) -> None:
        self.url = url
        #: The stream the emails name (none: the default), and their groups' prefix.
        self.stream = stream
        self.prefix = f"{stream}-group" if stream else "group"
        self.ledger = ledger
        self.deadline_s = deadline_s
        self.to = list(to)

    async def submit(self, http: aiohttp.ClientSession, group: str, key: str) -> None:
        email = {"from": "producer@example.test", "to": self.to,
                 "subject": "fault test", "text": key, "group": group}  # fmt: skip
        if self.stream:
            email["stream"] = self.stream
        until = time.monotonic() + self.deadline_s
        last: tuple[int, str] | None = None
        while time.monotonic() < until:
            self.ledger.attempts += 1
            try:
                async with http.post(f"{self.url}/v1/emails", json=email,
                                     headers={"Idempotency-Key": key}) as response:  # fmt: skip
                    if response.status == 202:
                        self.ledger.accept((await response.json())["id"], group)
                        return
                    last = (response.status, await response.text())
                    self.ledger.refusals[response.status] = (
                        self.ledger.refusals.get(response.status, 0) + 1
                    )
            except (TimeoutError, aiohttp.ClientError):
                self.ledger.refusals[0] = self.ledger.refusals.get(0, 0) + 1
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"no 202 for {key} within {self.deadline_s}s (answers so far, by status: "
            f"{self.ledger.refusals}; last: {last})"
        )

    async def run(self, groups: int, per_group: int, *, pause_s: float = 0.0) -> None:
        """Each group's emails one after another (each after the last one's 202)."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:

            async def group_chain(g: int) -> None:
                for i in range(per_group):
                    key = f"k-{self.prefix}-{g}-{i}-{uuid.uuid4().hex[:6]}"
                    await self.submit(http, f"{self.prefix}-{g}", key)
                    if pause_s:
                        await asyncio.sleep(pause_s)

            await asyncio.gather(*(group_chain(g) for g in range(groups)))


@dataclass
class Answer:
    """What one request of a flood got."""

    status: int  # 0: no answer
    code: str
    seconds: float
    message_id: str = ""


async def flood(url: str, rate: float, seconds: float) -> list[Answer]:
    """Open-loop load: ``rate`` emails/s for ``seconds``, each sent once (no retries), each
    with its own Idempotency-Key; every answer with its time."""
    answers: list[Answer] = []
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:

        async def one(number: int) -> None:
            email = {"from": "producer@example.test", "to": "sink@example.test",
                     "subject": "flood", "text": str(number)}  # fmt: skip
            started = time.monotonic()
            key = {"Idempotency-Key": uuid.uuid4().hex}
            try:
                async with http.post(f"{url}/v1/emails", json=email, headers=key) as response:
                    body = await response.json()
                    took = time.monotonic() - started
                    if response.status == 202:
                        answers.append(Answer(202, "", took, body["id"]))
                    else:
                        answers.append(Answer(response.status, body["error"]["code"], took))
            except (TimeoutError, aiohttp.ClientError):
                answers.append(Answer(0, "", time.monotonic() - started))

        tasks = []
        began = time.monotonic()
        for number in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, began + number / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(number)))
        await asyncio.gather(*tasks)
    return answers
