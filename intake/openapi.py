"""The OpenAPI 3.1 document of the intake API, built from the same limits the code enforces."""

from typing import Any

from intake.config import IntakeConfig
from intake.schemas import (
    ACCEPTED,
    ADDRESS_PARAM,
    BATCH_RESULT,
    CONFLICT,
    EMAIL_STATUS,
    ERROR,
    IDEMPOTENCY,
    RATE_LIMIT,
    RATE_LIMITED,
    RETRY_AFTER,
    STATE_OFF,
    STATUS,
    STORE_DOWN,
    SUPPRESSION,
    TOKEN,
    UNAVAILABLE,
    WEBHOOK_HEADERS,
    email_schema,
    error,
    event_schema,
    json_body,
)
from pool.config import PoolConfig


def _state_paths(auth: bool) -> dict[str, Any]:
    """The endpoints the state store serves."""
    return {
        "/v1/emails/{id}": {
            "get": _guarded(
                {
                    "summary": "What became of an email (readable only with the key that sent it)",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 64},
                        }
                    ],
                    "responses": {
                        "200": json_body(EMAIL_STATUS, "Its state."),
                        "404": error(STATE_OFF),
                        "503": STORE_DOWN,
                    },
                },
                auth,
            ),
        },
        "/v1/suppressions": {
            "get": _guarded(
                {
                    "summary": "The suppression list of this API key, in address order",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                        {
                            "name": "after",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "The `next` of the previous page.",
                        },
                        LIST_PARAM,
                    ],
                    "responses": {
                        "200": json_body(
                            {
                                "type": "object",
                                "properties": {
                                    "data": {"type": "array", "items": SUPPRESSION},
                                    "next": {"type": ["string", "null"]},
                                },
                            },
                            "A page.",
                        ),
                        "404": error(STATE_OFF),
                        "422": error("A bad `limit` or `list`."),
                        "503": STORE_DOWN,
                    },
                },
                auth,
            ),
        },
        "/v1/suppressions/{address}": {
            "get": _guarded(
                {
                    "summary": "Whether an address is suppressed, why and since when",
                    "parameters": [ADDRESS_PARAM, LIST_PARAM],
                    "responses": {
                        "200": json_body(SUPPRESSION, "It is."),
                        "404": error("It is not (`not_suppressed`)."),
                        "422": error("Not an address, or a bad `list`."),
                        "503": STORE_DOWN,
                    },
                },
                auth,
            ),
            "put": _guarded(
                {
                    "summary": "Suppress an address by hand (reason `manual`)",
                    "parameters": [ADDRESS_PARAM, LIST_PARAM],
                    "responses": {
                        "200": json_body(SUPPRESSION, "Suppressed."),
                        "404": error(STATE_OFF),
                        "422": error("Not an address, or a bad `list`."),
                        "503": STORE_DOWN,
                    },
                },
                auth,
            ),
            "delete": _guarded(
                {
                    "summary": "Mail an address again",
                    "parameters": [ADDRESS_PARAM, LIST_PARAM],
                    "responses": {
                        "204": {"description": "Removed."},
                        "404": error("It was not suppressed (`not_suppressed`)."),
                        "422": error("Not an address, or a bad `list`."),
                        "503": STORE_DOWN,
                    },
                },
                auth,
            ),
        },
        "/unsubscribe/{token}": {
            "get": {
                "summary": "A page with an unsubscribe button (a GET changes nothing)",
                "parameters": [TOKEN],
                "responses": {
                    "200": {
                        "description": "HTML.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "404": error("A forged or altered token."),
                },
            },
            "post": {
                "summary": "RFC 8058 one-click unsubscribe (no API key): takes the address "
                "off the list the link names, for the key that sent the email, and emits "
                "`email.unsubscribed`; a replay changes nothing more",
                "parameters": [TOKEN],
                "responses": {
                    "200": json_body(STATUS, "Unsubscribed (now or before)."),
                    "404": error("A forged or altered token."),
                    "429": {**error("This link was posted too often."), "headers": RETRY_AFTER},
                    "503": STORE_DOWN,
                },
            },
        },
    }


BODY_TIMEOUT = error("The request body did not arrive within MAILPOOL_HTTP_READ_TIMEOUT.")
NOT_JSON = error(
    "The body is not sent as JSON (`Content-Type: application/json`): what a web page on "
    "another site could send without asking first is refused."
)


