"""SES feedback: SES's event notifications turned into mailpool events.

A configuration set publishes Delivery, Bounce, Complaint, DeliveryDelay and Reject events
to an SNS topic; an SQS queue ``<prefix>-ses-events`` subscribed to it (raw message delivery
or SNS-wrapped, both are read) holds them; ``mailpool webhooks`` turns each into a mailpool
event for the email named by the ``mailpool-id`` tag the SES provider sets on every send.
Events of emails not sent by mailpool (no such tag) are dropped.

    Delivery                  email.delivered          the receiving server accepted it
    Bounce (Permanent)        email.bounced            refused for good, per recipient
    Bounce (Transient)        email.bounced            SES gave up on a soft bounce
    Complaint                 email.complained         a recipient marked it as spam
    DeliveryDelay             email.delivery_delayed   not accepted yet; SES keeps trying
    Reject                    email.failed             SES refused to send it (a virus, …)

They follow the email's terminal ``email.sent`` and are never terminal themselves.
Recipients are numbered by their position in SES's ``mail.destination`` (to, cc, bcc as
sent).
"""

import re
from typing import Any

import orjson

from core import events as ev
from core.events import ID_TAG, SCOPE_TAG, Event, Recipient, enhanced_code

_CODE = re.compile(r"\b([245]\d\d)\b")


def feedback(body: str) -> dict[str, Any] | None:
    """The SES event record a queue body holds (raw or SNS-wrapped), or None."""
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict) and doc.get("Type") == "Notification":
            doc = orjson.loads(doc["Message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("mail"), dict) else None


def to_event(record: dict[str, Any]) -> Event | None:
    """The mailpool event for one SES event record; None when it is not one of ours or of
    a kind mailpool does not report (Send, Open, Click, …)."""
    kind = record.get("eventType") or record.get("notificationType")
    mail = record["mail"]
    email_id = (mail.get("tags", {}).get(ID_TAG) or [None])[0]
    if not isinstance(email_id, str):
        return None
    destination = [str(a) for a in mail.get("destination", [])]
    converted = _convert(str(kind), record, destination)
    if converted is None:
        return None
    kind_name, recipients, reason, origin = converted
    scope = (mail.get("tags", {}).get(SCOPE_TAG) or [None])[0]
    return Event(
        scope=scope if isinstance(scope, str) else None,
        type=kind_name,
        email_id=email_id,
        recipients=recipients,
        attempt=1,
        provider="ses",
        reason=reason,
        origin=origin,
    )


Converted = tuple[str, tuple[Recipient, ...], str | None, str]


def _convert(kind: str, record: dict[str, Any], destination: list[str]) -> Converted | None:
    if kind == "Delivery":
        part = record["delivery"]
        reply = str(part.get("smtpResponse", ""))
        code, enhanced = _codes(reply)
        who = _recipients(destination, part.get("recipients", []), code, enhanced)
        return ev.DELIVERED, who, None, str(part.get("timestamp", ""))
    if kind == "Bounce":
        part = record["bounce"]
        who = tuple(_bounced(destination, r) for r in part.get("bouncedRecipients", []))
        reason = f"{part.get('bounceType')}/{part.get('bounceSubType')}"
        return ev.BOUNCED, who, reason, str(part.get("feedbackId", ""))
    if kind == "Complaint":
        part = record["complaint"]
        addresses = [r.get("emailAddress", "") for r in part.get("complainedRecipients", [])]
        who = _recipients(destination, addresses, None, None)
        reason = part.get("complaintFeedbackType")
        return ev.COMPLAINED, who, reason, str(part.get("feedbackId", ""))
    if kind == "DeliveryDelay":
        part = record["deliveryDelay"]
        who = tuple(_bounced(destination, r) for r in part.get("delayedRecipients", []))
        return ev.DELIVERY_DELAYED, who, part.get("delayType"), str(part.get("timestamp", ""))
    if kind == "Reject":
        reason = f"ses_rejected: {record['reject'].get('reason', '')}"
        who = _recipients(destination, destination, None, None)
        return ev.FAILED, who, reason, str(record["mail"].get("messageId", ""))
    return None


def _position(destination: list[str], address: str) -> int:
    lowered = [d.lower() for d in destination]
    return lowered.index(address.lower()) if address.lower() in lowered else -1


def _recipients(
    destination: list[str], addresses: list[str], code: int | None, enhanced: str | None
) -> tuple[Recipient, ...]:
    return tuple(Recipient(_position(destination, a), a, code, enhanced) for a in addresses)


def _bounced(destination: list[str], entry: dict[str, Any]) -> Recipient:
    address = str(entry.get("emailAddress", ""))
    diagnostic = str(entry.get("diagnosticCode", ""))
    code, enhanced = _codes(diagnostic.split(";", 1)[-1])
    return Recipient(
        _position(destination, address), address, code, entry.get("status") or enhanced
    )


def _codes(reply: str) -> tuple[int | None, str | None]:
    match = _CODE.search(reply)
    code = int(match.group(1)) if match else None
    rest = reply[match.end() :] if match else reply
    return code, enhanced_code(rest)
