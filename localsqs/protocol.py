"""The SQS JSON protocol over aiohttp: ``POST /`` with ``X-Amz-Target: AmazonSQS.<Action>``.

Only the JSON protocol is spoken: every current AWS SDK and the AWS CLI use it for SQS
(botocore since 1.31.x, 2023); the older query protocol gets a clear InvalidAction error.
"""

import logging
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from aws.checksums import md5_of_attributes, md5_of_body
from localsqs import dynamo, metrics, s3
from localsqs import params as p
from localsqs.engine import Engine, SendEntry
from localsqs.errors import DynamoError, SqsError, invalid
from localsqs.messages import Row, Stored
from localsqs.objects import Objects
from localsqs.queues import Queue
from localsqs.tables import Tables
from localsqs.throttle import Throttle

log = logging.getLogger(__name__)

Params = dict[str, Any]
Action = Callable[[Engine, Params], Awaitable[dict[str, Any]]]
ENGINE = web.AppKey("engine", Engine)
THROTTLE = web.AppKey("throttle", Throttle)
TABLES = web.AppKey("tables", Tables)
CONTENT_TYPE = "application/x-amz-json-1.0"
THROTTLED_ENTRY = SqsError("RequestThrottled", "Request is throttled.", sender=False)
SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "DeadLetterQueueSourceArn",
)


def _queue(engine: Engine, params: Params) -> Queue:
    url = p.text(params, "QueueUrl")
    assert url is not None
    return engine.queue_by_url(url)


async def create_queue(engine: Engine, params: Params) -> dict[str, Any]:
    name = p.text(params, "QueueName")
    assert name is not None
    queue = await engine.create_queue(name, p.string_map(params, "Attributes"))
    return {"QueueUrl": queue.url}


async def get_queue_url(engine: Engine, params: Params) -> dict[str, Any]:
    name = p.text(params, "QueueName")
    assert name is not None
    return {"QueueUrl": engine.queue(name).url}


def _page(urls: list[str], params: Params, key: str) -> dict[str, Any]:
    limit = p.integer(params, "MaxResults", 1, 1000)
    start = int(params.get("NextToken") or 0)
    if limit is None:
        return {key: urls[:1000]} if urls else {}
    page: dict[str, Any] = {key: urls[start : start + limit]} if urls[start:] else {}
    if start + limit < len(urls):
        page["NextToken"] = str(start + limit)
    return page


async def list_queues(engine: Engine, params: Params) -> dict[str, Any]:
    prefix = p.text(params, "QueueNamePrefix", required=False) or ""
    return _page([q.url for q in engine.queues(prefix)], params, "QueueUrls")


async def list_dead_letter_source_queues(engine: Engine, params: Params) -> dict[str, Any]:
    queue = _queue(engine, params)
    sources = [q.url for q in engine.dead_letter_sources(queue)]
    return _page(sources, params, "queueUrls") or {"queueUrls": []}


async def get_queue_attributes(engine: Engine, params: Params) -> dict[str, Any]:
    queue = _queue(engine, params)
    attributes = await engine.attributes(queue, p.names(params, "AttributeNames"))
    return {"Attributes": attributes} if attributes else {}


async def set_queue_attributes(engine: Engine, params: Params) -> dict[str, Any]:
    await engine.set_attributes(_queue(engine, params), p.string_map(params, "Attributes"))
    return {}


async def delete_queue(engine: Engine, params: Params) -> dict[str, Any]:
    await engine.delete_queue(_queue(engine, params))
    return {}


async def purge_queue(engine: Engine, params: Params) -> dict[str, Any]:
    await engine.purge(_queue(engine, params))
    return {}


def _send_entry(raw: Params) -> tuple[SendEntry, str | None]:
    attributes, size, md5 = p.message_attributes(raw.get("MessageAttributes"))
    entry = SendEntry(
        body=p.body(raw.get("MessageBody")),
        attributes=attributes,
        attributes_size=size,
        group_id=p.fifo_id(raw.get("MessageGroupId"), "MessageGroupId"),
        dedup_id=p.fifo_id(raw.get("MessageDeduplicationId"), "MessageDeduplicationId"),
        delay_s=p.integer(raw, "DelaySeconds", 0, 900),
    )
    return entry, md5


def _sent(queue: Queue, stored: Stored, entry: SendEntry, md5: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "MessageId": stored.message_id,
        "MD5OfMessageBody": md5_of_body(entry.body),
    }
    if md5 is not None:
        result["MD5OfMessageAttributes"] = md5
    if queue.fifo:
        result["SequenceNumber"] = f"{stored.seq:020d}"
    return result


async def send_message(engine: Engine, params: Params) -> dict[str, Any]:
    queue = _queue(engine, params)
    entry, md5 = _send_entry(params)
    [outcome] = await engine.send(queue, [entry])
    if isinstance(outcome, SqsError):
        raise outcome
    return _sent(queue, outcome, entry, md5)


