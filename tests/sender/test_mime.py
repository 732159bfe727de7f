"""Rendering envelopes as RFC 5322 messages: the fast path and the stdlib agree."""

import base64
import email
import email.policy
import re
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import sender.mime
from core.envelope import Envelope
from intake.validation import ValidationError, parse_email
from sender.mime import build_message
from sender.mime import render as render_bytes


def envelope_of(doc: dict[str, object]) -> Envelope:
    return Envelope(id="a" * 32, group="g", accepted_at=1_700_000_000.0, email=parse_email(doc))


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def render(doc: dict[str, object], domain: str | None = None) -> EmailMessage:
    return parse(render_bytes(envelope_of(doc), domain))


BASE = {"from": "Ana Díaz <ana@example.test>", "to": "Bob <bob@example.test>", "subject": "Hi"}


def test_utf8_names_and_subjects_are_encoded_on_the_wire() -> None:
    raw = render_bytes(envelope_of({**BASE, "subject": "Grüße", "text": "x"}))
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


def test_a_plain_email_never_touches_the_stdlib_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> None:
        raise AssertionError("the stdlib path was taken")

    monkeypatch.setattr(sender.mime, "build_message", refuse)
    doc = {
        "from": "Shop Team <shop@example.test>",
        "to": ["a@example.test", '"Doe, Jane" <jane@example.test>'],
        "subject": "Your order #1234 has shipped",
        "text": "Hello,\nyour parcel is on its way.\n" + "-" * 200,
        "html": "<p>Hello, ünïcode</p>",
        "headers": {"X-Campaign": "spring"},
    }
    message = render(doc)
    assert message["To"].addresses[1].display_name == "Doe, Jane"
    assert [p.get_content().replace("\r\n", "\n") for p in message.iter_parts()] == [
        "Hello,\nyour parcel is on its way.\n" + "-" * 200 + "\n",
        "<p>Hello, ünïcode</p>\n",
    ]


printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
names = st.one_of(
    st.just(""),
    st.from_regex(r"[A-Z][a-z]{1,9}( [A-Z][a-z.]{1,9})?(, Jr)?", fullmatch=True),
    st.text(printable, max_size=40),
    st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), max_size=12),
)
mailboxes = st.builds(
    lambda name, local: f'"{name}" <{local}@example.test>' if name else f"{local}@example.test",
    names.map(lambda n: re.sub(r'[<>"\\]', "", n)),
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
)
bodies = st.one_of(
    st.none(),
    st.text(st.characters(codec="ascii"), max_size=300),
    st.text(max_size=300),
    st.integers(0, 1200).map(lambda n: "y" * n),
)


def read_back(message: EmailMessage) -> dict[str, Any]:
    """What a mail reader sees: addresses, headers, and each part's type and text."""

    def addresses(name: str) -> list[tuple[str, str]]:
        header = message[name]
        return [] if header is None else [(a.display_name, a.addr_spec) for a in header.addresses]

    def leaves(part: EmailMessage) -> list[EmailMessage]:
        if not part.is_multipart():
            return [part]
        return [leaf for p in part.iter_parts() for leaf in leaves(p)]  # type: ignore[arg-type]

    def shape(part: EmailMessage) -> object:
        if not part.is_multipart():
            return part.get_content_type()
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])  # type: ignore[arg-type]

    parts = leaves(message)
    return {
        "from": addresses("From"),
        "to": addresses("To"),
        "cc": addresses("Cc"),
        "reply_to": addresses("Reply-To"),
        "subject": str(message["Subject"]),
        "date": str(message["Date"]),
        "message_id": str(message["Message-ID"]),
        "x_custom": str(message["X-Custom"]),
        "shape": shape(message),
        "parts": [
            (p.get_content_type(), p.get_content().replace("\r\n", "\n"))
            for p in parts
            if p.get_content_maintype() == "text" and p.get_filename() is None
        ],
        "files": [
            (
                p.get_content_type(),
                p.get_content_disposition(),
                p.get_filename(),
                p["Content-ID"],
                p.get_payload(decode=True),
            )
            for p in parts
            if p.get_filename() is not None
        ],
    }


