"""DynamoDB behaviour mailpool relies on, checked on moto and the embedded engine alike."""

from typing import Any

import pytest
from botocore.exceptions import ClientError


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


async def test_a_table_is_described_listed_and_deleted(dynamodb: Any, table: str) -> None:
    described = (await dynamodb.describe_table(TableName=table))["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert {k["AttributeName"]: k["KeyType"] for k in described["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table in (await dynamodb.list_tables())["TableNames"]
    with pytest.raises(ClientError) as twice:
        await dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    assert code(twice) == "ResourceInUseException"
    await dynamodb.delete_table(TableName=table)
    with pytest.raises(ClientError) as gone:
        await dynamodb.describe_table(TableName=table)
    assert code(gone) == "ResourceNotFoundException"


async def test_time_to_live_is_turned_on_and_described(dynamodb: Any, table: str) -> None:
    before = await dynamodb.describe_time_to_live(TableName=table)
    assert before["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"
    await dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    after = (await dynamodb.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
    assert after["TimeToLiveStatus"] == "ENABLED"
    assert after["AttributeName"] == "expires"


async def test_items_are_put_read_and_deleted(dynamodb: Any, table: str) -> None:
    item = {**key("a", "1"), "n": {"N": "3"}, "s": {"S": "x"}, "ok": {"BOOL": True}}
    await dynamodb.put_item(TableName=table, Item=item)
    assert (await dynamodb.get_item(TableName=table, Key=key("a", "1")))["Item"] == item
    assert "Item" not in await dynamodb.get_item(TableName=table, Key=key("a", "2"))
    old = await dynamodb.delete_item(TableName=table, Key=key("a", "1"), ReturnValues="ALL_OLD")
    assert old["Attributes"] == item
    assert "Item" not in await dynamodb.get_item(TableName=table, Key=key("a", "1"))


async def test_a_put_with_a_false_condition_fails_and_changes_nothing(
    dynamodb: Any, table: str
) -> None:
    first = {**key("a", "1"), "v": {"S": "first"}}
    await dynamodb.put_item(
        TableName=table, Item=first, ConditionExpression="attribute_not_exists(pk)"
    )
    with pytest.raises(ClientError) as failed:
        await dynamodb.put_item(
            TableName=table,
            Item={**key("a", "1"), "v": {"S": "second"}},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert code(failed) == "ConditionalCheckFailedException"
    assert failed.value.response["Item"] == first
    assert (await dynamodb.get_item(TableName=table, Key=key("a", "1")))["Item"] == first


async def test_conditions_compare_with_names_and_values(dynamodb: Any, table: str) -> None:
    await dynamodb.put_item(
        TableName=table, Item={**key("a", "1"), "state": {"S": "pending"}, "n": {"N": "5"}}
    )
    common = {"ExpressionAttributeNames": {"#s": "state", "#n": "n"}}
    with pytest.raises(ClientError) as failed:
        await dynamodb.update_item(
            TableName=table,
            Key=key("a", "1"),
            UpdateExpression="SET #s = :done",
            ConditionExpression="#s = :accepted OR #n > :ten",
            ExpressionAttributeValues={
                ":done": {"S": "done"},
                ":accepted": {"S": "accepted"},
                ":ten": {"N": "10"},
            },
            **common,
        )
    assert code(failed) == "ConditionalCheckFailedException"
    answer = await dynamodb.update_item(
        TableName=table,
        Key=key("a", "1"),
        UpdateExpression="SET #s = :done",
        ConditionExpression="#s = :pending AND NOT (#n < :two)",
        ExpressionAttributeValues={
            ":done": {"S": "done"},
            ":pending": {"S": "pending"},
            ":two": {"N": "2"},
        },
        ReturnValues="ALL_NEW",
        **common,
    )
    assert answer["Attributes"]["state"] == {"S": "done"}


async def test_updates_set_add_remove_and_create_the_item(dynamodb: Any, table: str) -> None:
    answer = await dynamodb.update_item(
        TableName=table,
        Key=key("a", "1"),
        UpdateExpression="SET #f = if_not_exists(#f, :now), #l = :now ADD #c :one",
        ExpressionAttributeNames={"#f": "first", "#l": "last", "#c": "count"},
        ExpressionAttributeValues={":now": {"N": "100"}, ":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    assert answer["Attributes"] == {
        **key("a", "1"), "first": {"N": "100"}, "last": {"N": "100"}, "count": {"N": "1"},
    }  # fmt: skip
    answer = await dynamodb.update_item(
        TableName=table,
        Key=key("a", "1"),
        UpdateExpression="SET #f = if_not_exists(#f, :now), #l = :now, #c = #c + :one REMOVE gone",
        ExpressionAttributeNames={"#f": "first", "#l": "last", "#c": "count"},
        ExpressionAttributeValues={":now": {"N": "200"}, ":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    assert answer["Attributes"] == {
        **key("a", "1"), "first": {"N": "100"}, "last": {"N": "200"}, "count": {"N": "2"},
    }  # fmt: skip


async def test_a_conditional_delete_fails_when_the_condition_does_not_hold(
    dynamodb: Any, table: str
) -> None:
    await dynamodb.put_item(TableName=table, Item={**key("a", "1"), "v": {"N": "1"}})
    with pytest.raises(ClientError) as failed:
        await dynamodb.delete_item(
            TableName=table,
            Key=key("a", "1"),
            ConditionExpression="v = :two",
            ExpressionAttributeValues={":two": {"N": "2"}},
        )
    assert code(failed) == "ConditionalCheckFailedException"
    assert "Item" in await dynamodb.get_item(TableName=table, Key=key("a", "1"))


async def test_batch_write_then_batch_get(dynamodb: Any, table: str) -> None:
    puts = [{"PutRequest": {"Item": {**key("b", f"{i:02}"), "i": {"N": str(i)}}}}
            for i in range(25)]  # fmt: skip
    answer = await dynamodb.batch_write_item(RequestItems={table: puts})
    assert not answer.get("UnprocessedItems")
    await dynamodb.batch_write_item(
        RequestItems={table: [{"DeleteRequest": {"Key": key("b", "00")}}]}
    )
    got = await dynamodb.batch_get_item(
        RequestItems={table: {"Keys": [key("b", "00"), key("b", "07"), key("b", "nope")]}}
    )
    assert got["Responses"][table] == [{**key("b", "07"), "i": {"N": "7"}}]
    assert not got.get("UnprocessedKeys")


async def test_batches_refuse_duplicate_keys_and_more_than_25_writes(
    dynamodb: Any, table: str, engine: str
) -> None:
    with pytest.raises(ClientError) as duplicate:
        await dynamodb.batch_get_item(RequestItems={table: {"Keys": [key("a", "1")] * 2}})
    assert code(duplicate) == "ValidationException"
    if engine == "moto":
        return  # known deviation: moto takes any number of writes in one call
    with pytest.raises(ClientError) as too_many:
        await dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": key("a", str(i))}} for i in range(26)]}
        )
    assert code(too_many) == "ValidationException"


async def test_query_reads_one_partition_in_sort_order_page_by_page(
    dynamodb: Any, table: str
) -> None:
    items = [key("q", f"s#{i:02}") for i in range(7)] + [key("q", "t#1"), key("other", "s#1")]
    await dynamodb.batch_write_item(
        RequestItems={table: [{"PutRequest": {"Item": item}} for item in items]}
    )
    seen: list[str] = []
    start: dict[str, Any] | None = None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        page = await dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": {"S": "q"}, ":s": {"S": "s#"}},
            Limit=3,
            **extra,
        )
        assert len(page["Items"]) <= 3
        seen += [item["sk"]["S"] for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert seen == [f"s#{i:02}" for i in range(7)]
    backwards = await dynamodb.query(
        TableName=table,
        KeyConditionExpression="#p = :p AND #s BETWEEN :a AND :b",
        ExpressionAttributeNames={"#p": "pk", "#s": "sk"},
        ExpressionAttributeValues={":p": {"S": "q"}, ":a": {"S": "s#02"}, ":b": {"S": "s#04"}},
        ScanIndexForward=False,
    )
    assert [item["sk"]["S"] for item in backwards["Items"]] == ["s#04", "s#03", "s#02"]


async def test_bad_requests_are_validation_errors(dynamodb: Any, table: str, engine: str) -> None:
    with pytest.raises(ClientError) as missing_key:
        await dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}})
    assert code(missing_key) == "ValidationException"
    if engine != "moto":  # known deviations: moto lets an unused value pass, 500s on syntax
        with pytest.raises(ClientError) as unused:
            await dynamodb.put_item(
                TableName=table,
                Item=key("a", "1"),
                ExpressionAttributeValues={":unused": {"S": "x"}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        assert code(unused) == "ValidationException"
        with pytest.raises(ClientError) as syntax:  # moto answers a 500 here
            await dynamodb.put_item(
                TableName=table, Item=key("a", "1"), ConditionExpression="attribute_not_exists(pk"
            )
        assert code(syntax) == "ValidationException"
    with pytest.raises(ClientError) as no_table:
        await dynamodb.get_item(TableName="no-such-table", Key=key("a", "1"))
    assert code(no_table) == "ResourceNotFoundException"


async def test_a_transaction_of_conditional_puts_writes_all_or_none(
    dynamodb: Any, table: str
) -> None:
    def put(sk: str, value: str) -> dict[str, Any]:
        return {"Put": {"TableName": table, "Item": {**key("t", sk), "v": {"S": value}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}  # fmt: skip

    await dynamodb.transact_write_items(TransactItems=[put("1", "a"), put("2", "a")])
    with pytest.raises(ClientError) as cancelled:
        await dynamodb.transact_write_items(TransactItems=[put("3", "b"), put("2", "b")])
    assert code(cancelled) == "TransactionCanceledException"
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1]["Item"] == {**key("t", "2"), "v": {"S": "a"}}
    assert "Item" not in await dynamodb.get_item(TableName=table, Key=key("t", "3"))
    with pytest.raises(ClientError) as twice:
        await dynamodb.transact_write_items(TransactItems=[put("4", "c"), put("4", "d")])
    assert code(twice) == "ValidationException"


def _update(table: str, expression: str, **extra: Any) -> dict[str, Any]:
    return {"TableName": table, "Key": key("a", "1"), "UpdateExpression": expression, **extra}


#: Requests DynamoDB refuses with a ValidationException, each with what its message says.
#: mailpool's own attributes (state, owner, at, type, scope, status) are reserved words: an
#: expression that names them unescaped must fail here as it fails on AWS.
REFUSED: dict[str, tuple[str, Any, str]] = {
    "reserved word in SET": (
        "update_item",
        lambda t: _update(t, "SET status = :s", ExpressionAttributeValues={":s": {"S": "x"}}),
        "reserved keyword",
    ),
    "reserved word in REMOVE": ("update_item", lambda t: _update(t, "REMOVE temp"), "reserved"),
    "reserved word in a condition": (
        "put_item",
        lambda t: {
            "TableName": t,
            "Item": key("a", "1"),
            "ConditionExpression": "attribute_not_exists(state)",
        },
        "reserved keyword",
    ),
    "reserved word in a key condition": (
        "query",
        lambda t: {
            "TableName": t,
            "KeyConditionExpression": "pk = :p AND owner = :o",
            "ExpressionAttributeValues": {":p": {"S": "a"}, ":o": {"S": "b"}},
        },
        "",  # moto names the key schema first, DynamoDB and the engine the reserved word
    ),
    "reserved word in any case": (
        "update_item",
        lambda t: _update(t, "SET At = :s", ExpressionAttributeValues={":s": {"N": "1"}}),
        "reserved keyword",
    ),
    "undefined value": (
        "update_item",
        lambda t: _update(t, "SET #v = :nothing", ExpressionAttributeNames={"#v": "v"}),
        ":nothing",
    ),
    "undefined name": (
        "update_item",
        lambda t: _update(t, "SET #nothing = :v", ExpressionAttributeValues={":v": {"S": "x"}}),
        "#nothing",
    ),
    "key of the wrong type": (
        "get_item",
        lambda t: {"TableName": t, "Key": {"pk": {"N": "1"}, "sk": {"S": "1"}}},
        "",
    ),
    "empty key string": (
        "put_item",
        lambda t: {"TableName": t, "Item": key("", "1")},
        "empty string",
    ),
    "over 100 keys in BatchGetItem": (
        "batch_get_item",
        lambda t: {"RequestItems": {t: {"Keys": [key("a", str(i)) for i in range(101)]}}},
        "",
    ),
    "an item over 400 KB": (
        "put_item",
        lambda t: {"TableName": t, "Item": {**key("a", "1"), "v": {"S": "x" * 410_000}}},
        "size",
    ),
}


#: Where moto is not DynamoDB (the engine is held to DynamoDB's documented behaviour).
MOTO_DEVIATES = {
    "undefined name": "moto answers a 500 (KeyError) instead of a ValidationException",
    "key of the wrong type": "moto reads a key of the wrong type without complaint",
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_what_dynamodb_refuses_is_refused(
    dynamodb: Any, table: str, case: str, engine: str
) -> None:
    if engine == "moto" and case in MOTO_DEVIATES:
        pytest.skip(MOTO_DEVIATES[case])
    action, request, says = REFUSED[case]
    with pytest.raises(ClientError) as refused:
        await getattr(dynamodb, action)(**request(table))
    assert code(refused) == "ValidationException"
    assert says.lower() in refused.value.response["Error"]["Message"].lower()


async def test_reserved_words_pass_through_expression_attribute_names(
    dynamodb: Any, table: str
) -> None:
    await dynamodb.update_item(
        **_update(
            table,
            "SET #s = :s, #o = :o",
            ConditionExpression="attribute_not_exists(#a)",
            ExpressionAttributeNames={"#s": "status", "#o": "owner", "#a": "at"},
            ExpressionAttributeValues={":s": {"S": "sent"}, ":o": {"S": "me"}},
        )
    )
    item = (await dynamodb.get_item(TableName=table, Key=key("a", "1")))["Item"]
    assert item["status"] == {"S": "sent"}