def _failed(entry_id: str, error: SqsError) -> dict[str, Any]:
    return {
        "Id": entry_id,
        "SenderFault": error.sender,
        "Code": error.query_code,
        "Message": error.message,
    }


async def send_message_batch(
    engine: Engine, params: Params, throttle: Throttle | None = None
) -> dict[str, Any]:
    queue = _queue(engine, params)
    entries = p.entry_ids(params.get("Entries"))
    parsed: list[tuple[str, SendEntry, str | None] | tuple[str, SqsError]] = []
    total = 0
    for raw in entries:
        try:
            entry, md5 = _send_entry(raw)
        except SqsError as exc:
            parsed.append((raw["Id"], exc))
            continue
        total += len(entry.body.encode()) + entry.attributes_size
        if throttle is not None and throttle.entry_throttled():
            parsed.append((raw["Id"], THROTTLED_ENTRY))
            continue
        parsed.append((raw["Id"], entry, md5))
    if total > p.MAX_BATCH_BYTES:
        raise SqsError(
            "BatchRequestTooLong",
            f"Batch requests cannot be longer than {p.MAX_BATCH_BYTES} bytes. "
            f"You have sent {total} bytes.",
        )
    valid = [item for item in parsed if len(item) == 3]
    outcomes = iter(await engine.send(queue, [item[1] for item in valid]))
    successful, failed = [], []
    for item in parsed:
        if len(item) == 2:
            failed.append(_failed(item[0], item[1]))
            continue
        entry_id, entry, md5 = item
        outcome = next(outcomes)
        if isinstance(outcome, SqsError):
            failed.append(_failed(entry_id, outcome))
        else:
            successful.append({"Id": entry_id, **_sent(queue, outcome, entry, md5)})
    return {"Successful": successful, "Failed": failed}


def _system_attributes(row: Row, wanted: set[str]) -> dict[str, str]:
    values = {
        "SenderId": "AIDALOCALSQS",
        "SentTimestamp": str(row.sent_at),
        "ApproximateReceiveCount": str(row.receive_count),
        "ApproximateFirstReceiveTimestamp": str(row.first_receive_at),
    }
    if row.group_id is not None:
        values["MessageGroupId"] = row.group_id
    if row.dedup_id is not None:
        values["MessageDeduplicationId"] = row.dedup_id
        values["SequenceNumber"] = f"{row.seq:020d}"
    if row.source_arn is not None:
        values["DeadLetterQueueSourceArn"] = row.source_arn
    if "All" in wanted:
        return values
    return {k: v for k, v in values.items() if k in wanted}


def _message(row: Row, system: set[str], wanted_attributes: list[str]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "MessageId": row.message_id,
        "ReceiptHandle": row.receipt,
        "MD5OfBody": md5_of_body(row.body),
        "Body": row.body,
    }
    if system:
        message["Attributes"] = _system_attributes(row, system)
    selected = p.select_attributes(row.attributes, wanted_attributes)
    if selected:
        message["MessageAttributes"] = selected
        message["MD5OfMessageAttributes"] = md5_of_attributes(p.decoded_for_md5(selected))
    return message


async def receive_message(engine: Engine, params: Params) -> dict[str, Any]:
    queue = _queue(engine, params)
    limit = p.integer(params, "MaxNumberOfMessages", 1, 10) or 1
    wait = p.integer(params, "WaitTimeSeconds", 0, 20)
    visibility = p.integer(params, "VisibilityTimeout", 0, 43_200)
    system = set(p.names(params, "AttributeNames", "MessageSystemAttributeNames"))
    wanted = p.names(params, "MessageAttributeNames")
    rows = await engine.receive(queue, limit, wait, visibility)
    if not rows:
        return {}
    return {"Messages": [_message(row, system, wanted) for row in rows]}


async def delete_message(engine: Engine, params: Params) -> dict[str, Any]:
    receipt = p.text(params, "ReceiptHandle")
    assert receipt is not None
    [error] = await engine.delete(_queue(engine, params), [receipt])
    if error is not None:
        raise error
    return {}


async def delete_message_batch(engine: Engine, params: Params) -> dict[str, Any]:
    queue = _queue(engine, params)
    entries = p.entry_ids(params.get("Entries"))
    receipts = [str(e.get("ReceiptHandle", "")) for e in entries]
    errors = await engine.delete(queue, receipts)
    return _batch_outcome(entries, errors)


async def change_message_visibility(engine: Engine, params: Params) -> dict[str, Any]:
    receipt = p.text(params, "ReceiptHandle")
    timeout = p.integer(params, "VisibilityTimeout", 0, 43_200)
    assert receipt is not None
    if timeout is None:
        raise SqsError("MissingParameter", "The request must contain VisibilityTimeout.")
    [error] = await engine.change_visibility(_queue(engine, params), [(receipt, timeout)])
    if error is not None:
        raise error
    return {}


