"""Status folding and what causes a suppression, without a table."""

from core import events as ev
from core.events import Event, Recipient
from state import status
from state.suppressions import caused_by


def event(kind: str, *recipients: Recipient, at: float, **extra: object) -> Event:
    return Event(type=kind, email_id="e1", recipients=recipients, attempt=1, scope="shop",
                 created_at=at, **extra)  # type: ignore[arg-type]  # fmt: skip


def test_the_email_takes_its_recipients_highest_state_and_records_hold_no_address() -> None:
    a, b = Recipient(0, "a@example.test"), Recipient(1, "b@example.test", 550, "5.1.1")
    events = [
        event(ev.DEFERRED, a, b, at=1.0),
        event(ev.SENT, a, at=2.0, terminal=True),
        event(ev.BOUNCED, b, at=2.0),
        event(ev.DELIVERED, a, at=3.0),
        event(ev.DELIVERY_DELAYED, a, at=4.0),  # late and lower: changes nothing
    ]
    records = status.records(events, 86_400)
    assert all("example.test" not in str(r) for r in records)
    doc = status.fold("e1", records, 0.5)
    assert [(r["position"], r["state"], r["code"]) for r in doc["recipients"]] == [
        (0, "delivered", None),
        (1, "bounced", 550),
    ]
    assert doc["state"] == "bounced"
    assert doc["attempts"] == 1
    assert status.fold("e1", [], 0.5)["state"] == "queued"


def test_hard_bounces_complaints_and_unsubscribes_suppress_soft_bounces_do_not() -> None:
    hard = Recipient(0, "Gone@Example.TEST", 550, "5.1.1")
    full = Recipient(1, "full@example.test", 552, "5.2.2")
    bounced = caused_by(event(ev.BOUNCED, hard, full, at=1.0))
    assert [(scope, s.address, s.reason) for scope, s in bounced] == [
        ("shop", "Gone@example.test", "hard_bounce")
    ]
    ses = caused_by(event(ev.BOUNCED, Recipient(0, "x@example.test"), at=1.0,
                          reason="Permanent/General"))  # fmt: skip
    assert [s.reason for _, s in ses] == ["hard_bounce"]
    complained = caused_by(event(ev.COMPLAINED, Recipient(0, "c@example.test"), at=1.0))
    assert [s.reason for _, s in complained] == ["complaint"]
    assert caused_by(event(ev.SENT, hard, at=1.0)) == []
