"""What producers see of the state store, through intake and a sender on the embedded
engine: status, suppression by bounce and unsubscribe, 24-hour idempotency."""

import asyncio
import dataclasses
import email
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from aws.errors import PoolClosed, Unavailable
from intake.config import IntakeConfig
from intake.service import IntakeService
from pool.config import PoolConfig
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService
from state.config import StateConfig
from state.table import StateTable
from tests.state.test_suppressed_delivery import events_of
from tests.support.smtp_sink import SmtpSink

Stack = tuple[IntakeService, aiohttp.ClientSession]


@pytest.fixture
async def stack(
    engine_stack: tuple[PoolConfig, StateConfig], smtp_sink: SmtpSink
) -> AsyncIterator[Stack]:
    pool, state = engine_stack
    sender_config = SenderConfig(wait_time_s=1, backoff_s=1, grace_s=5.0, metrics_port=0)
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    async with (
        SenderService(pool, sender_config, provider, state=state),
        IntakeService(pool, IntakeConfig(port=0), state=state) as intake,
        aiohttp.ClientSession() as http,
    ):
        yield intake, http


def mail(to: str, **extra: Any) -> dict[str, Any]:
    return {"from": "app@example.test", "to": to, "subject": "s", "text": "t", **extra}


async def post(stack: Stack, doc: Any, key: str | None = None) -> tuple[int, Any]:
    intake, http = stack
    headers = {} if key is None else {"Idempotency-Key": key}
    async with http.post(f"{intake.url}/v1/emails", json=doc, headers=headers) as response:
        return response.status, await response.json()


async def get(stack: Stack, path: str) -> tuple[int, Any]:
    intake, http = stack
    async with http.get(f"{intake.url}{path}") as response:
        return response.status, await response.json()


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def state_of(stack: Stack, email_id: str) -> str:
    status, doc = await get(stack, f"/v1/emails/{email_id}")
    assert status == 200, doc
    return str(doc["state"])


async def test_status_is_queued_at_once_then_sent_and_hidden_from_other_keys(
    stack: Stack, smtp_sink: SmtpSink
) -> None:
    status, answer = await post(stack, mail("bob@example.test"))
    assert status == 202
    email_id = answer["id"]
    first = await get(stack, f"/v1/emails/{email_id}")
    assert first[0] == 200
    assert first[1]["state"] in ("queued", "sent")

    async def sent() -> bool:
        return await state_of(stack, email_id) == "sent"

    await until(sent)
    _, doc = await get(stack, f"/v1/emails/{email_id}")
    assert doc["attempts"] == 1
    assert doc["recipients"] == [{"position": 0, "state": "sent", "code": None,
                                  "enhanced": None, "at": doc["recipients"][0]["at"]}]  # fmt: skip
    assert "bob" not in str(doc)
    for wrong in ("0" * 40, email_id[:-1] + ("0" if email_id[-1] != "0" else "1"), "x"):
        assert (await get(stack, f"/v1/emails/{wrong}"))[0] == 404


async def test_a_hard_bounce_suppresses_the_address_for_the_next_email(
    stack: Stack, smtp_sink: SmtpSink
) -> None:
    smtp_sink.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 <gone@example.test> no user"
    _, first = await post(stack, mail("gone@example.test"))

    async def bounced() -> bool:
        return await state_of(stack, first["id"]) == "bounced"

    await until(bounced)
    _, doc = await get(stack, f"/v1/emails/{first['id']}")
    assert doc["recipients"][0]["code"] == 550
    assert doc["recipients"][0]["enhanced"] == "5.1.1"
    status, entry = await get(stack, "/v1/suppressions/gone@Example.TEST")
    assert status == 200
    assert entry["reason"] == "hard_bounce"
    assert entry["email_id"] == first["id"]

    delivered = len(smtp_sink.handler.deliveries)
    _, second = await post(stack, mail("gone@Example.test", cc="ok@example.test"))
    _, third = await post(stack, mail("gone@example.test"))

    async def settled() -> bool:
        return await state_of(stack, second["id"]) == "suppressed" and (
            await state_of(stack, third["id"]) == "suppressed"
        )

    await until(settled)
    _, doc = await get(stack, f"/v1/emails/{second['id']}")
    assert [r["state"] for r in doc["recipients"]] == ["suppressed", "sent"]
    new = smtp_sink.handler.deliveries[delivered:]
    assert [d.rcpt_tos for d in new] == [["ok@example.test"]]