LIST_PARAM = {
    "name": "list",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
    "description": "A mailing list: its one-click unsubscribes (which hold for that list "
    "alone). Without it, the key's whole list: bounces, complaints, by hand.",
}


def _post_email(config: IntakeConfig, limit: int) -> dict[str, Any]:
    return {
        "summary": "Accept one email",
        "parameters": [IDEMPOTENCY],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Email"}}},
        },
        "responses": {
            "202": {
                **json_body(ACCEPTED, "SQS has the email; `id` is its mailpool id."),
                "headers": RATE_LIMIT,
            },
            "400": error("Malformed JSON or a bad Idempotency-Key."),
            "408": BODY_TIMEOUT,
            "415": NOT_JSON,
            "413": error(
                f"The request is over {config.max_request_bytes} bytes, the email's text, html "
                f"and decoded attachments over {config.max_email_bytes} bytes, or (with no S3 "
                f"bucket configured) the email as queued over {limit} bytes."
            ),
            "409": CONFLICT,
            "422": error("A field is invalid; `field` names it."),
            "429": RATE_LIMITED,
            "503": {**error(UNAVAILABLE), "headers": RETRY_AFTER},
        },
    }


def _post_batch(max_batch: int) -> dict[str, Any]:
    return {
        "summary": "Accept many emails, each on its own",
        "description": "Results are in request order. Emails of one group are enqueued in "
        "request order. The key's quota admits a prefix of the batch; the rest is refused "
        "(`rate_limited`, status 429); past the key's quota on a stream, the batch's later "
        "emails on that stream are refused the same way (field `stream`). 202 when at least "
        "one email was accepted; otherwise 503 when SQS was unavailable or overloaded, 429 "
        "when a quota refused them, else 422.",
        "parameters": [IDEMPOTENCY],
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
                **json_body(BATCH_RESULT, "At least one email was accepted."),
                "headers": RATE_LIMIT,
            },
            "400": error("Malformed JSON or a bad Idempotency-Key."),
            "408": BODY_TIMEOUT,
            "415": NOT_JSON,
            "413": error(f"The request is too large, or holds more than {max_batch} emails."),
            "422": {
                "description": "The batch is not an array or is empty (an Error), or no email "
                "was valid (a batch result).",
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [{"$ref": "#/components/schemas/Error"}, BATCH_RESULT]}
                    }
                },
            },
            "429": {
                **json_body(BATCH_RESULT, "Nothing accepted: the key's quota is spent."),
                "headers": {**RETRY_AFTER, **RATE_LIMIT},
            },
            "503": {
                **json_body(BATCH_RESULT, "Nothing accepted: SQS unavailable or overloaded."),
                "headers": RETRY_AFTER,
            },
        },
    }


def _guarded(operation: dict[str, Any], auth: bool) -> dict[str, Any]:
    unauthorized = error("API keys are configured and the request has no valid one.")
    guarded = {**operation, "responses": {**operation["responses"], "401": unauthorized}}
    if auth:
        guarded["security"] = [{"bearer": []}]
    return guarded


def openapi_document(config: IntakeConfig, pool: PoolConfig, auth: bool = False) -> dict[str, Any]:
    """The OpenAPI document for an intake with ``config`` over a pool with ``pool``."""
    errors = {
        "404": error("No such resource."),
        "405": error("Method not allowed."),
        "421": error("On a loopback listener, a `Host` that is not one of its names."),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mailpool intake", "version": "1"},
        "paths": {
            "/v1/emails": {"post": _guarded(_post_email(config, pool.max_inline_bytes), auth)},
            "/v1/emails/batch": {"post": _guarded(_post_batch(config.max_batch), auth)},
            **_state_paths(auth),
            "/healthz": {
                "get": {"summary": "Alive", "responses": {"200": json_body(STATUS, "Alive.")}}
            },
            "/readyz": {
                "get": {
                    "summary": "Every queue of the pool answers and no background task died",
                    "responses": {
                        "200": json_body(STATUS, "Ready."),
                        "503": json_body(
                            STATUS,
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
                    "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1.")},
                }
            },
        },
        "webhooks": {
            "emailEvent": {
                "post": {
                    "summary": "A delivery event, POSTed by `mailpool webhooks` to each "
                    "endpoint that wants it, signed per Standard Webhooks",
                    "parameters": WEBHOOK_HEADERS,
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
            "schemas": {"Email": email_schema(config), "Error": ERROR, "Event": event_schema()},
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
