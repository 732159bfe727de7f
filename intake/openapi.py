"""The OpenAPI 3.1 document of the intake API, built from the same limits the code enforces."""

from typing import Any

from core import attachments as att
from core import envelope as env
from core.events import TYPES as EVENT_TYPES
from intake.config import IntakeConfig
from pool.config import PoolConfig

_ADDRESS = {
    "type": "string",
    "maxLength": 320,
    "description": "`addr@domain` or `Display Name <addr@domain>` (UTF-8 names allowed).",
}
_ADDRESSES = {
    "oneOf": [_ADDRESS, {"type": "array", "items": _ADDRESS, "maxItems": env.MAX_RECIPIENTS}]
}


def _attachment_schema(config: IntakeConfig) -> dict[str, Any]:
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


def _email_schema(config: IntakeConfig) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["from"],
        "description": "At least one of to/cc/bcc and at least one of text/html are required; "
        f"at most {env.MAX_RECIPIENTS} recipients in all.",
        "properties": {
            "from": _ADDRESS,
            "to": _ADDRESSES,
            "cc": _ADDRESSES,
            "bcc": _ADDRESSES,
            "reply_to": _ADDRESSES,
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
            "attachments": _attachment_schema(config),
        },
    }


_ERROR = {
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
_ACCEPTED = {
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
_ITEM_ERROR = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field", "status"],
            "additionalProperties": False,
            "properties": {
                **_ERROR["properties"]["error"]["properties"],  # type: ignore[index]
                "status": {"type": "integer"},
            },
        }
    },
}
_BATCH_RESULT = {
    "type": "object",
    "required": ["results"],
    "additionalProperties": False,
    "properties": {
        "results": {"type": "array", "items": {"oneOf": [_ACCEPTED, _ITEM_ERROR]}},
    },
}
_STATUS = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
#: IETF draft-ietf-httpapi-ratelimit-headers-10, sent when MAILPOOL_RATE_LIMIT is set.
_RATE_LIMIT = {
    "RateLimit-Policy": {
        "schema": {"type": "string"},
        "description": 'The key\'s quota: `"emails";q=<burst>;w=<seconds to refill it>`.',
    },
    "RateLimit": {
        "schema": {"type": "string"},
        "description": 'What is left: `"emails";r=<emails now>;t=<seconds until full>`.',
    },
}
_UNAVAILABLE = (
    "Not accepted, and the code says whether it is stored: `overloaded` (refused at once: "
    "the backlog would outlast the deadline) and `unavailable` (SQS did not take it) mean it "
    "is not; `in_doubt` (SQS was asked but did not answer within the deadline and its margin) "
    "means it may be. Retry after Retry-After with the same Idempotency-Key either way."
)
_RATE_LIMITED = {
    **_error("This API key's quota (MAILPOOL_RATE_LIMIT) is spent; `rate_limited`."),
    "headers": {**_RETRY_AFTER, **_RATE_LIMIT},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": "Repeating a request with the same key yields the same id and enqueues "
    "nothing new: for MAILPOOL_IDEMPOTENCY_HOURS (24) with the state store on, else within "
    "SQS's 5 minutes. The same key with a different request is `409 idempotency_conflict`. "
    "In a batch, entry i uses `<key>:<i>`.",
}
_STATES = ["queued", "deferred", "sent", "delivered", "bounced", "failed", "suppressed",
           "complained"]  # fmt: skip
_WHEN = {"type": ["string", "null"], "format": "date-time"}
_EMAIL_STATUS = {
    "type": "object",
    "required": ["id", "state", "created_at", "updated_at", "attempts", "recipients"],
    "properties": {
        "id": {"type": "string"},
        "state": {"enum": _STATES},
        "created_at": _WHEN,
        "updated_at": _WHEN,
        "attempts": {"type": "integer"},
        "recipients": {
            "type": "array",
            "description": "By position in to + cc + bcc of the request; never the address.",
            "items": {
                "type": "object",
                "properties": {
                    "position": {"type": "integer"},
                    "state": {"enum": _STATES},
                    "code": {"type": ["integer", "null"]},
                    "enhanced": {"type": ["string", "null"]},
                    "at": _WHEN,
                },
            },
        },
    },
}
_SUPPRESSION = {
    "type": "object",
    "required": ["address", "reason", "created_at"],
    "properties": {
        "address": {"type": "string"},
        "reason": {"enum": ["hard_bounce", "complaint", "unsubscribe", "manual"]},
        "created_at": {"type": "string", "format": "date-time"},
        "email_id": {"type": ["string", "null"]},
    },
}
_ADDRESS_PARAM = {"name": "address", "in": "path", "required": True,
                  "schema": {"type": "string", "maxLength": 320}}  # fmt: skip
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
_CONFLICT = _error("`idempotency_conflict`: the key was used for a different request.")
_STATE_OFF = "No such email, or the state store is off (`state_disabled`)."
_STORE_DOWN = {**_error("The state store did not answer; retry."), "headers": _RETRY_AFTER}