async def test_suppressions_are_added_listed_and_removed_by_hand(stack: Stack) -> None:
    intake, http = stack
    for address in ("b@example.test", "a@example.test", "c@bücher.example"):
        async with http.put(f"{intake.url}/v1/suppressions/{address}") as response:
            assert response.status == 200
    _, page = await get(stack, "/v1/suppressions?limit=2")
    assert [e["address"] for e in page["data"]] == ["a@example.test", "b@example.test"]
    _, rest = await get(stack, f"/v1/suppressions?limit=2&after={page['next']}")
    assert [e["address"] for e in rest["data"]] == ["c@xn--bcher-kva.example"]
    assert rest["next"] is None
    async with http.delete(f"{intake.url}/v1/suppressions/b@example.test") as response:
        assert response.status == 204
    assert (await get(stack, "/v1/suppressions/b@example.test"))[0] == 404
    assert (await get(stack, "/v1/suppressions/not-an-address"))[1]["error"]["field"] == ("address")
    assert (await get(stack, "/v1/suppressions?limit=0"))[0] == 422


async def unsubscribe_link(stack: Stack, smtp_sink: SmtpSink, email_id: str) -> str:
    """The one-click link in the delivered email ``email_id``."""

    async def delivered() -> bool:
        return any(d.mailpool_id == email_id for d in smtp_sink.handler.deliveries)

    await until(delivered)
    [message] = [d for d in smtp_sink.handler.deliveries if d.mailpool_id == email_id]
    parsed = email.message_from_bytes(message.raw)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return str(parsed["List-Unsubscribe"]).strip("<>")


async def test_one_click_unsubscribe_stops_that_list_and_only_that_list(
    stack: Stack, smtp_sink: SmtpSink
) -> None:
    intake, http = stack
    _, first = await post(stack, mail("reader@example.test", unsubscribe="news"))
    link = await unsubscribe_link(stack, smtp_sink, first["id"])
    token = link.rsplit("/", 1)[1]
    assert "reader" not in token
    assert "news" not in token
    url = f"{intake.url}/unsubscribe/{token}"
    async with http.post(url[:-2] + ("AA" if not url.endswith("AA") else "BB"),
                         data="List-Unsubscribe=One-Click") as forged:  # fmt: skip
        assert forged.status == 404
    async with http.get(url) as page:
        assert page.status == 200
        assert "<form" in await page.text()
    assert (await get(stack, "/v1/suppressions/reader@example.test?list=news"))[0] == 404
    async with http.post(url, data="List-Unsubscribe=One-Click") as response:
        assert response.status == 200
    _, entry = await get(stack, "/v1/suppressions/reader@example.test?list=news")
    assert entry["reason"] == "unsubscribe"
    assert entry["list"] == "news"
    # Off "news" only: the key's own list does not hold it.
    assert (await get(stack, "/v1/suppressions/reader@example.test"))[0] == 404
    _, page_of_news = await get(stack, "/v1/suppressions?list=news")
    assert [e["address"] for e in page_of_news["data"]] == ["reader@example.test"]
    _, news = await post(stack, mail("Reader@example.test", unsubscribe="news"))
    _, offers = await post(stack, mail("reader@example.test", unsubscribe="offers"))
    _, reset = await post(stack, mail("reader@example.test", subject="Your password reset"))

    async def settled() -> bool:
        return await state_of(stack, news["id"]) == "suppressed" and (
            await state_of(stack, offers["id"]) == "sent"
            and await state_of(stack, reset["id"]) == "sent"
        )

    await until(settled)
    assert not any(d.mailpool_id == news["id"] for d in smtp_sink.handler.deliveries)
    assert (await get(stack, "/v1/suppressions?list=no%20such"))[0] == 422