filenames = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,20}\.(pdf|png|jpg|txt|csv|bin|docx|gz)", fullmatch=True),
    st.text(printable, min_size=1, max_size=80),
    st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=40),
    st.text(st.characters(categories=["L", "N"]), min_size=200, max_size=255),
).map(lambda name: re.sub(r"[/\\]", "_", name))
attachments = st.lists(
    st.fixed_dictionaries(
        {
            "filename": filenames,
            "content": st.binary(max_size=2000).map(lambda b: base64.b64encode(b).decode()),
        },
        optional={
            "content_type": st.sampled_from(["application/pdf", "image/png", "text/plain"]),
            "content_id": st.from_regex(r"[a-z0-9.]{1,20}@[a-z]{1,10}", fullmatch=True),
        },
    ),
    max_size=4,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    author=mailboxes,
    to=st.lists(mailboxes, min_size=1, max_size=6),
    cc=st.lists(mailboxes, max_size=3),
    subject=st.one_of(
        st.from_regex(r"[A-Za-z0-9#:!,.]{1,10}( [A-Za-z0-9#:!,.=?]{1,10}){0,5}", fullmatch=True),
        st.text(printable, max_size=90),
        st.text(max_size=30),
    ),
    custom=st.one_of(st.from_regex(r"[a-z0-9]{1,30}", fullmatch=True), st.text(printable)),
    text=bodies,
    html=bodies,
    files=attachments,
)
def test_the_fast_path_reads_back_as_the_stdlib_rendering(
    author: str,
    to: list[str],
    cc: list[str],
    subject: str,
    custom: str,
    text: str | None,
    html: str | None,
    files: list[dict[str, str]],
) -> None:
    doc: dict[str, object] = {"from": author, "to": to, "cc": cc, "subject": subject}
    doc.update({"headers": {"X-Custom": custom}, "text": text, "html": html})
    if html is None:  # an inline part needs html
        files = [{k: v for k, v in f.items() if k != "content_id"} for f in files]
    doc["attachments"] = files or None
    try:
        envelope = envelope_of({k: v for k, v in doc.items() if v is not None})
    except ValidationError:
        return
    raw = render_bytes(envelope)
    try:
        sender.mime._head_fast(envelope, None)
        event("fast path")
    except sender.mime._NeedsStdlib:
        event("stdlib path")
    event(f"{len(envelope.email.attachments)} attachments")
    assert raw.isascii()
    assert not re.search(rb"[^\r]\n|\r[^\n]", raw), "only CRLF line endings"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert read_back(parse(raw)) == read_back(parse(build_message(envelope).as_bytes()))


def files_doc(*files: dict[str, str], html: str | None = "<p>x</p>") -> dict[str, object]:
    return {**BASE, "text": "plain", "html": html, "attachments": list(files)}


def file(name: str, data: bytes, **extra: str) -> dict[str, str]:
    return {"filename": name, "content": base64.b64encode(data).decode(), **extra}


def test_files_wrap_the_body_in_mixed_and_inline_parts_sit_with_the_html_in_related() -> None:
    message = render(
        files_doc(file("a.pdf", b"%PDF"), file("logo.png", b"PNG", content_id="logo@x"))
    )
    assert read_back(message)["shape"] == (
        "multipart/mixed",
        [
            ("multipart/alternative",
             ["text/plain", ("multipart/related", ["text/html", "image/png"])]),
            "application/pdf",
        ],
    )  # fmt: skip
    assert read_back(render(files_doc(file("a.csv", b"1,2"), html=None)))["shape"] == (
        "multipart/mixed", ["text/plain", "text/csv"]
    )  # fmt: skip


def test_a_plain_email_with_files_never_touches_the_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the stdlib path was taken")

    monkeypatch.setattr(sender.mime, "build_message", refuse)
    data = bytes(range(256)) * 100
    message = render({**files_doc(file("report.pdf", data)), "from": "shop@example.test"})
    [attached] = [p for p in message.walk() if p.get_filename()]
    assert attached.get_payload(decode=True) == data


def test_non_ascii_and_long_filenames_are_rfc_2231_encoded_in_short_lines() -> None:
    names = ["Prüfbericht.pdf", "請求書.pdf", "a" * 200 + ".txt", 'say "hi"; now.txt', "ünï" * 80]
    raw = render_bytes(envelope_of(files_doc(*(file(n, b"x") for n in names))))
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert b"filename*=utf-8''Pr%C3%BCfbericht.pdf" in raw
    assert b"filename*0*=utf-8''" in raw  # continuations for the long ones
    assert [p.get_filename() for p in parse(raw).walk() if p.get_filename()] == names


def test_base64_comes_in_lines_of_76_and_a_message_stays_7bit() -> None:
    data = bytes(range(256)) * 40
    raw = render_bytes(envelope_of(files_doc(file("blob.bin", data))))
    body = raw.split(b"Content-Transfer-Encoding: base64\r\n\r\n")[1].split(b"\r\n\r\n--")[0]
    lines = body.split(b"\r\n")
    assert {len(line) for line in lines[:-1]} == {76}
    assert 0 < len(lines[-1]) <= 76
    assert base64.b64decode(b"".join(lines)) == data


def test_fifty_attachments_all_arrive_in_order() -> None:
    files = [file(f"part-{i:02d}.txt", f"content {i}".encode()) for i in range(50)]
    parts = read_back(render(files_doc(*files, html=None)))["files"]
    assert [(name, data) for _, _, name, _, data in parts] == [
        (f"part-{i:02d}.txt", f"content {i}".encode()) for i in range(50)
    ]


def test_a_non_ascii_subject_takes_the_stdlib_head_and_keeps_the_files() -> None:
    doc = {**files_doc(file("a.pdf", b"%PDF-1")), "subject": "Grüße"}
    envelope = envelope_of(doc)
    with pytest.raises(sender.mime._NeedsStdlib):
        sender.mime._head_fast(envelope, None)
    raw = render_bytes(envelope)
    assert read_back(parse(raw)) == read_back(parse(build_message(envelope).as_bytes()))
    assert str(parse(raw)["Subject"]) == "Grüße"