def _state_paths(auth: bool) -> dict[str, Any]:
    """The endpoints the state store serves."""
    return {
        "/v1/emails/{id}": {
            "get": _guarded({
                "summary": "What became of an email (readable only with the key that sent it)",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string", "maxLength": 64}}],
                "responses": {"200": _json(_EMAIL_STATUS, "Its state."),
                              "404": _error(_STATE_OFF), "503": _STORE_DOWN},
            }, auth),
        },
        "/v1/suppressions": {
            "get": _guarded({
                "summary": "The suppression list of this API key, in address order",
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "after", "in": "query", "required": False,
                     "schema": {"type": "string"},
                     "description": "The `next` of the previous page."},
                ],
                "responses": {
                    "200": _json({"type": "object", "properties": {
                        "data": {"type": "array", "items": _SUPPRESSION},
                        "next": {"type": ["string", "null"]}}}, "A page."),
                    "404": _error(_STATE_OFF), "422": _error("A bad `limit`."),
                    "503": _STORE_DOWN,
                },
            }, auth),
        },
        "/v1/suppressions/{address}": {
            "get": _guarded({
                "summary": "Whether an address is suppressed, why and since when",
                "parameters": [_ADDRESS_PARAM],
                "responses": {"200": _json(_SUPPRESSION, "It is."),
                              "404": _error("It is not (`not_suppressed`)."),
                              "422": _error("Not an address."), "503": _STORE_DOWN},
            }, auth),
            "put": _guarded({
                "summary": "Suppress an address by hand (reason `manual`)",
                "parameters": [_ADDRESS_PARAM],
                "responses": {"200": _json(_SUPPRESSION, "Suppressed."),
                              "404": _error(_STATE_OFF),
                              "422": _error("Not an address."), "503": _STORE_DOWN},
            }, auth),
            "delete": _guarded({
                "summary": "Mail an address again",
                "parameters": [_ADDRESS_PARAM],
                "responses": {"204": {"description": "Removed."},
                              "404": _error("It was not suppressed (`not_suppressed`)."),
                              "422": _error("Not an address."), "503": _STORE_DOWN},
            }, auth),
        },
        "/unsubscribe/{token}": {
            "get": {
                "summary": "A page with an unsubscribe button (a GET changes nothing)",
                "parameters": [_TOKEN],
                "responses": {
                    "200": {"description": "HTML.",
                            "content": {"text/html": {"schema": {"type": "string"}}}},
                    "404": _error("A forged or altered token."),
                },
            },
            "post": {
                "summary": "RFC 8058 one-click unsubscribe (no API key): suppresses the "
                "address for the key that sent the email and emits `email.unsubscribed`",
                "parameters": [_TOKEN],
                "responses": {
                    "200": _json(_STATUS, "Unsubscribed."),
                    "404": _error("A forged or altered token."),
                    "503": _STORE_DOWN,
                },
            },
        },
    }  # fmt: skip


def _post_email(config: IntakeConfig, limit: int) -> dict[str, Any]:
    return {
        "summary": "Accept one email",
        "parameters": [_IDEMPOTENCY],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Email"}}},
        },
        "responses": {
            "202": {
                **_json(_ACCEPTED, "SQS has the email; `id` is its mailpool id."),
                "headers": _RATE_LIMIT,
            },
            "400": _error("Malformed JSON or a bad Idempotency-Key."),
            "413": _error(
                f"The request is over {config.max_request_bytes} bytes, the email's text, html "
                f"and decoded attachments over {config.max_email_bytes} bytes, or (with no S3 "
                f"bucket configured) the email as queued over {limit} bytes."
            ),
            "409": _CONFLICT,
            "422": _error("A field is invalid; `field` names it."),
            "429": _RATE_LIMITED,
            "503": {**_error(_UNAVAILABLE), "headers": _RETRY_AFTER},
        },
    }