async def change_message_visibility_batch(engine: Engine, params: Params) -> dict[str, Any]:
    queue = _queue(engine, params)
    entries = p.entry_ids(params.get("Entries"))
    changes: list[tuple[str, int]] = []
    early: dict[int, SqsError] = {}
    for index, entry in enumerate(entries):
        try:
            timeout = p.integer(entry, "VisibilityTimeout", 0, 43_200)
            if timeout is None:
                raise invalid("VisibilityTimeout is required.")
            changes.append((str(entry.get("ReceiptHandle", "")), timeout))
        except SqsError as exc:
            early[index] = exc
    results = iter(await engine.change_visibility(queue, changes))
    errors = [early[i] if i in early else next(results) for i in range(len(entries))]
    return _batch_outcome(entries, errors)


def _batch_outcome(entries: list[Params], errors: list[SqsError | None]) -> dict[str, Any]:
    successful = [{"Id": e["Id"]} for e, err in zip(entries, errors, strict=True) if err is None]
    failed = [
        _failed(e["Id"], err) for e, err in zip(entries, errors, strict=True) if err is not None
    ]
    return {"Successful": successful, "Failed": failed}


ACTIONS: dict[str, Action] = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "ListQueues": list_queues,
    "GetQueueAttributes": get_queue_attributes,
    "SetQueueAttributes": set_queue_attributes,
    "DeleteQueue": delete_queue,
    "PurgeQueue": purge_queue,
    "ListDeadLetterSourceQueues": list_dead_letter_source_queues,
    "SendMessage": send_message,
    "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "ChangeMessageVisibilityBatch": change_message_visibility_batch,
}


def _answer(data: dict[str, Any], status: int = 200, error: SqsError | None = None) -> web.Response:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if error is not None:
        headers["x-amzn-query-error"] = error.header()
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type=CONTENT_TYPE
    )


async def handle(request: web.Request) -> web.Response:
    """Dispatch one SQS call."""
    target = request.headers.get("X-Amz-Target", "")
    service, _, action_name = target.partition(".")
    if service == dynamo.TARGET_PREFIX:
        return await _dynamo(request, action_name)
    action = ACTIONS.get(action_name) if service == "AmazonSQS" else None
    if action is None:
        error = SqsError(
            "InvalidAction",
            f"The action {action_name or '(none)'} is not valid for this endpoint "
            "(localsqs speaks the SQS JSON protocol).",
        )
        return _answer(error.body(), error.status, error)
    try:
        raw = await request.read()
        params = orjson.loads(raw) if raw else {}
        if not isinstance(params, dict):
            raise invalid("The request body must be a JSON object.")
        engine = request.app[ENGINE]
        throttle = request.app[THROTTLE]
        if params.get("QueueUrl"):
            throttle.check(str(params["QueueUrl"]), action_name)
        if action is send_message_batch:
            result = await send_message_batch(engine, params, throttle)
        else:
            result = await action(engine, params)
    except orjson.JSONDecodeError:
        error = SqsError("SerializationException", "The request body is not valid JSON.")
        return _answer(error.body(), 400, error)
    except SqsError as error:
        return _answer(error.body(), error.status, error)
    except sqlite3.Error:  # the store could not write: nothing was done, say so at once
        return _answer(STORE_FAILED.body(), STORE_FAILED.status, STORE_FAILED)
    return _answer(result)


async def _dynamo(request: web.Request, operation: str) -> web.Response:
    """Dispatch one DynamoDB call."""
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    try:
        raw = await request.read()
        params = orjson.loads(raw) if raw else {}
        if not isinstance(params, dict):
            raise DynamoError("SerializationException", "The request body must be an object.")
        result = await dynamo.call(request.app[TABLES], operation, params)
    except orjson.JSONDecodeError:
        failure = DynamoError("SerializationException", "The request body is not valid JSON.")
    except DynamoError as refused:
        failure = refused
    except sqlite3.Error:
        failure = TABLES_FAILED
    else:
        return web.Response(body=orjson.dumps(result), headers=headers, content_type=CONTENT_TYPE)
    return web.Response(
        body=orjson.dumps(failure.body()),
        status=failure.status,
        headers=headers,
        content_type=CONTENT_TYPE,
    )


#: The DynamoDB answer when the store could not write: a server error, nothing done.
TABLES_FAILED = DynamoError(
    "InternalServerError",
    "The engine could not write to its data directory; nothing was done.",
    status=500,
)


#: The answer when the store could not write (a full disk): a server error, nothing done.
STORE_FAILED = SqsError(
    "InternalFailure",
    "The engine could not write to its data directory; nothing was done.",
    status=500,
    sender=False,
)


def create_app(
    engine: Engine,
    throttle: Throttle,
    tables: Tables,
    objects: Objects,
    middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """The localsqs HTTP application: SQS, the DynamoDB subset and the S3 subset on one
    endpoint (S3 path-style: ``/bucket/key``)."""
    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=list(middlewares))
    app[ENGINE] = engine
    app[TABLES] = tables
    app[THROTTLE] = throttle
    app.router.add_post("/", handle)
    app.router.add_post("/{tail:.*}", handle)
    metrics.routes(app, engine.store.path, objects)
    s3.routes(app, objects)
    return app
