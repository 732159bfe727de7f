"""The OpenAPI document's schemas and shared parts: an email, an attachment, an event, the
answers and errors, built from the same limits the validation uses."""

from typing import Any

from core import attachments as att
from core.events import TYPES as EVENT_TYPES
from intake import validation as env
from intake.config import IntakeConfig

ADDRESS = {
    "type": "string",
    "maxLength": 320,
    "description": "`addr@domain` or `Display Name <addr@domain>` (UTF-8 names allowed).",
}
ADDRESSES = {
    "oneOf": [ADDRESS, {"type": "array", "items": ADDRESS, "maxItems": env.MAX_RECIPIENTS}]
}


def attachment_schema(config: IntakeConfig) -> dict[str, Any]:
    return {
        "type": "array",
        "maxItems": config.max_attachments,
        "description": "Files to attach; with `content_id`, shown inline by the html body "
        f"(`cid:…`). Text, html and decoded attachments together at most "
        f"{config.max_email_bytes} bytes (413 past it). Refused file types (SES's list): "
        + ", ".join(f".{e}" for e in sorted(att.REFUSED_EXTENSIONS)),
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["filename", "content"],
            "properties": {
                "filename": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": att.MAX_FILENAME,
                    "description": "Shown to the recipient (UTF-8 allowed); no control "
                    "characters or path separators.",
                },
                "content": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": "The file's bytes, base64 (line breaks allowed).",
                },
                "content_type": {
                    "type": "string",
                    "maxLength": att.MAX_CONTENT_TYPE,
                    "pattern": "^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$",
                    "description": "Default: guessed from the filename, else "
                    "application/octet-stream. Not multipart/* or message/*.",
                },
                "content_id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": att.MAX_CONTENT_ID,
                    "pattern": "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+$",
                    "description": "Makes the part inline: the html body references it as "
                    "`cid:<content_id>`. Needs `html`.",
                },
            },
        },
    }


def email_schema(config: IntakeConfig) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["from"],
        "description": "At least one of to/cc/bcc and at least one of text/html are required; "
        f"at most {env.MAX_RECIPIENTS} recipients in all.",
        "properties": {
            "from": ADDRESS,
            "to": ADDRESSES,
            "cc": ADDRESSES,
            "bcc": ADDRESSES,
            "reply_to": ADDRESSES,
            "subject": {"type": "string", "maxLength": env.MAX_SUBJECT},
            "text": {"type": ["string", "null"]},
            "html": {"type": ["string", "null"]},
            "headers": {
                "type": "object",
                "maxProperties": env.MAX_HEADERS,
                "additionalProperties": {"type": "string", "maxLength": env.MAX_HEADER_VALUE},
                "description": "Extra headers; names mailpool sets itself are refused: "
                + ", ".join(sorted(env.RESERVED_HEADERS)),
            },
            "tags": {
                "type": "object",
                "maxProperties": env.MAX_TAGS,
                "additionalProperties": {"type": "string", "maxLength": env.MAX_TAG_VALUE},
            },
            "stream": {
                "type": "string",
                "description": "The message stream (its own queues and priority): e.g. "
                "transactional (the default) or bulk, as the service configures them.",
            },
            "group": {
                "type": "string",
                "minLength": 1,
                "maxLength": env.MAX_GROUP,
                "description": "Ordering domain: emails of one group are delivered in "
                "acceptance order. Default: the email's own id (no ordering).",
            },
            "unsubscribe": {
                "oneOf": [
                    {"type": "boolean"},
                    {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                ],
                "description": "One-click unsubscribe (RFC 8058): true or a list name adds "
                "List-Unsubscribe (a signed link under MAILPOOL_PUBLIC_URL) and "
                "List-Unsubscribe-Post. Needs exactly one recipient and the state store; "
                "not with your own List-Unsubscribe header.",
            },
            "attachments": attachment_schema(config),
        },
    }


ERROR = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        }
    },
}
ACCEPTED = {
    "type": "object",
    "required": ["id"],
    "additionalProperties": False,
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[0-9a-f]{32}([0-9a-f]{8})?$",
            "description": "32 hex digits; 40 (signed) with the state store",
        }
    },
}
ITEM_ERROR = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field", "status"],
            "additionalProperties": False,
            "properties": {
                **ERROR["properties"]["error"]["properties"],  # type: ignore[index]
                "status": {"type": "integer"},
            },
        }
    },
}
BATCH_RESULT = {
    "type": "object",
    "required": ["results"],
    "additionalProperties": False,
    "properties": {
        "results": {"type": "array", "items": {"oneOf": [ACCEPTED, ITEM_ERROR]}},
    },
}
STATUS = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return json_body({"$ref": "#/components/schemas/Error"}, description)


RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
#: IETF draft-ietf-httpapi-ratelimit-headers-10, sent when MAILPOOL_RATE_LIMIT is set.
RATE_LIMIT = {
    "RateLimit-Policy": {
        "schema": {"type": "string"},
        "description": 'The key\'s quota: `"emails";q=<burst>;w=<seconds to refill it>`.',
    },
    "RateLimit": {
        "schema": {"type": "string"},
        "description": 'What is left: `"emails";r=<emails now>;t=<seconds until full>`.',
    },
}
UNAVAILABLE = (
    "Not accepted, and the code says whether it is stored: `overloaded` (refused at once: "
    "the backlog would outlast the deadline) and `unavailable` (SQS did not take it) mean it "
    "is not; `in_doubt` (SQS was asked but did not answer within the deadline and its margin) "
    "means it may be. Retry after Retry-After with the same Idempotency-Key either way."
)
RATE_LIMITED = {
    **error(
        "This API key's quota (MAILPOOL_RATE_LIMIT) is spent, or its quota on the email's "
        "stream (MAILPOOL_STREAM_RATE_LIMITS; the error's field is `stream`); `rate_limited`."
    ),
    "headers": {**RETRY_AFTER, **RATE_LIMIT},
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": "Repeating a request with the same key yields the same id and enqueues "
    "nothing new: for MAILPOOL_IDEMPOTENCY_HOURS (24) with the state store on, else within "
    "SQS's 5 minutes. The same key with a different request is `409 idempotency_conflict`. "
    "In a batch, entry i uses `<key>:<i>`.",
}
STATES = [
    "queued",
    "deferred",
    "sent",
    "delivered",
    "bounced",
    "failed",
    "suppressed",
    "complained",
]
WHEN = {"type": ["string", "null"], "format": "date-time"}
EMAIL_STATUS = {
    "type": "object",
    "required": ["id", "state", "created_at", "updated_at", "attempts", "recipients"],
    "properties": {
        "id": {"type": "string"},
        "state": {"enum": STATES},
        "created_at": WHEN,
        "updated_at": WHEN,
        "attempts": {"type": "integer"},
        "recipients": {
            "type": "array",
            "description": "By position in to + cc + bcc of the request; never the address.",
            "items": {
                "type": "object",
                "properties": {
                    "position": {"type": "integer"},
                    "state": {"enum": STATES},
                    "code": {"type": ["integer", "null"]},
                    "enhanced": {"type": ["string", "null"]},
                    "at": WHEN,
                },
            },
        },
    },
}
SUPPRESSION = {
    "type": "object",
    "required": ["address", "reason", "created_at"],
    "properties": {
        "address": {"type": "string"},
        "reason": {"enum": ["hard_bounce", "complaint", "unsubscribe", "manual"]},
        "created_at": {"type": "string", "format": "date-time"},
        "email_id": {"type": ["string", "null"]},
        "list": {
            "type": ["string", "null"],
            "description": "The mailing list it holds for (a one-click unsubscribe); null: "
            "every email of the key.",
        },
    },
}
ADDRESS_PARAM = {
    "name": "address",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 320},
}
TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
CONFLICT = error("`idempotency_conflict`: the key was used for a different request.")
STATE_OFF = "No such email, or the state store is off (`state_disabled`)."
STORE_DOWN = {**error("The state store did not answer; retry."), "headers": RETRY_AFTER}


def event_schema() -> dict[str, Any]:
    recipient = {
        "type": "object",
        "required": ["position", "address", "code", "enhanced"],
        "additionalProperties": False,
        "properties": {
            "position": {"type": "integer", "description": "In to + cc + bcc as requested."},
            "address": {"type": "string"},
            "code": {"type": ["integer", "null"], "description": "SMTP reply code."},
            "enhanced": {"type": ["string", "null"], "description": "Enhanced status code."},
        },
    }
    data = {
        "type": "object",
        "required": ["email_id", "tags", "recipients", "attempt", "provider", "terminal"],
        "additionalProperties": False,
        "properties": {
            "email_id": {"type": "string"},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "recipients": {"type": "array", "items": recipient},
            "attempt": {"type": "integer"},
            "provider": {"type": ["string", "null"]},
            "terminal": {"type": "boolean", "description": "This event ends the email's story."},
            "reason": {"type": "string"},
            "next_attempt_at": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "type": "object",
        "required": ["type", "id", "created_at", "data"],
        "additionalProperties": False,
        "properties": {
            "type": {"enum": list(EVENT_TYPES)},
            "id": {
                "type": "string",
                "description": "Deterministic: the same outcome of an email has the same id; "
                "also the webhook-id header.",
            },
            "created_at": {"type": "string", "format": "date-time"},
            "data": data,
        },
    }


WEBHOOK_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": text,
    }
    for name, text in (
        ("webhook-id", "The event id: drop a repeat by it."),
        ("webhook-timestamp", "Unix seconds when signed."),
        ("webhook-signature", "v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>"),
    )
]
