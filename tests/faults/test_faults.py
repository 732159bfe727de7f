"""Nothing accepted is lost: failure scenarios across real processes, each reconciled.

Every scenario ends the same way: every id that got a 202 reached the SMTP server (or,
where the scenario says so, its DLQ), no group was reordered, nothing arrived that was
never accepted, and duplicates (allowed only after a crash) are counted. The
reconciliation line is printed: `pytest -m faults -s` shows them.
"""

import asyncio
import pathlib
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from pool.config import PoolConfig
from pool.dlq import list_dead_letters
from pool.messages import Outgoing
from pool.sqs import SqsClient
from tests.faults.harness import (
    Ledger,
    Producers,
    Reconciliation,
    Stack,
    endings,
    flood,
    reconcile,
    status_mismatches,
)
from tests.support.answers import MALFORMED
from tests.support.disk import fill
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import until
from tests.support.webhook_sink import WebhookSink
from webhooks.signing import new_secret

SECRET = new_secret()

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


def delivered(sink: SmtpSink) -> set[str]:
    return {d.mailpool_id for d in sink.deliveries}


def settle(
    ledger: Ledger,
    sink: SmtpSink,
    scenario: str,
    dead: frozenset[str] = frozenset(),
    hooks: WebhookSink | None = None,
) -> Reconciliation:
    result = reconcile(ledger, sink, dead=dead)
    line = f"attempts={ledger.attempts} refusals={ledger.refusals}"
    if hooks is not None:
        ends = endings(ledger, hooks.events(), len(hooks.deliveries) - len(hooks.events()))
        line += f" terminal_missing={len(ends.missing)} terminal_several={len(ends.several)}"
        line += f" event_repeats={ends.repeats}"
        assert ends.missing == []
        assert ends.several == []  # one ending per email; repeats only with the same id
    print(result.line(scenario), line)
    assert result.lost == []
    assert result.out_of_order == []
    assert result.unexpected == []
    return result


async def all_delivered(
    ledger: Ledger, sink: SmtpSink, within: float = 60, hooks: WebhookSink | None = None
) -> None:
    await until(lambda: set(ledger.accepted) <= delivered(sink), within)
    if hooks is not None:  # and each one's ending has reached the webhook endpoint
        await until(lambda: not endings(ledger, hooks.events(), 0).missing, within)


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookSink]:
    """A webhook endpoint that verifies every event with the reference library."""
    async with WebhookSink(SECRET) as sink:
        yield sink


def hooks_env(sink: WebhookSink) -> dict[str, str]:
    return {"MAILPOOL_WEBHOOK_URL": sink.url, "MAILPOOL_WEBHOOK_SECRET": SECRET,
            "MAILPOOL_WEBHOOK_ALLOW_PRIVATE": "true"}  # fmt: skip


def pool_of(stack: Stack) -> PoolConfig:
    env = stack.base_env
    return PoolConfig(
        prefix=env["MAILPOOL_QUEUE_PREFIX"], shards=int(env["MAILPOOL_SHARDS"]),
        endpoint_url=f"http://127.0.0.1:{stack.engine_port}", region="us-east-1",
    )  # fmt: skip


@pytest.mark.parametrize("worker", ["sender", "lambda"])
async def test_1_sender_killed_with_hundreds_in_flight(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink, hooks: WebhookSink, worker: str
) -> None:
    smtp_sink.handler.delay_s = 0.02
    # The Lambda worker: 30 invocations of 10 at once hold as many as the sender's 300.
    concurrency = {"MAILPOOL_CONCURRENCY": "300", "MAILPOOL_LAMBDA_CONCURRENCY": "30"}
    async with Stack(tmp_path, smtp_sink, sender_env=concurrency, hooks_env=hooks_env(hooks),
                     state=True, worker=worker) as stack:  # fmt: skip
        ledger = Ledger()
        stack.sender.pause()  # let a backlog build, so the sender takes hundreds at once
        await Producers(stack.url, ledger).run(groups=30, per_group=10)
        stack.sender.resume()
        await until(lambda: len(smtp_sink.deliveries) >= 20)
        await stack.sender.signal(signal.SIGKILL)
        assert len(delivered(smtp_sink)) < 300, "the kill came too late to test anything"
        await stack.sender.start()
        await all_delivered(ledger, smtp_sink, hooks=hooks)
        # Each status record agrees with the email's terminal event.
        assert await status_mismatches(stack.url, ledger, hooks.events()) == []
    assert settle(ledger, smtp_sink, f"1 {worker} kill -9", hooks=hooks).accepted == 300


