"""The embedded DynamoDB's own behaviour beyond the conformance suite: TTL, durability."""

import pathlib
import time

import pytest

from localsqs import dynamo, evaluation
from localsqs import expressions as ex
from localsqs.errors import DynamoError
from localsqs.store import Store
from localsqs.tables import Tables


@pytest.fixture
async def tables(tmp_path: pathlib.Path):  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "db.sqlite", "os")
    store.open()
    tables = Tables(store, region="us-east-1", account="000000000000")
    await tables.start()
    await tables.create("t", "pk", "sk", billing="PAY_PER_REQUEST", sse=True)
    yield tables
    store.close()


def key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


async def test_the_sweep_deletes_items_whose_ttl_passed_and_keeps_the_rest(
    tables: Tables,
) -> None:
    await tables.set_ttl("t", "expires", True)
    now = time.time()
    await tables.batch_write({"t": [
        {"PutRequest": {"Item": {**key("a", "old"), "expires": {"N": str(int(now) - 5)}}}},
        {"PutRequest": {"Item": {**key("a", "new"), "expires": {"N": str(int(now) + 60)}}}},
        {"PutRequest": {"Item": key("a", "forever")}},
    ]})  # fmt: skip
    assert await tables.sweep(now) == 1
    page = await tables.query("t", ex.parse(key="pk = :p", values={":p": {"S": "a"}}).key,
                              limit=None, forward=True, start=None)  # fmt: skip
    assert [item["sk"]["S"] for item in page.items] == ["forever", "new"]


async def test_turning_ttl_on_applies_to_items_already_there(tables: Tables) -> None:
    await tables.put("t", {**key("a", "1"), "expires": {"N": "1"}}, None,
                     return_old=False, old_on_failure=False)  # fmt: skip
    assert await tables.sweep() == 0
    await tables.set_ttl("t", "expires", True)
    assert await tables.sweep() == 1


async def test_tables_and_items_survive_a_restart(tmp_path: pathlib.Path) -> None:
    store = Store(tmp_path / "db.sqlite", "fsync")
    store.open()
    tables = Tables(store, region="us-east-1", account="000000000000")
    await tables.start()
    await tables.create("kept", "pk", None, billing="PAY_PER_REQUEST", sse=False)
    await tables.put("kept", {"pk": {"S": "a"}}, None, return_old=False, old_on_failure=False)
    store.close()
    store = Store(tmp_path / "db.sqlite", "fsync")
    store.open()
    again = Tables(store, region="us-east-1", account="000000000000")
    await again.start()
    assert await again.get("kept", {"pk": {"S": "a"}}) == {"pk": {"S": "a"}}
    store.close()


async def test_only_string_keys_and_no_document_paths(tables: Tables) -> None:
    with pytest.raises(DynamoError, match="Type mismatch"):
        await tables.put("t", {"pk": {"N": "1"}, "sk": {"S": "x"}}, None,
                         return_old=False, old_on_failure=False)  # fmt: skip
    with pytest.raises(DynamoError, match="Document paths"):
        ex.parse(condition="a.b = :v", values={":v": {"S": "x"}})


def test_numbers_compare_as_numbers_and_strings_by_bytes() -> None:
    item = {"n": {"N": "10"}, "s": {"S": "é"}}
    parsed = ex.parse(condition="n > :nine AND s > :z",
                      values={":nine": {"N": "9"}, ":z": {"S": "z"}})  # fmt: skip
    assert evaluation.holds(parsed.condition, item)


async def test_a_condition_parsed_once_decides_each_request_by_its_own_item(
    tables: Tables,
) -> None:
    """Conditions without names or values are parsed once and shared; each request is
    still judged against its own item, and a malformed one is refused every time."""
    put = {"ConditionExpression": "attribute_not_exists(pk)"}
    first = {"pk": {"S": "a"}, "sk": {"S": "-"}}
    assert dynamo._expressions(put, condition="ConditionExpression") is dynamo._expressions(
        dict(put), condition="ConditionExpression"
    )
    for item, taken in (
        (first, False),
        ({"pk": {"S": "b"}, "sk": {"S": "-"}}, False),
        (first, True),
    ):
        condition = dynamo._expressions(put, condition="ConditionExpression").condition
        if taken:
            with pytest.raises(DynamoError, match="ConditionalCheckFailed"):
                await tables.transact_puts([("t", item, condition, False)])
        else:
            await tables.transact_puts([("t", item, condition, False)])
    for _ in range(2):
        with pytest.raises(DynamoError, match="unexpected end of input"):
            dynamo._expressions(
                {"ConditionExpression": "attribute_not_exists("}, condition="ConditionExpression"
            )
