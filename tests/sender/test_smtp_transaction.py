"""The SMTP provider's own mail transaction: what a relay receives is what aiosmtplib's
``sendmail`` would have sent, and a relay's refusals keep their meaning."""

import asyncio
import time
from typing import Any

import aiosmtplib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.envelope import Envelope
from intake.validation import ValidationError, parse_email
from sender.mime import render
from sender.providers.base import DelayError, PermanentError
from sender.providers.smtp import SmtpConfig, SmtpProvider, transaction
from tests.support.smtp_sink import Delivery, SmtpSink

ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}"
addresses = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.from_regex(rf"{ATOM}(\.{ATOM}){{0,2}}", fullmatch=True),
    st.sampled_from(["example.test", "Mail.Example.TEST", "bücher.example", "x-1.example"]),
)
bodies = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from([".", "..", ".x", "x.", "", "a b", "\r", "€"]), max_size=12).map(
        "\n".join
    ),
)


def envelope_of(doc: dict[str, Any]) -> Envelope:
    return Envelope(id="b" * 32, group="g", accepted_at=time.time(), email=parse_email(doc))


async def both_ways(envelope: Envelope) -> tuple[Delivery, Delivery]:
    """The envelope delivered by ``sendmail`` and by ``transaction``, as the relay saw them."""
    message = render(envelope)
    sender, recipients = envelope.email.sender.addr, envelope.email.deliver_to
    async with SmtpSink() as sink:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port)
        async with client:
            await client.sendmail(sender, recipients, message)
            assert await transaction(client, sender, recipients, message) == {}
        first, second = await sink.wait_for(2)
    return first, second


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    author=addresses,
    to=st.lists(addresses, min_size=1, max_size=4),
    bcc=st.lists(addresses, max_size=2),
    text=bodies,
)
def test_the_relay_receives_what_sendmail_would_send(
    author: str, to: list[str], bcc: list[str], text: str
) -> None:
    try:
        envelope = envelope_of({"from": author, "to": to, "bcc": bcc, "subject": "s", "text": text})
    except ValidationError:
        return
    by_library, by_us = asyncio.run(both_ways(envelope))
    assert by_us.mail_from == by_library.mail_from
    assert by_us.rcpt_tos == by_library.rcpt_tos
    assert by_us.raw == by_library.raw
    assert by_us.mail_options == by_library.mail_options  # SIZE, counted the same way
    assert by_us.mail_options == [f"SIZE={len(render(envelope))}"]


def plain() -> Envelope:
    return envelope_of({"from": "ana@example.test", "to": "bob@example.test", "text": "t"})


@pytest.mark.parametrize(("reply", "kind"), [
    ("421 4.7.0 Too many connections, closing", DelayError),
    ("553 5.7.1 Sender address rejected", PermanentError),
])  # fmt: skip
async def test_a_refused_sender_keeps_its_meaning(
    smtp_sink: SmtpSink, reply: str, kind: type[Exception]
) -> None:
    smtp_sink.handler.mail_reply = reply
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    try:
        with pytest.raises((DelayError, PermanentError)) as failed:
            await provider.send(plain())
        assert type(failed.value) is kind
        assert str(failed.value) == f"smtp_{reply[:3]}"
        # The next send opens a fresh connection and goes through.
        smtp_sink.handler.mail_reply = None
        await provider.send(plain())
    finally:
        await provider.aclose()
    assert len(smtp_sink.deliveries) == 1


async def test_some_recipients_refused_is_sent_with_their_refusals(smtp_sink: SmtpSink) -> None:
    smtp_sink.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 no such user"
    envelope = envelope_of(
        {"from": "ana@example.test", "to": ["bob@example.test", "gone@example.test"], "text": "t"}
    )
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    try:
        accepted = await provider.send(envelope)
    finally:
        await provider.aclose()
    assert [(r.code, r.enhanced) for r in accepted.refused] == [(550, "5.1.1")]
    assert smtp_sink.deliveries[0].rcpt_tos == ["bob@example.test"]


async def test_an_address_that_could_break_the_command_line_is_never_sent(
    smtp_sink: SmtpSink,
) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_sink.port)
    async with client:
        for bad in ("a@b.test> SIZE=1", "a b@c.test", "a@b.test\r\nRSET", '"a"@b.test', "ab.test"):
            with pytest.raises(PermanentError, match="smtp_unsafe_address"):
                await transaction(client, bad, ["bob@example.test"], b"x\r\n")
            with pytest.raises(PermanentError, match="smtp_unsafe_address"):
                await transaction(client, "ana@example.test", [bad], b"x\r\n")
    assert smtp_sink.deliveries == []
