"""Validating producers' emails and round-tripping envelopes."""

from typing import Any

import pytest

from core.addresses import AddressError, Mailbox, parse_mailbox
from core.envelope import Envelope, EnvelopeError
from intake.validation import ValidationError, parse_email, parse_group

VALID: dict[str, Any] = {
    "from": "Ana Díaz <ana@example.test>",
    "to": ["bob@example.test", '"Doe, Jane" <jane@example.test>'],
    "cc": "carol@example.test",
    "bcc": ["dave@example.test"],
    "reply_to": "help@example.test",
    "subject": "Grüße",
    "text": "plain",
    "html": "<p>html</p>",
    "headers": {"X-Campaign": "spring"},
    "tags": {"kind": "welcome"},
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("bob@example.test", Mailbox("", "bob@example.test")),
        ("Bob <bob@example.test>", Mailbox("Bob", "bob@example.test")),
        ('"Doe, Jane" <jane@example.test>', Mailbox("Doe, Jane", "jane@example.test")),
        ("Ana Díaz <ana@EXAMPLE.test>", Mailbox("Ana Díaz", "ana@example.test")),
        ("x@bücher.example", Mailbox("", "x@xn--bcher-kva.example")),
        ("first.last+tag@sub.example.test", Mailbox("", "first.last+tag@sub.example.test")),
    ],
)
def test_mailboxes_parse(raw: str, expected: Mailbox) -> None:
    assert parse_mailbox(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "no-at-sign",
        "@example.test",
        "bob@",
        "bob@@example.test",
        "bo b@example.test",
        "bob..x@example.test",
        "bob@-example.test",
        "bob@example..test",
        "Bob <bob@example.test",
        "Bob bob@example.test>",
        "Bob\r\nBcc: eve@example.test <bob@example.test>",
        "bob@example.test\n",
        "a" * 65 + "@example.test",
    ],
)
def test_invalid_mailboxes_are_refused(raw: str) -> None:
    with pytest.raises(AddressError):
        parse_mailbox(raw)


def test_a_full_email_validates_and_round_trips_through_the_envelope() -> None:
    email = parse_email(VALID)
    assert email.sender == Mailbox("Ana Díaz", "ana@example.test")
    assert email.recipients == [
        "bob@example.test",
        "jane@example.test",
        "carol@example.test",
        "dave@example.test",
    ]
    envelope = Envelope(id="0" * 32, group="g", accepted_at=1.5, email=email)
    assert Envelope.decode(envelope.encode()) == envelope


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"from": None}, "from", "invalid_type"),
        ({"from": "nobody"}, "from", "invalid_address"),
        ({"to": 5}, "to", "invalid_type"),
        ({"to": ["ok@example.test", "bad"]}, "to[1]", "invalid_address"),
        ({"to": [], "cc": None, "bcc": None}, "to", "required"),
        ({"to": [f"r{i}@example.test" for i in range(51)]}, "to", "too_many"),
        ({"subject": "Hi\r\nBcc: eve@example.test"}, "subject", "header_injection"),
        ({"subject": 7}, "subject", "invalid_type"),
        ({"text": None, "html": None}, "text", "required"),
        ({"html": ["x"]}, "html", "invalid_type"),
        ({"headers": {"X-Ok": "a\nb"}}, "headers.X-Ok", "header_injection"),
        ({"headers": {"X-Ok": "form\x0cfeed"}}, "headers.X-Ok", "header_injection"),
        ({"subject": "next\x85line"}, "subject", "header_injection"),
        ({"headers": {"Bad Name": "v"}}, "headers", "invalid_header"),
        ({"headers": {"Message-ID": "<x@y>"}}, "headers.Message-ID", "reserved_header"),
        ({"headers": {"X-A": 1}}, "headers.X-A", "invalid_type"),
        ({"headers": []}, "headers", "invalid_type"),
        ({"tags": {"k": "v\r"}}, "tags.k", "header_injection"),
        ({"tags": {f"k{i}": "v" for i in range(21)}}, "tags", "too_many"),
        ({"text": "bad \ufffe char"}, "text", "invalid_character"),
        ({"surprise": 1}, "surprise", "unknown_field"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, Any], field: str, code: str) -> None:
    doc = {**VALID, **change}
    with pytest.raises(ValidationError) as caught:
        parse_email(doc)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_missing_from_is_named() -> None:
    doc = dict(VALID)
    del doc["from"]
    with pytest.raises(ValidationError) as caught:
        parse_email(doc)
    assert caught.value.field == "from"


def test_a_non_object_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_email(["not", "an", "object"])
    assert caught.value.field is None


@pytest.mark.parametrize("group", ["tenant-1", "a", "x" * 128, "ana@example.test", "!#$%&'()*"])
def test_groups_within_sqs_rules_are_accepted(group: str) -> None:
    assert parse_group(group) == group


@pytest.mark.parametrize("group", ["", "x" * 129, "has space", "ümlaut", 5])
def test_groups_outside_sqs_rules_are_refused(group: object) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_group(group)
    assert caught.value.field == "group"


def test_validation_messages_never_echo_the_input() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_email({**VALID, "to": "secret-person@@example.test"})
    assert "secret-person" not in str(caught.value)


@pytest.mark.parametrize(
    "raw", [b"not json", b"{}", b'{"v": 2}', b'{"v": 1, "id": "x"}', b"[1, 2]"]
)
def test_undecodable_envelopes_raise_envelope_error(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.decode(raw)