async def test_a_replayed_unsubscribe_link_changes_nothing_more_and_is_rate_limited(
    stack: Stack, smtp_sink: SmtpSink, engine_stack: tuple[PoolConfig, StateConfig]
) -> None:
    intake, http = stack
    _, first = await post(stack, mail("reader@example.test", unsubscribe=True))
    url = (await unsubscribe_link(stack, smtp_sink, first["id"])).replace(
        "http://127.0.0.1:1", intake.url
    )
    answers = []
    for _ in range(12):
        async with http.post(url, data="List-Unsubscribe=One-Click") as response:
            answers.append(response.status)
    # A burst of five is answered (one unsubscribes, four change nothing), then 429.
    assert answers[:5] == [200] * 5
    assert set(answers[5:]) <= {200, 429}
    assert answers[5:].count(429) >= 4
    _, entry = await get(stack, "/v1/suppressions/reader@example.test?list=default")
    events = await events_of(engine_stack[0])
    unsubscribed = [e for e in events.get(first["id"], []) if e[0] == "email.unsubscribed"]
    assert len(unsubscribed) == 1
    assert entry["reason"] == "unsubscribe"


async def test_suppressions_match_an_address_whatever_the_case_of_its_local_part(
    stack: Stack, smtp_sink: SmtpSink
) -> None:
    intake, http = stack
    async with http.put(f"{intake.url}/v1/suppressions/Jane.Doe@Example.test") as response:
        assert response.status == 200
    _, entry = await get(stack, "/v1/suppressions/jane.doe@example.test")
    assert entry["address"] == "Jane.Doe@example.test"  # the spelling given, for display
    _, lower = await post(stack, mail("jane.doe@example.test"))
    _, upper = await post(stack, mail("JANE.DOE@EXAMPLE.TEST"))

    async def settled() -> bool:
        return await state_of(stack, lower["id"]) == "suppressed" and (
            await state_of(stack, upper["id"]) == "suppressed"
        )

    await until(settled)
    async with http.delete(f"{intake.url}/v1/suppressions/JANE.doe@example.test") as response:
        assert response.status == 204
    assert (await get(stack, "/v1/suppressions/Jane.Doe@example.test"))[0] == 404


async def test_unsubscribe_needs_one_recipient_and_no_own_header(stack: Stack) -> None:
    status, body = await post(stack, mail(["a@example.test", "b@example.test"], unsubscribe=True))
    assert status == 422
    assert body["error"]["field"] == "unsubscribe"
    own = mail("a@example.test", unsubscribe=True, headers={"List-Unsubscribe": "<https://x>"})
    assert (await post(stack, own))[0] == 422


async def test_a_key_is_remembered_and_a_different_request_conflicts(
    stack: Stack, smtp_sink: SmtpSink
) -> None:
    status, first = await post(stack, mail("idem@example.test"), key="order-1")
    assert status == 202
    again = await post(stack, mail("idem@example.test"), key="order-1")
    assert again == (202, first)
    status, conflict = await post(stack, mail("other@example.test"), key="order-1")
    assert status == 409
    assert conflict["error"]["code"] == "idempotency_conflict"
    racing = await asyncio.gather(
        *(post(stack, mail("race@example.test"), key="order-2") for _ in range(5))
    )
    assert len({answer["id"] for _, answer in racing}) == 1

    async def both_delivered() -> bool:
        ids = {d.mailpool_id for d in smtp_sink.handler.deliveries}
        return {first["id"], racing[0][1]["id"]} <= ids

    await until(both_delivered)
    await asyncio.sleep(1.0)  # a second copy would be delivered by now
    ids = [d.mailpool_id for d in smtp_sink.handler.deliveries]
    assert ids.count(first["id"]) == 1
    assert ids.count(racing[0][1]["id"]) == 1