async def test_1b_a_bulk_sender_killed_does_not_delay_transactional_mail(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink
) -> None:
    smtp_sink.handler.delay_s = 0.02
    streams = "transactional:1:8,bulk:1:1:0.75"
    async with Stack(tmp_path, smtp_sink, streams=streams, state=True) as stack:
        assert stack.bulk is not None
        ledger = Ledger()
        stack.bulk.pause()  # a bulk backlog builds
        await Producers(stack.url, ledger, stream="bulk").run(groups=10, per_group=15)
        bulk = set(ledger.accepted)
        stack.bulk.resume()
        await until(lambda: len(delivered(smtp_sink) & bulk) >= 10)
        await stack.bulk.signal(signal.SIGKILL)
        assert len(delivered(smtp_sink) & bulk) < len(bulk), "the kill came too late"
        # With the bulk sender dead and its backlog waiting, transactional mail still goes.
        started = time.monotonic()
        await Producers(stack.url, ledger, stream="transactional").run(groups=5, per_group=6)
        urgent = set(ledger.accepted) - bulk
        await until(lambda: urgent <= delivered(smtp_sink), 15)
        took = time.monotonic() - started
        assert stack.bulk.process is not None
        assert stack.bulk.process.returncode is not None
        await stack.bulk.start()
        await all_delivered(ledger, smtp_sink)
    print(f"[1b bulk sender kill -9] transactional: 30 delivered in {took:.1f} s while bulk "
          "waited")  # fmt: skip
    assert settle(ledger, smtp_sink, "1b bulk sender kill -9").accepted == 180


async def test_2_intake_killed_under_load(tmp_path: pathlib.Path, smtp_sink: SmtpSink) -> None:
    # With the state store: a key claimed by the killed intake is taken over on retry.
    async with Stack(tmp_path, smtp_sink, state=True) as stack:
        ledger = Ledger()
        load = asyncio.create_task(
            Producers(stack.url, ledger).run(groups=20, per_group=10, pause_s=0.02)
        )
        await until(lambda: len(ledger.accepted) >= 40)
        await stack.intake.signal(signal.SIGKILL)
        await asyncio.sleep(1)
        await stack.intake.start()
        await load
        await all_delivered(ledger, smtp_sink)
        assert await status_mismatches(stack.url, ledger, None) == []
    result = settle(ledger, smtp_sink, "2 intake kill -9")
    assert result.accepted == 200
    assert ledger.refusals.get(0, 0) > 0  # clients did see the crash, and retried


async def test_3_sqs_unreachable_then_back(tmp_path: pathlib.Path, smtp_sink: SmtpSink) -> None:
    async with Stack(tmp_path, smtp_sink) as stack:
        ledger = Ledger()
        load = asyncio.create_task(
            Producers(stack.url, ledger).run(groups=10, per_group=10, pause_s=0.1)
        )
        await until(lambda: len(ledger.accepted) >= 20)
        readiness = []
        async with aiohttp.ClientSession() as http:
            for mode in ("reset", "blackhole"):
                stack.proxy.set_mode(mode)
                await asyncio.sleep(3)
                async with http.get(f"{stack.url}/readyz") as response:
                    readiness.append(response.status)
            stack.proxy.set_mode("pass")
            await until(lambda: check_ready(http, stack.url), 20)
        await load
        await all_delivered(ledger, smtp_sink)
    assert readiness == [503, 503]
    assert ledger.refusals.get(503, 0) > 0  # 503s, never a 202 for what SQS lacked
    settle(ledger, smtp_sink, "3 SQS unreachable")


async def check_ready(http: aiohttp.ClientSession, url: str) -> bool:
    async with http.get(f"{url}/readyz") as response:
        return response.status == 200


