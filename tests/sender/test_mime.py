"""Rendering envelopes as RFC 5322 messages."""

import email
import email.policy
from email.message import EmailMessage

from mailpool.envelope import Envelope, parse_email
from sender.mime import build_message


def render(doc: dict[str, object], domain: str | None = None) -> EmailMessage:
    envelope = Envelope(id="a" * 32, group="g", accepted_at=1_700_000_000.0, email=parse_email(doc))
    raw = build_message(envelope, domain).as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


BASE = {"from": "Ana Díaz <ana@example.test>", "to": "Bob <bob@example.test>", "subject": "Hi"}


def test_utf8_names_and_subjects_are_encoded_on_the_wire() -> None:
    raw = build_message(
        Envelope(
            id="a" * 32,
            group="g",
            accepted_at=0.0,
            email=parse_email({**BASE, "subject": "Grüße", "text": "x"}),
        )
    ).as_bytes()
    assert raw.isascii()
    assert b"=?utf-8?" in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["From"]) == "Ana Díaz <ana@example.test>"
    assert str(parsed["Subject"]) == "Grüße"


def test_message_id_carries_the_mailpool_id_and_the_from_domain() -> None:
    assert render({**BASE, "text": "x"})["Message-ID"] == f"<{'a' * 32}@example.test>"
    assert render({**BASE, "text": "x"}, "mail.example.org")["Message-ID"] == (
        f"<{'a' * 32}@mail.example.org>"
    )


def test_text_and_html_make_multipart_alternative() -> None:
    message = render({**BASE, "text": "plain body", "html": "<p>html body</p>"})
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().strip() == "plain body"
    assert parts[1].get_content().strip() == "<p>html body</p>"


def test_html_only_and_text_only_are_single_part() -> None:
    assert render({**BASE, "html": "<b>x</b>"}).get_content_type() == "text/html"
    assert render({**BASE, "text": "ünïcode"}).get_content().strip() == "ünïcode"


def test_bcc_never_appears_and_custom_headers_do() -> None:
    message = render(
        {
            **BASE,
            "text": "x",
            "cc": "carol@example.test",
            "bcc": "hidden@example.test",
            "reply_to": "help@example.test",
            "headers": {"X-Campaign": "spring"},
        }
    )
    assert message["Bcc"] is None
    assert b"hidden@example.test" not in message.as_bytes()
    assert message["Cc"] == "carol@example.test"
    assert message["Reply-To"] == "help@example.test"
    assert message["X-Campaign"] == "spring"
    assert message["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
