"""One place settles a decided message: its events first, then the one SQS call its outcome
calls for; resumable after a failure without publishing twice. Both faces use it: the
sender deletes what it delivered, under a Lambda event source the mapping does."""

from typing import Any, cast

import pytest

from aws.errors import Unavailable
from core.events import SENT, Event, Recipient
from pool.messages import Pointer, Received
from pool.pool import QueuePool
from sender.delivery import Outcome, Settle
from sender.settle import Settler
from state.publisher import Publisher


class Recorder:
    """The pool's and the publisher's calls, in order; fails the ones named in ``failing``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.failing: set[str] = set()

    async def _call(self, name: str, detail: Any) -> None:
        if name in self.failing:
            self.failing.discard(name)
            raise Unavailable(f"{name} did not answer")
        self.calls.append((name, detail))

    async def publish(self, events: tuple[Event, ...]) -> None:
        await self._call("publish", len(events))

    async def delete(self, message: Received) -> None:
        await self._call("delete", message.receipt)

    async def dead_letter(self, message: Received, reason: str, *, delete: bool = True) -> None:
        await self._call("dead_letter", (reason, delete))

    async def set_visibility(self, message: Received, seconds: int) -> None:
        await self._call("hide", seconds)


def settler(recorder: Recorder, *, source_deletes: bool) -> Settler:
    pool, publisher = cast(QueuePool, recorder), cast(Publisher, recorder)
    return Settler(pool, publisher, source_deletes=source_deletes)


def message(blob: bool = False) -> Received:
    pointer = Pointer("bucket", "key", 10) if blob else None
    return Received(0, "m1", "r1", "{}", "g", 1, 0.0, blob=pointer)


SENT_EVENT = (Event(type=SENT, email_id="e1", recipients=(Recipient(0, "a@example.test"),),
                    attempt=1),)  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "sender", "lambda_"),
    [
        (Outcome(Settle.DELETE, "e1", events=SENT_EVENT), ("delete", "r1"), None),
        (
            Outcome(Settle.DEAD_LETTER, "e1", "permanent", SENT_EVENT),
            ("dead_letter", ("permanent", True)),
            ("dead_letter", ("permanent", False)),
        ),
        (
            Outcome(Settle.RETRY, "e1", "smtp_451", SENT_EVENT, delay_s=30),
            ("hide", 30),
            ("hide", 30),
        ),
    ],
    ids=["delivered", "dead-lettered", "retried"],
)
async def test_events_go_first_then_the_one_call_the_outcome_needs(
    outcome: Outcome, sender: tuple[str, Any], lambda_: tuple[str, Any] | None
) -> None:
    for source_deletes, call in ((False, sender), (True, lambda_)):
        recorder = Recorder()
        await settler(recorder, source_deletes=source_deletes).settlement(message(), outcome).run()
        assert recorder.calls == [("publish", 1)] + ([call] if call else [])


async def test_under_an_event_source_a_delivered_body_in_s3_goes_with_its_message() -> None:
    recorder = Recorder()
    outcome = Outcome(Settle.DELETE, "e1", events=SENT_EVENT)
    await settler(recorder, source_deletes=True).settlement(message(blob=True), outcome).run()
    assert recorder.calls == [("publish", 1), ("delete", "r1")]
    failing = Recorder()
    failing.failing.add("delete")  # best effort: the mapping deletes, the lifecycle expires
    await settler(failing, source_deletes=True).settlement(message(blob=True), outcome).run()
    assert failing.calls == [("publish", 1)]


async def test_a_settlement_that_failed_goes_on_without_publishing_twice() -> None:
    recorder = Recorder()
    recorder.failing.add("delete")
    settlement = settler(recorder, source_deletes=False).settlement(
        message(), Outcome(Settle.DELETE, "e1", events=SENT_EVENT)
    )
    with pytest.raises(Unavailable):
        await settlement.run()
    await settlement.run()
    await settlement.run()  # done: nothing more
    assert recorder.calls == [("publish", 1), ("delete", "r1")]
    unpublished = Recorder()
    unpublished.failing.add("publish")
    settlement = settler(unpublished, source_deletes=False).settlement(
        message(), Outcome(Settle.DEAD_LETTER, "e1", "permanent", SENT_EVENT)
    )
    with pytest.raises(Unavailable):
        await settlement.run()
    assert unpublished.calls == []  # nothing recorded before its events
    await settlement.run()
    assert unpublished.calls == [("publish", 1), ("dead_letter", ("permanent", True))]