async def test_4_sqs_throttling_calls_and_entries(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink
) -> None:
    engine = ("--throttle", "8", "--entry-faults", "0.2")
    async with Stack(tmp_path, smtp_sink, engine_args=engine) as stack:
        ledger = Ledger()
        await Producers(stack.url, ledger).run(groups=20, per_group=8)
        await all_delivered(ledger, smtp_sink)
        async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/metrics") as response:
            metrics = await response.text()

    def throttled(name: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith(name) and 'outcome="throttled"' in line
        )

    # Single entries were refused for rate, retried, and accepted. (Whole calls may be
    # refused too, but a throttled coalescer paces its next calls, so not necessarily.)
    print("throttled calls", throttled("mailpool_sqs_calls_total"))
    assert throttled("mailpool_sqs_entry_failures_total") > 0
    settle(ledger, smtp_sink, "4 SQS throttling")


async def test_5_smtp_down_4xx_5xx_and_slow(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink, hooks: WebhookSink
) -> None:
    async with Stack(tmp_path, smtp_sink, hooks_env=hooks_env(hooks)) as stack:
        ledger = Ledger()
        # Down: connections refused, then back.
        await smtp_sink.go_down()
        await Producers(stack.url, ledger).run(groups=5, per_group=4)
        await asyncio.sleep(2)
        assert delivered(smtp_sink) == set()
        await smtp_sink.come_back()
        await all_delivered(ledger, smtp_sink)
        # 4xx: retried with backoff, then delivered.
        smtp_sink.handler.data_failures = 5
        await Producers(stack.url, ledger).run(groups=5, per_group=2)
        await all_delivered(ledger, smtp_sink)
        # Slow beyond the visibility timeout (3 s): extended, delivered once.
        smtp_sink.handler.delay_s = 4.5
        slow = Ledger()
        await Producers(stack.url, slow).run(groups=1, per_group=1)
        await until(lambda: set(slow.accepted) <= delivered(smtp_sink), 30)
        smtp_sink.handler.delay_s = 0
        await asyncio.sleep(3.5)  # a lapsed visibility would deliver it again by now
        # 5xx for the recipient: to the DLQ with its reason, never delivered.
        smtp_sink.handler.rcpt_replies["sink@example.test"] = "550 5.1.1 no such user"
        doomed = Ledger()
        await Producers(stack.url, doomed).run(groups=2, per_group=1)
        config = pool_of(stack)
        async with SqsClient.from_config(config) as client:

            async def dead_letters() -> bool:
                return len(await list_dead_letters(client, config)) == 2

            await until(dead_letters, 30)
            letters = await list_dead_letters(client, config)
        # 5xx for some recipients: sent to the others, bounced for those.
        smtp_sink.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 no such user"
        smtp_sink.handler.rcpt_replies.pop("sink@example.test")
        partly = Ledger()
        await Producers(stack.url, partly, to=["sink@example.test", "gone@example.test"]).run(
            groups=2, per_group=1
        )
        ledger.accepted.update(slow.accepted)
        ledger.order.update({f"slow-{k}": v for k, v in slow.order.items()})
        ledger.accepted.update(partly.accepted)
        await all_delivered(ledger, smtp_sink, hooks=hooks)
        await until(lambda: not endings(doomed, hooks.events(), 0).missing, 30)
    result = settle(ledger, smtp_sink, "5 SMTP down/4xx/slow", hooks=hooks)
    for email_id in doomed.accepted:  # every recipient refused: it ends bounced
        [ending] = [e for e in hooks.events(email_id) if e["data"]["terminal"]]
        assert ending["type"] == "email.bounced"
        assert ending["data"]["recipients"][0]["enhanced"] == "5.1.1"
    for email_id in partly.accepted:  # sent to one, bounced for the other
        kinds = {e["type"]: e for e in hooks.events(email_id)}
        assert kinds["email.sent"]["data"]["terminal"]
        assert [r["position"] for r in kinds["email.bounced"]["data"]["recipients"]] == [1]
    assert any(e["type"] == "email.deferred" for e in hooks.events())  # the 4xx retries
    assert [d.mailpool_id for d in smtp_sink.deliveries].count(next(iter(slow.accepted))) == 1
    assert {letter.reason for letter in letters} == {"smtp_550_all_recipients"}
    assert not set(doomed.accepted) & delivered(smtp_sink)
    assert result.duplicates == 0


