"""The tracker recognises a message received again under a new receipt."""

import pytest

from pool.messages import Received
from sender import tracker as tracking
from sender.tracker import Tracker


def received(message_id: str, receipt: str) -> Received:
    return Received(shard=0, message_id=message_id, receipt=receipt, body="{}", group="g",
                    receive_count=1, sent_at=0.0)  # fmt: skip


def test_a_message_received_again_is_told_apart_by_what_became_of_the_first_copy() -> None:
    tracker = Tracker(pool=None, visibility_s=30)  # type: ignore[arg-type]  # no heartbeat here
    first, sending = received("m1", "r1"), received("m2", "r2")
    tracker.hold([first, sending], 0.0)
    assert tracker.again(first) is None  # the same receipt: not a repeat
    assert tracker.again(received("m2", "r2-again")) == "held"  # still being sent
    tracker.mark_delivered(first)
    assert tracker.again(received("m1", "r1-again")) == "delivered"
    tracker.drop(first)  # settled: still remembered as delivered
    assert tracker.again(received("m1", "r1-later")) == "delivered"
    tracker.drop(sending)  # dead-lettered or retried: a new copy is new work
    assert tracker.again(received("m2", "r2-later")) is None
    assert tracker.again(received("m3", "r3")) is None


def test_the_memory_of_delivered_messages_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "RECENT_DELIVERED", 3)
    tracker = Tracker(pool=None, visibility_s=30)  # type: ignore[arg-type]
    for n in range(5):
        message = received(f"m{n}", f"r{n}")
        tracker.hold([message], 0.0)
        tracker.mark_delivered(message)
        tracker.drop(message)
    assert [tracker.again(received(f"m{n}", "x")) for n in range(5)] == [
        None, None, "delivered", "delivered", "delivered"
    ]  # fmt: skip
