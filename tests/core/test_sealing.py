"""Envelope encryption: unreadable in the queue, opened by any listed key, tamper-evident."""

import aiohttp
import pytest

from core.envelope import Envelope, EnvelopeError
from core.sealing import Keyring, new_key
from core.settings import SettingError
from intake.config import IntakeConfig
from intake.service import IntakeService
from intake.validation import parse_email
from pool.config import PoolConfig
from pool.pool import REASON_ATTRIBUTE
from pool.sqs import SqsClient
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService
from tests.support.queues import count, drain
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import until

CANARY = "canary-secret-body-4c1d"
OLD, NEW = new_key("old"), new_key("new")


def keyring(*entries: str) -> Keyring:
    ring = Keyring.from_env({"MAILPOOL_ENCRYPTION_KEYS": ",".join(entries)})
    assert ring is not None
    return ring


def envelope() -> Envelope:
    email = parse_email({"from": "a@example.test", "to": "canary@example.test", "text": CANARY})
    return Envelope(id="f" * 32, group="tenant@example.test", accepted_at=1.5e9, email=email)


def test_a_sealed_envelope_shows_only_its_id_and_round_trips() -> None:
    ring = keyring(NEW)
    sealed = envelope().encode(ring)
    assert CANARY.encode() not in sealed
    assert b"example.test" not in sealed
    assert b'"id":"' + b"f" * 32 in sealed
    assert Envelope.decode(sealed, ring) == envelope()


def test_rotation_opens_envelopes_sealed_with_an_older_key() -> None:
    sealed_with_old = envelope().encode(keyring(OLD))
    rotated = keyring(NEW, OLD)
    assert rotated.active == "new"
    assert Envelope.decode(sealed_with_old, rotated).email.text == CANARY


@pytest.mark.parametrize("ring", [None, "other"])
def test_an_envelope_these_keys_cannot_open_is_refused(ring: str | None) -> None:
    sealed = envelope().encode(keyring(OLD))
    with pytest.raises(EnvelopeError) as refused:
        Envelope.decode(sealed, None if ring is None else keyring(new_key("old")))
    assert refused.value.reason == "unsealable_envelope"


def test_a_tampered_envelope_is_refused() -> None:
    ring = keyring(NEW)
    sealed = envelope().encode(ring).replace(b'"id":"ffff', b'"id":"0fff')
    with pytest.raises(EnvelopeError, match="cannot open"):
        Envelope.decode(sealed, ring)


@pytest.mark.parametrize("value", ["nokey", "k1:short", "k1:" + "A" * 44 + ",:"])
def test_malformed_keys_are_refused_with_the_variable_named(value: str) -> None:
    with pytest.raises(SettingError, match="MAILPOOL_ENCRYPTION_KEYS"):
        Keyring.from_env({"MAILPOOL_ENCRYPTION_KEYS": value})


async def peek(config: PoolConfig) -> list[str]:
    """Bodies in the pool's queues, left in place (received with a zero visibility timeout)."""
    bodies = []
    async with SqsClient.from_config(config) as client:
        for shard in range(config.shards):
            url = await client.queue_url(config.queue_name(shard))
            got = await client.receive(url, shard, max_messages=10, wait_s=0, visibility_s=0)
            bodies.extend(m.body for m in got)
    return bodies


async def post(url: str, text: str) -> str:
    email = {"from": "a@example.test", "to": "b@example.test", "text": text}
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/emails", json=email) as r:
        assert r.status == 202
        return str((await r.json())["id"])


async def test_sealed_end_to_end_and_a_sender_without_the_key_dead_letters(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    ring = keyring(NEW)
    settings = SenderConfig(wait_time_s=1, metrics_port=0)
    async with IntakeService(provisioned, IntakeConfig(port=0), keyring=ring) as intake:
        ids = {await post(intake.url, CANARY), await post(intake.url, CANARY)}
        bodies = await peek(provisioned)
        assert len(bodies) == 2
        assert all(CANARY not in body and "example.test" not in body for body in bodies)
        async with SenderService(
            provisioned, settings, SmtpProvider(SmtpConfig(port=smtp_sink.port)), ring
        ):
            deliveries = await smtp_sink.wait_for(2)
        assert {d.mailpool_id for d in deliveries} == ids
        assert all(CANARY in d.message.get_content() for d in deliveries)
        stranger = await post(intake.url, CANARY)
    keyless = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    async with SenderService(provisioned, settings, keyless):
        await until(lambda: dead_letters(provisioned), 15)
    [dead] = await drain(provisioned, dlq=True)
    assert dead.attributes[REASON_ATTRIBUTE] == "unsealable_envelope"
    assert stranger in dead.body
    assert len(smtp_sink.deliveries) == 2


async def dead_letters(config: PoolConfig) -> bool:
    return await count(config, dlq=True) == 1