async def test_6_a_poison_message_goes_to_the_dlq_and_the_loop_lives(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink, hooks: WebhookSink
) -> None:
    async with Stack(tmp_path, smtp_sink, hooks_env=hooks_env(hooks)) as stack:
        config = pool_of(stack)
        async with SqsClient.from_config(config) as client:
            url = await client.queue_url(config.queue_name(0))
            await client.send_batch(url, [Outgoing(body="{not an envelope", group="p",
                                                   dedup_id="poison")])  # fmt: skip
            ledger = Ledger()
            await Producers(stack.url, ledger).run(groups=4, per_group=5)
            await all_delivered(ledger, smtp_sink, hooks=hooks)

            async def one_dead() -> bool:
                return len(await list_dead_letters(client, config)) == 1

            await until(one_dead, 20)
            [letter] = await list_dead_letters(client, config)
    assert letter.reason == "undecodable_envelope"
    settle(ledger, smtp_sink, "6 poison message", hooks=hooks)


async def test_7_queue_engine_killed_under_load(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink, hooks: WebhookSink
) -> None:
    # Requests have 1 s (claim and send together), shorter than the engine's 2 s outage.
    deadline = {"MAILPOOL_SEND_DEADLINE": "1"}
    async with Stack(tmp_path, smtp_sink, hooks_env=hooks_env(hooks), state=True,
                     intake_env=deadline) as stack:  # fmt: skip
        ledger = Ledger()
        load = asyncio.create_task(
            Producers(stack.url, ledger).run(groups=10, per_group=15, pause_s=0.05)
        )
        await until(lambda: len(ledger.accepted) >= 30)
        await stack.engine.signal(signal.SIGKILL)
        await asyncio.sleep(2)
        await stack.engine.start()
        await load
        await all_delivered(ledger, smtp_sink, hooks=hooks)
        # The engine's tables survived the kill with its queues: statuses agree.
        assert await status_mismatches(stack.url, ledger, hooks.events()) == []
    assert ledger.refusals.get(503, 0) > 0  # while it was down: 503s, not false 202s
    settle(ledger, smtp_sink, "7 localsqs kill -9", hooks=hooks)


