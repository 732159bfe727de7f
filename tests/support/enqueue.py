"""Putting envelopes on the pool the way intake does, without intake."""

import time
from typing import Any

from core.envelope import Envelope
from intake.ids import new_id
from intake.validation import parse_email
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import QueuePool


async def enqueue(
    config: PoolConfig,
    docs: list[dict[str, Any]],
    group: str | list[str] | None = None,
    streams: list[str] | None = None,
) -> list[str]:
    """Enqueue envelopes the way intake does (on ``streams``, default the first), each once
    SQS has the one before; their ids."""
    groups = group if isinstance(group, list) else [group] * len(docs)
    lanes = streams or [""] * len(docs)
    ids = []
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        for doc, doc_group, stream in zip(docs, groups, lanes, strict=True):
            message_id = new_id()
            envelope = Envelope(
                id=message_id,
                group=doc_group or message_id,
                accepted_at=time.time(),
                email=parse_email({k: v for k, v in doc.items() if k != "stream"}),
                stream=stream,
            )
            await pool.send(
                Outgoing(
                    body=envelope.encode().decode(),
                    group=envelope.group,
                    dedup_id=message_id,
                    stream=stream,
                )
            )
            ids.append(message_id)
    return ids