def _post_batch(max_batch: int) -> dict[str, Any]:
    return {
        "summary": "Accept many emails, each on its own",
        "description": "Results are in request order. Emails of one group are enqueued in "
        "request order. The key's quota admits a prefix of the batch; the rest is refused "
        "(`rate_limited`, status 429). 202 when at least one email was accepted; otherwise 503 "
        "when SQS was unavailable or overloaded, 429 when the quota refused them, else 422.",
        "parameters": [_IDEMPOTENCY],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": max_batch,
                        "items": {"$ref": "#/components/schemas/Email"},
                    }
                }
            },
        },
        "responses": {
            "202": {
                **_json(_BATCH_RESULT, "At least one email was accepted."),
                "headers": _RATE_LIMIT,
            },
            "400": _error("Malformed JSON or a bad Idempotency-Key."),
            "413": _error(f"The request is too large, or holds more than {max_batch} emails."),
            "422": {
                "description": "The batch is not an array or is empty (an Error), or no email "
                "was valid (a batch result).",
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [{"$ref": "#/components/schemas/Error"}, _BATCH_RESULT]}
                    }
                },
            },
            "429": {
                **_json(_BATCH_RESULT, "Nothing accepted: the key's quota is spent."),
                "headers": {**_RETRY_AFTER, **_RATE_LIMIT},
            },
            "503": {
                **_json(_BATCH_RESULT, "Nothing accepted: SQS unavailable or overloaded."),
                "headers": _RETRY_AFTER,
            },
        },
    }


def _event_schema() -> dict[str, Any]:
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


_WEBHOOK_HEADERS = [
    {"name": name, "in": "header", "required": True, "schema": {"type": "string"},
     "description": text}
    for name, text in (
        ("webhook-id", "The event id: drop a repeat by it."),
        ("webhook-timestamp", "Unix seconds when signed."),
        ("webhook-signature", "v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>"),
    )
]  # fmt: skip


def _guarded(operation: dict[str, Any], auth: bool) -> dict[str, Any]:
    unauthorized = _error("API keys are configured and the request has no valid one.")
    guarded = {**operation, "responses": {**operation["responses"], "401": unauthorized}}
    if auth:
        guarded["security"] = [{"bearer": []}]
    return guarded


def openapi_document(config: IntakeConfig, pool: PoolConfig, auth: bool = False) -> dict[str, Any]:
    """The OpenAPI document for an intake with ``config`` over a pool with ``pool``."""
    errors = {"404": _error("No such resource."), "405": _error("Method not allowed.")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mailpool intake", "version": "1"},
        "paths": {
            "/v1/emails": {"post": _guarded(_post_email(config, pool.max_inline_bytes), auth)},
            "/v1/emails/batch": {"post": _guarded(_post_batch(config.max_batch), auth)},
            **_state_paths(auth),
            "/healthz": {
                "get": {"summary": "Alive", "responses": {"200": _json(_STATUS, "Alive.")}}
            },
            "/readyz": {
                "get": {
                    "summary": "Every queue of the pool answers and no background task died",
                    "responses": {
                        "200": _json(_STATUS, "Ready."),
                        "503": _json(
                            _STATUS,
                            "A queue did not answer (`queues_unreachable`), or a background "
                            "task died (`component_failed`: the process exits).",
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
                }
            },
        },
        "webhooks": {
            "emailEvent": {
                "post": {
                    "summary": "A delivery event, POSTed by `mailpool webhooks` to each "
                    "endpoint that wants it, signed per Standard Webhooks",
                    "parameters": _WEBHOOK_HEADERS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Event"}}
                        },
                    },
                    "responses": {
                        "2XX": {"description": "Taken; any other answer is retried."},
                        "410": {"description": "Gone: the endpoint is disabled."},
                    },
                }
            }
        },
        "components": {
            "schemas": {"Email": _email_schema(config), "Error": _ERROR, "Event": _event_schema()},
            "responses": errors,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`mailpool keys new`); required when the "
                    "intake has keys configured. Each key is its own idempotency scope.",
                }
            },
        },
    }