async def test_8_sigterm_under_load_drains_and_releases_at_once(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink
) -> None:
    smtp_sink.handler.delay_s = 0.1
    # A 30 s visibility timeout: anything not released at stop would wait that long.
    async with Stack(tmp_path, smtp_sink, visibility_s=30) as stack:
        ledger = Ledger()
        stack.sender.pause()
        await Producers(stack.url, ledger).run(groups=20, per_group=10)
        stack.sender.resume()
        await until(lambda: len(smtp_sink.deliveries) >= 20)
        started = time.monotonic()
        assert await stack.sender.signal(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5 + 2  # MAILPOOL_GRACE is 5
        assert len(delivered(smtp_sink)) < 200
        smtp_sink.handler.delay_s = 0
        restarted = time.monotonic()
        await stack.sender.start()
        await all_delivered(ledger, smtp_sink, within=25)
        assert time.monotonic() - restarted < 25  # released, not waiting out 30 s
    assert settle(ledger, smtp_sink, "8 SIGTERM drain").duplicates == 0


async def test_9_malformed_sqs_answers_fail_calls_never_processes(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink
) -> None:
    async with Stack(tmp_path, smtp_sink, answers=True) as stack:
        assert stack.answers is not None
        ledger = Ledger()
        load = asyncio.create_task(
            Producers(stack.url, ledger).run(groups=10, per_group=10, pause_s=0.05)
        )
        await until(lambda: len(ledger.accepted) >= 20)
        answers = stack.answers
        # Deletes and visibility changes answered with garbage while emails keep flowing, so
        # that delivered ones cannot be deleted; then sends and receives.
        for action in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
            answers.malform(action, MALFORMED["array"])
        await until(lambda: answers.given.get("DeleteMessageBatch", 0) > 0, 20)
        await asyncio.sleep(3)
        answers.heal()
        for action in ("SendMessageBatch", "ReceiveMessage"):
            answers.malform(action, MALFORMED["array"])
        more = asyncio.create_task(Producers(stack.url, ledger).run(groups=5, per_group=4))
        await until(lambda: answers.given.get("SendMessageBatch", 0) > 0, 20)
        await asyncio.sleep(2)
        answers.heal()
        await asyncio.gather(load, more)
        await all_delivered(ledger, smtp_sink)
        async with aiohttp.ClientSession() as http:
            assert await check_ready(http, stack.url)
        # Both processes lived through it: no restart, nothing dead.
        assert stack.intake.process is not None
        assert stack.sender.process is not None
        assert stack.intake.process.returncode is None
        assert stack.sender.process.returncode is None
    for action in ("SendMessageBatch", "DeleteMessageBatch", "ReceiveMessage"):
        assert stack.answers.given.get(action, 0) > 0, action
    assert ledger.refusals.get(503, 0) > 0
    # The sender held what it could not delete: nothing was delivered twice.
    assert settle(ledger, smtp_sink, "9 malformed answers").duplicates == 0


async def test_10_overload_is_shed_within_the_deadline(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink
) -> None:
    # 2 calls/s per queue and action: about 40 emails/s over 2 shards; offered: 10x that.
    async with Stack(tmp_path, smtp_sink, engine_args=("--throttle", "2")) as stack:
        answers = await flood(stack.url, rate=400, seconds=3)
        ledger = Ledger()
        for answer in answers:
            if answer.status == 202:
                ledger.accept(answer.message_id, answer.message_id)
        await all_delivered(ledger, smtp_sink, within=90)
        await asyncio.sleep(2)  # room for anything stored behind a 503 to arrive
    codes = {(a.status, a.code) for a in answers}
    assert codes <= {(202, ""), (503, "overloaded"), (503, "unavailable")}, codes
    assert (503, "overloaded") in codes
    # Every answer within the deadline (2 s) plus its margin (1 s), with room for the CPU.
    assert max(a.seconds for a in answers) < 2 + 1 + 1
    # A 503 means not stored: nothing arrives that was not answered 202.
    result = settle(ledger, smtp_sink, "10 overload")
    assert result.accepted >= 40
    assert result.duplicates == 0


async def test_11_a_full_disk_under_the_engine_is_an_outage_not_a_hang(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink, small_disk: pathlib.Path
) -> None:
    async with Stack(tmp_path, smtp_sink, engine_dir=small_disk / "sqs") as stack:
        ledger = Ledger()
        load = asyncio.create_task(
            Producers(stack.url, ledger).run(groups=10, per_group=10, pause_s=0.05)
        )
        await until(lambda: len(ledger.accepted) >= 20)
        filler = fill(small_disk)
        await asyncio.sleep(4)
        filler.unlink()
        await load
        await all_delivered(ledger, smtp_sink)
        assert stack.engine.process is not None
        assert stack.engine.process.returncode is None  # it served again without a restart
    assert ledger.refusals.get(503, 0) > 0
    assert "cannot write to the data directory" in stack.logs()
    assert settle(ledger, smtp_sink, "11 full disk").duplicates == 0


async def test_12_a_webhook_endpoint_down_for_a_while_gets_every_event_and_a_dead_one_slows_none(
    tmp_path: pathlib.Path, smtp_sink: SmtpSink, hooks: WebhookSink
) -> None:
    async with WebhookSink(SECRET, delay_s=30, status=503) as dead:  # never answers in time
        webhooks_file = tmp_path / "webhooks.json"
        webhooks_file.write_bytes(orjson.dumps({"endpoints": [
            {"name": name, "url": sink.url, "secret": SECRET, "allow_http": True,
             "internal": True}
            for name, sink in (("live", hooks), ("dead", dead))
        ]}))  # fmt: skip
        hooks.status = 503  # the live endpoint is down at first
        env = {"MAILPOOL_WEBHOOKS_FILE": str(webhooks_file), "MAILPOOL_WEBHOOK_TIMEOUT": "1",
               "MAILPOOL_WEBHOOK_COOLDOWN": "2"}  # fmt: skip
        async with Stack(tmp_path, smtp_sink, hooks_env=env) as stack:
            ledger = Ledger()
            await Producers(stack.url, ledger).run(groups=10, per_group=3)
            await all_delivered(ledger, smtp_sink)
            await until(lambda: len(hooks.requests) >= 10)  # it was tried, and failed
            assert hooks.deliveries == []
            hooks.status = 204  # back up: retried on its schedule, every event arrives
            await all_delivered(ledger, smtp_sink, hooks=hooks)
            # A later email reaches the live endpoint within seconds, dead one or not.
            started = asyncio.get_running_loop().time()
            later = Ledger()
            await Producers(stack.url, later).run(groups=1, per_group=1)
            await all_delivered(later, smtp_sink, within=15, hooks=hooks)
            took = asyncio.get_running_loop().time() - started
    ledger.accepted.update(later.accepted)
    assert took < 10
    settle(ledger, smtp_sink, "12 webhook endpoint down, then back", hooks=hooks)
