"""Providers: SES on moto's server, throttling as a delay, failover, rate limits."""

import asyncio
import base64
import email
import email.policy
import socket
import time
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from aws.client import acting_as
from core.envelope import Envelope
from intake.ids import new_id
from intake.validation import parse_email
from sender.providers import make_provider
from sender.providers.base import DelayError, PermanentError, TransientError
from sender.providers.failover import Failover
from sender.providers.ratelimit import RateLimited
from sender.providers.ses import SesConfig, SesProvider, _classify
from sender.providers.smtp import SmtpConfig, SmtpProvider
from tests.support.smtp_sink import SmtpSink


def envelope(**fields: Any) -> Envelope:
    doc = {"from": "Ana <ana@example.test>", "to": "bob@example.test", "subject": "s",
           "text": "t", "bcc": "hidden@example.test"} | fields  # fmt: skip
    return Envelope(id=new_id(), group="g", accepted_at=time.time(), email=parse_email(doc))


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def ses_sent(endpoint: str) -> list[dict[str, Any]]:
    """The raw messages moto's SES took. Read from its backend (the server runs in this
    process), not from /moto-api/data.json: that dump fails for good once any test has made
    a Lambda function (moto's model of one cannot be dumped without Docker)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import RawMessage, ses_backends

    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return [{"raw_data": m.raw_data, "destinations": m.destinations}
            for m in sent if isinstance(m, RawMessage)]  # fmt: skip


async def test_ses_sends_the_same_raw_mime_with_the_mailpool_message_id(sqs_endpoint: str) -> None:
    async with get_session().create_client(
        "sesv2", region_name="us-east-1", endpoint_url=sqs_endpoint
    ) as admin:
        await admin.create_email_identity(EmailIdentity="example.test")
    provider = SesProvider(SesConfig(region="us-east-1", endpoint_url=sqs_endpoint))
    sent = envelope()
    try:
        with acting_as("sender"):  # what the sender's IAM role must allow (mailpool.iam)
            await provider.send(sent)
    finally:
        await provider.aclose()
    [raw] = [m for m in await ses_sent(sqs_endpoint) if sent.id in m["raw_data"]]
    assert f"Message-ID: <{sent.id}@example.test>" in raw["raw_data"]
    assert set(raw["destinations"]) == {"bob@example.test", "hidden@example.test"}
    assert "hidden@example.test" not in raw["raw_data"]  # Bcc: envelope only


async def test_ses_refusing_an_unverified_sender_is_permanent(sqs_endpoint: str) -> None:
    provider = SesProvider(SesConfig(region="us-east-1", endpoint_url=sqs_endpoint))
    try:
        with pytest.raises(PermanentError) as refused:
            await provider.send(envelope(**{"from": "x@unverified.test"}))
    finally:
        await provider.aclose()
    assert refused.value.reason == "ses_MessageRejected"


def client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "SendEmail")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("TooManyRequestsException"), DelayError),
        (client_error("Throttling", "Maximum sending rate exceeded."), DelayError),
        (client_error("LimitExceededException", "Daily message quota exceeded."), DelayError),
        (client_error("MessageRejected", "Email address is not verified."), PermanentError),
        (client_error("InternalFailure"), TransientError),
        (OSError("connection reset"), TransientError),
    ],
)
def test_ses_errors_are_classified(error: Exception, kind: type[Exception]) -> None:
    assert type(_classify(error)) is kind


@pytest.mark.parametrize(("reply", "kind"), [
    ("454 4.7.0 Throttling failure: Maximum sending rate exceeded", DelayError),
    ("421 4.7.0 Try again later, closing connection", DelayError),
    ("451 4.3.0 Local error", TransientError),
    ("554 5.6.0 Message refused", PermanentError),
])  # fmt: skip
async def test_smtp_throttle_replies_are_delays(
    smtp_sink: SmtpSink, reply: str, kind: type[Exception]
) -> None:
    smtp_sink.handler.data_failures = 1
    smtp_sink.handler.data_reply = reply
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    try:
        with pytest.raises((TransientError, PermanentError)) as failed:
            await provider.send(envelope())
        assert type(failed.value) is kind
    finally:
        await provider.aclose()


async def test_failover_moves_to_the_next_provider_and_skips_a_failing_one(
    smtp_sink: SmtpSink,
) -> None:
    down = SmtpProvider(SmtpConfig(port=dead_port(), timeout_s=2))
    up = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    failover = Failover([down, up], threshold=2, cooldown_s=60)
    try:
        for _ in range(4):
            await failover.send(envelope())
        assert len(smtp_sink.deliveries) == 4
        # After two failures in a row the dead one is skipped: no more attempts on it.
        assert failover.breakers[0].failures == 2
        assert not failover.breakers[0].available(time.monotonic())
    finally:
        await failover.aclose()


async def test_a_permanent_refusal_does_not_fail_over(smtp_sink: SmtpSink) -> None:
    second = SmtpSink()
    async with second:
        smtp_sink.handler.rcpt_replies["bob@example.test"] = "550 5.1.1 unknown"
        failover = Failover([
            SmtpProvider(SmtpConfig(port=smtp_sink.port)),
            SmtpProvider(SmtpConfig(port=second.port)),
        ])  # fmt: skip
        try:
            with pytest.raises(PermanentError):
                await failover.send(envelope(bcc=None))
        finally:
            await failover.aclose()
        assert second.deliveries == []
        assert failover.breakers[0].failures == 0


async def test_the_rate_limit_is_shared_and_never_exceeded(smtp_sink: SmtpSink) -> None:
    limited = RateLimited(SmtpProvider(SmtpConfig(port=smtp_sink.port)), rate=5)
    started = time.monotonic()
    try:
        await asyncio.gather(*(limited.send(envelope()) for _ in range(10)))
    finally:
        await limited.aclose()
    # A burst of 5, then 5 more at 5/s: at least 1 s.
    assert time.monotonic() - started >= 0.95
    assert len(smtp_sink.deliveries) == 10


def test_providers_are_chosen_by_name() -> None:
    assert make_provider("smtp", {}).name == "smtp"
    assert make_provider(None, {"MAILPOOL_PROVIDERS": "smtp,ses"}).name == "smtp+ses"
    limited = make_provider("ses", {"MAILPOOL_SES_RATE": "14"})
    assert isinstance(limited, RateLimited)
    with pytest.raises(ValueError, match="unknown provider"):
        make_provider("pigeon", {})


async def test_ses_sends_files_and_inline_parts_in_the_same_raw_mime(sqs_endpoint: str) -> None:
    async with get_session().create_client(
        "sesv2", region_name="us-east-1", endpoint_url=sqs_endpoint
    ) as admin:
        await admin.create_email_identity(EmailIdentity="example.test")
    pdf, png = b"%PDF-1.7 " + bytes(range(256)) * 8, b"\x89PNG" + bytes(64)
    provider = SesProvider(SesConfig(region="us-east-1", endpoint_url=sqs_endpoint))
    sent = envelope(
        html='<img src="cid:logo@x">',
        attachments=[
            {"filename": "Quittung №7.pdf", "content": base64.b64encode(pdf).decode()},
            {"filename": "logo.png", "content": base64.b64encode(png).decode(),
             "content_id": "logo@x"},
        ],
    )  # fmt: skip
    try:
        with acting_as("sender"):  # what the sender's IAM role must allow (mailpool.iam)
            await provider.send(sent)
    finally:
        await provider.aclose()
    [raw] = [m for m in await ses_sent(sqs_endpoint) if sent.id in m["raw_data"]]
    message = email.message_from_string(raw["raw_data"], policy=email.policy.default)
    files = {p.get_filename(): p for p in message.walk() if p.get_filename()}
    assert files["Quittung №7.pdf"].get_payload(decode=True) == pdf
    assert files["logo.png"].get_payload(decode=True) == png
    assert files["logo.png"]["Content-ID"] == "<logo@x>"
