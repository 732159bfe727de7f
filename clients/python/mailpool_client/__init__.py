"""mailpool's Python client: ``Client`` (blocking) and ``AsyncClient``, typed results and
errors, retries under one Idempotency-Key, ordered sends, and webhook verification."""

from mailpool_client.aio import AsyncClient, Retry
from mailpool_client.errors import (
    ApiError,
    ConnectionFailed,
    InvalidRequest,
    MailpoolError,
    RateLimited,
    RetriesExhausted,
    Unavailable,
)
from mailpool_client.models import Attachment, Email, Sent, Status, Suppression
from mailpool_client.sync import Client
from mailpool_client.webhooks import Event, InvalidWebhook, verify

__all__ = [
    "ApiError",
    "AsyncClient",
    "Attachment",
    "Client",
    "ConnectionFailed",
    "Email",
    "Event",
    "InvalidRequest",
    "InvalidWebhook",
    "MailpoolError",
    "RateLimited",
    "RetriesExhausted",
    "Retry",
    "Sent",
    "Status",
    "Suppression",
    "Unavailable",
    "verify",
]