async def test_a_key_outlives_sqs_deduplication_window(
    engine_stack: tuple[PoolConfig, StateConfig], smtp_sink: SmtpSink
) -> None:
    """The store remembers a key for its lifetime (MAILPOOL_IDEMPOTENCY_HOURS; 3 seconds
    here), after the email was delivered; then the key is new again."""
    pool, state = engine_stack
    state = dataclasses.replace(state, idempotency_hours=3 / 3600)
    sender_config = SenderConfig(wait_time_s=1, backoff_s=1, grace_s=5.0, metrics_port=0)
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    async with (
        SenderService(pool, sender_config, provider, state=state),
        IntakeService(pool, IntakeConfig(port=0), state=state) as intake,
        aiohttp.ClientSession() as http,
    ):
        stack = (intake, http)
        _, first = await post(stack, mail("late@example.test"), key="k-late")

        async def delivered() -> bool:
            return any(d.mailpool_id == first["id"] for d in smtp_sink.handler.deliveries)

        await until(delivered)
        # Ids are fresh per request with the store (SQS deduplicates by id), so only the
        # remembered key can give a retry the first id back.
        assert (await post(stack, mail("late@example.test"), key="k-late"))[1] == first
        await asyncio.sleep(3.2)
        ids = [d.mailpool_id for d in smtp_sink.handler.deliveries]
        assert ids.count(first["id"]) == 1
        _, later = await post(stack, mail("late@example.test"), key="k-late")
        assert later["id"] != first["id"]


async def test_on_moto_a_hard_bounce_suppresses_and_the_status_tells(
    provisioned: PoolConfig, smtp_sink: SmtpSink, sqs_endpoint: str
) -> None:
    """The same flow on the second implementation: moto's SQS and DynamoDB."""
    state = StateConfig(enabled=True, table=f"{provisioned.prefix}-state",
                        endpoint_url=sqs_endpoint, region="us-east-1", secret=b"m" * 32,
                        suppression_cache_s=0.0)  # fmt: skip
    async with StateTable(state) as table:
        await table.provision()
    smtp_sink.handler.rcpt_replies["lost@example.test"] = "550 5.1.1 <lost@example.test> gone"
    sender_config = SenderConfig(wait_time_s=1, backoff_s=1, grace_s=5.0, metrics_port=0)
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    try:
        async with (
            SenderService(provisioned, sender_config, provider, state=state),
            IntakeService(provisioned, IntakeConfig(port=0), state=state) as intake,
            aiohttp.ClientSession() as http,
        ):
            stack = (intake, http)
            _, first = await post(stack, mail("lost@example.test"))

            async def bounced() -> bool:
                return await state_of(stack, first["id"]) == "bounced"

            await until(bounced, 20)
            _, second = await post(stack, mail("lost@example.test"))

            async def suppressed() -> bool:
                return await state_of(stack, second["id"]) == "suppressed"

            await until(suppressed, 20)
    finally:
        async with StateTable(state) as table:
            await table.drop()


@pytest.mark.parametrize("how", ["refused at once", "failed later"])
async def test_a_mark_that_cannot_be_written_leaves_the_202_and_is_logged(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """The claim's "accepted" mark is written after the answer; when it cannot be, the
    email stays accepted (SQS has it) and the failure is logged with the id only."""

    def write_soon(self: StateTable, item: dict[str, Any]) -> "asyncio.Future[None]":
        if how == "refused at once":
            raise PoolClosed("the pool is closing")
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, failed.set_exception, Unavailable("down"))
        return failed

    monkeypatch.setattr(StateTable, "write_soon", write_soon)
    status, doc = await post(stack, mail("mark@example.test"), key="order-mark")
    assert status == 202
    await asyncio.sleep(0.1)
    said = "could not mark an idempotency key accepted"
    marks = [r for r in caplog.records if r.getMessage() == said]
    assert [(r.id, r.error) for r in marks] == [  # type: ignore[attr-defined]
        (doc["id"], "PoolClosed" if how == "refused at once" else "Unavailable")
    ]
    assert "mark@example.test" not in caplog.text
    assert "never retrieved" not in caplog.text


async def test_a_store_that_does_not_answer_is_a_503_with_retry_after(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake, http = stack
    assert intake.state is not None

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise Unavailable("the table did not answer")

    monkeypatch.setattr(intake.state.suppressions, "page", down)
    monkeypatch.setattr(intake.state.suppressions, "get", down)
    for path in ("/v1/suppressions", "/v1/suppressions/a@example.test"):
        async with http.get(f"{intake.url}{path}") as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert (await response.json())["error"]["code"] == "unavailable"
